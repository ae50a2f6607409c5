"""DVC stage ``evaluate@<family>``: the family's figures, ``dvc plots`` data and findings, from its training.

Reads what ``train@<family>`` wrote (``data/runs/<family>/history.parquet`` and ``rounds.json``,
``reports/results/<family>.json``) and the family's section of params.yaml; writes
``reports/figures/<family>/``, ``reports/plots/<family>/`` and ``reports/findings/<family>.json``,
then attaches each figure to the MLflow parent runs of its configurations and logs the findings as
the family's ``evaluate`` run. It never trains: editing a figure reruns this stage and ``report`` only.

Usage: ``python -m stages.evaluate <family>``
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from trainlab import evaluation, families, stage, tracking
from trainlab.params import project_root


def evaluate(name: str) -> int:
    params, _ = stage.load_params()
    family, cfg = families.check_family(params, name)
    tracking.client()
    history = pd.read_parquet(project_root() / "data" / "runs" / name / "history.parquet")
    written = evaluation.write_evaluation(name, params, family, cfg, history)
    evaluation.log_evaluation(name, cfg, written)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family")
    name = parser.parse_args(argv).family
    return stage.run(lambda: evaluate(name))


if __name__ == "__main__":
    sys.exit(main())
