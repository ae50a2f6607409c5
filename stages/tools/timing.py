"""Where a pipeline's time went: per train stage, seconds of start-up, training, outputs, logging and
figures (with findings), and the seeds and trials it spent, from ``data/runs/<family>/timing.json``.

Start-up runs from the stage's first line of Python to its first trial (imports, params, data, the
store's check); the Python interpreter's own start and DVC's bookkeeping around a stage are not in it.
The runs are logged to MLflow while a forked copy of the stage draws the figures and judges the
findings, so "figures and findings" is only what they took beyond the logging; "logging the figures
and findings" attaches the figures to the runs and logs the findings run.

Usage: ``python -m stages.tools.timing`` (a markdown table on stdout).
"""

from __future__ import annotations

import argparse
import json
import sys

from stages import params as P

PHASES = ("start-up", "training", "outputs", "logging", "figures and findings", "logging the figures and findings")


def table(root=None) -> str:
    root = root or P.project_root()
    rows, totals = [], dict.fromkeys(PHASES, 0.0)
    for path in sorted((root / "data" / "runs").glob("*/timing.json")):
        timing = json.loads(path.read_text())
        seconds = timing["seconds"]
        for phase in PHASES:
            totals[phase] += seconds.get(phase, 0.0)
        rows.append([path.parent.name, *(f"{seconds.get(p, 0.0):.1f}" for p in PHASES),
                     f"{sum(seconds.values()):.1f}", *(str(timing[k]) for k in ("seeds", "trials", "rounds"))])
    rows.append(["**all**", *(f"{totals[p]:.1f}" for p in PHASES), f"{sum(totals.values()):.1f}", "", "", ""])
    head = ["stage", *PHASES, "total", "seeds", "trials", "rounds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
