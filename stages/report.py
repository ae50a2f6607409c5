"""DVC stage ``report``: every family's findings on one page, and their verdicts as metrics.

Reads ``reports/findings/<family>.json`` (one per ``evaluate@<family>``) and writes
``reports/metrics/findings.json`` (over every family, how many findings have each outcome: what
``dvc metrics diff`` shows), ``reports/index.html`` (the report page; it opens from disk) and
``reports/README.md`` (its short Markdown twin, which a git host renders); both name the commit, the
params.yaml hash and the time they were rendered.

Usage: ``python -m stages.report``
"""

from __future__ import annotations

import argparse
import sys

from trainlab import report
from trainlab.io import write_json
from trainlab.params import project_root


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    reports = project_root() / "reports"
    families = report.load(reports / "findings")
    write_json(reports / "metrics" / "findings.json", report.metrics(families))
    run = report.describe_run(project_root())
    report.write_text(reports / "index.html", lambda: report.html_page(families, run))
    report.write_text(reports / "README.md", lambda: report.markdown_page(families, run))
    total = report.counts([f for family in families for f in family["findings"]])
    print(f"report: {total['findings']} findings over {report.families_text(families)}: "
          f"{', '.join(report.tallies(total))} -> reports/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
