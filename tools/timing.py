"""Where the train stages' time went: per family, seconds of training (the sequential design's rounds),
writing the outputs and logging to MLflow, and the seeds, trials and rounds it spent, from
``data/runs/<family>/timing.json``. Python's start and the imports, and DVC's bookkeeping around a stage,
are not in it: time a whole ``dvc repro`` for those.

Usage: ``python -m tools.timing`` (a markdown table on stdout).
"""

from __future__ import annotations

import argparse
import json
import sys

from trainlab import params as P

PHASES = ("opening the tracking store", "training", "outputs", "logging")


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
