"""DVC stage ``evaluate@<family>``: the family's figures, plot data and the book's findings checked.

Writes ``reports/figures/<family>/<study>.png`` (the book's figures: learning curves
per configuration, band over seeds), ``reports/plots/<family>/<metric>.csv`` (mean
curves per configuration, for ``dvc plots show/diff``), and attaches each figure
to the MLflow parent runs of its configurations. Then judges the family's
``FINDINGS`` over the seeds and sets its ``BOOK`` numbers beside ours
(``stages.findings``): ``reports/findings/<family>.json``, read by the ``report``
stage, and an MLflow run ``evaluate`` in the family's experiment.

Usage: ``python -m stages.evaluate <family>``
"""

from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from stages import families, tracking
from stages import findings as F
from stages import params as P
from stages.io import write_json, write_with

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
    figure_of, figures = {}, []
    for study, figure in module.figures(history, cfg).items():
        path = figure_dir / f"{study}.png"
        write_with(path, lambda tmp, figure=figure: figure.savefig(tmp, format="png", dpi=100))
        figures.append(path)
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

    report = findings_report(family, module, history, root, figures)
    report_path = root / "reports" / "findings" / f"{family}.json"
    write_json(report_path, report)
    verdicts = report["findings"]
    tracking.log_evaluation(
        family, verdicts, [*figures, report_path],
        params={"alpha": str(F.ALPHA), "seeds": str(len(report["seeds"])), "findings": str(len(verdicts))},
        stage=f"evaluate@{family}", section={family: cfg},
    )
    held = sum(v["verdict"] == F.HOLDS for v in verdicts)
    print(f"[{family}] findings: {held} of {len(verdicts)} hold")
    return 0


def findings_report(family: str, module, history: pd.DataFrame, root, figures: list) -> dict:
    """What the report page shows for one family: setup, figures, book vs ours, findings with verdicts."""
    summary_path = root / "reports" / "metrics" / f"{family}.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    title, *setup = (module.__doc__ or family).strip().split("\n\n")  # the module docstring is the setup
    return {
        "family": family,
        "title": " ".join(title.split()),
        "setup": [" ".join(paragraph.split()) for paragraph in setup],
        "seeds": sorted(int(s) for s in history["seed"].unique()),
        "alpha": F.ALPHA,
        "rule": F.RULE,
        "figures": [path.relative_to(root).as_posix() for path in figures],
        "book": F.book_table(getattr(module, "BOOK", {}), history, summary),
        "findings": F.judge(getattr(module, "FINDINGS", []), history),
    }


if __name__ == "__main__":
    sys.exit(main())
