"""DVC stage ``evaluate@<family>``: the family's figures and plot data from its history.

Writes ``reports/figures/<family>/<study>.png`` (the book's figures: learning curves
per configuration, band over seeds), ``reports/plots/<family>/<metric>.csv`` (mean
curves per configuration, for ``dvc plots show/diff``), and attaches each figure
to the MLflow parent runs of its configurations.

Usage: ``python -m stages.evaluate <family>``
"""

from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from stages import families, tracking
from stages import params as P
from stages.io import write_with

PLOT_METRICS = ("loss", "val_loss", "accuracy", "val_accuracy", "mse", "val_mse")


def plot_table(history: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean over seeds per (epoch, config): the long table the dvc plots template draws."""
    rows = history[history["metric"] == metric]
    table = rows.groupby(["config", "epoch"], sort=False)["value"].mean().reset_index()
    return table.rename(columns={"value": metric})[["epoch", "config", metric]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family")
    args = parser.parse_args(argv)
    family = args.family
    try:
        params = P.load(P.project_root() / P.PARAMS_FILE)
        cfg = families.check_family(params, family)
        mlflow_client = tracking.client()
    except (P.ParamsError, tracking.TrackingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    del mlflow_client

    root = P.project_root()
    runs = root / "data" / "runs" / family
    history = pd.read_parquet(runs / "history.parquet")
    module = families.load(family)

    figure_dir = root / "reports" / "figures" / family
    figure_of = {}
    for study, figure in module.figures(history, cfg).items():
        path = figure_dir / f"{study}.png"
        write_with(path, lambda tmp, figure=figure: figure.savefig(tmp, format="png", dpi=100))
        for config in history["config"].unique():
            if families.study(config) == study:
                figure_of[config] = path

    plot_dir = root / "reports" / "plots" / family
    for metric in PLOT_METRICS:
        if metric in set(history["metric"]):
            table = plot_table(history, metric)
            write_with(plot_dir / f"{metric}.csv", lambda tmp, table=table: table.to_csv(tmp, index=False))

    run_ids = json.loads((runs / "mlflow_runs.json").read_text())
    attached = tracking.log_figures(run_ids, figure_of)
    print(f"[{family}] {len(set(figure_of.values()))} figures, attached to {attached} MLflow runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
