"""A trained family evaluated: its figures, ``dvc plots`` data and the book's findings judged over seeds.

``write_evaluation`` writes ``reports/figures/<family>/<study>.png`` (the book's figures: learning curves
per configuration, band over seeds), ``reports/plots/<family>/<metric>.csv`` (mean curves per
configuration, for ``dvc plots show/diff``) and ``reports/findings/<family>.json``, which the ``report``
stage reads: the findings judged over the seeds (the verdicts replay train's rounds on the history),
with the book's printed numbers beside ours. ``log_evaluation`` then attaches each figure to the MLflow
parent runs of its configurations and logs the findings as an MLflow run ``evaluate``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import trainlab.figures
from trainlab import families, tracking
from trainlab import params as P
from trainlab.family import Family
from trainlab.io import write_json, write_with
from trainlab.stats import findings as F
from trainlab.stats import sequential

PLOT_METRICS = ("loss", "val_loss", "val_accuracy", "val_mse", "smoothed_loss")  # `dvc plots` pages, one per metric
# (smoothed_loss: the LR range test, per update)
PLOT_POINTS = 40  # epochs per curve at most: the page holds every point of every line, and must stay small


def plot_table(history: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (config, epoch): the study, mean over seeds and a ±1 std band, on at most PLOT_POINTS epochs
    (evenly spaced, the last one kept): the long table the dvc plots template draws."""
    rows = history[history["metric"] == metric]
    epochs = sorted(rows["epoch"].unique())
    step = -(-len(epochs) // PLOT_POINTS)
    kept = set(epochs[::step]) | {epochs[-1]} if epochs else set()
    rows = rows[rows["epoch"].isin(kept)]
    table = rows.groupby(["study", "config", "epoch"], sort=False)["value"].agg(["mean", "std"]).reset_index()
    table["std"] = table["std"].fillna(0.0)
    table["low"], table["high"] = table["mean"] - table["std"], table["mean"] + table["std"]
    table = table.rename(columns={"mean": metric}).round(6)
    return table[["epoch", "study", "config", "low", "high", metric]]  # y: the last column


@dataclass
class Evaluation:
    """What ``write_evaluation`` wrote: the findings report, its path, the figures and each configuration's."""

    report: dict
    path: Path
    figures: list[Path]
    figure_of: dict[str, Path]


def write_evaluation(name: str, params: dict, family: Family, cfg: dict, history: pd.DataFrame) -> Evaluation:
    """Figures, plot data and judged findings of a family whose ``data/runs/<name>`` train just wrote
    (``history``: its history.parquet), written as files; nothing goes to MLflow here."""
    root = P.project_root()
    runs = root / "data" / "runs" / name
    figure_dir = root / "reports" / "figures" / name
    figure_of, figures = {}, []
    for study, figure in trainlab.figures.load(name)(history, cfg).items():
        path = figure_dir / f"{study}.png"
        write_with(path, lambda tmp, figure=figure: figure.savefig(tmp, format="png", dpi=100))
        figures.append(path)
        for config in history.loc[history["study"] == study, "config"].unique():
            figure_of[config] = path
    plot_dir = root / "reports" / "plots" / name
    logged = set(history["metric"].unique())
    for metric in PLOT_METRICS:
        if metric in logged:
            table = plot_table(history, metric)
            write_with(plot_dir / f"{metric}.csv", lambda tmp, table=table: table.to_csv(tmp, index=False))
    rounds = json.loads((runs / "rounds.json").read_text())
    report = findings_report(family, cfg, families.section_key(params, name), history, root, figures, rounds)
    report_path = root / "reports" / "findings" / f"{name}.json"
    write_json(report_path, report)
    for v in report["findings"]:
        if v["verdict"] == F.NOT_JUDGED:
            print(f"warning: [{name}] finding {v['id']} {v['note']}", file=sys.stderr)
    return Evaluation(report, report_path, figures, figure_of)


def log_evaluation(name: str, cfg: dict, evaluation: Evaluation) -> None:
    """The figures attached to the MLflow parent runs of their configurations (``data/runs/<name>/
    mlflow_runs.json``), and the judged findings as the family's ``evaluate`` run."""
    run_ids = json.loads((P.project_root() / "data" / "runs" / name / "mlflow_runs.json").read_text())
    attached = tracking.log_figures(run_ids, evaluation.figure_of)
    print(f"[{name}] {len(evaluation.figures)} figures, attached to {attached} MLflow runs")
    report, verdicts = evaluation.report, evaluation.report["findings"]
    tracking.log_evaluation(
        name, verdicts, [*evaluation.figures, evaluation.path],
        params={"alpha": str(report["alpha"]), "seeds": str(len(report["seeds"])), "findings": str(len(verdicts))},
        stage=f"evaluate@{name}", section={name: cfg},
    )
    held = sum(v["verdict"] in F.HELD for v in verdicts)
    print(f"[{name}] findings: {held} of {len(verdicts)} hold")


def findings_report(family: Family, cfg: dict, section: str, history: pd.DataFrame, root, figures: list,
                    rounds: dict) -> dict:
    """What the report page shows for one family: setup, figures, book vs ours, findings with verdicts.

    The verdicts replay train's rounds (``rounds``: data/runs/<family>/rounds.json) on the history.
    """
    design = sequential.Design(**{k: rounds["design"][k] for k in ("start", "block", "cap", "spending", "alpha")})
    summary_path = root / "reports" / "results" / f"{family.name}.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return {
        "family": family.name,
        "title": family.title,
        "setup": family.setup,
        "seeds": sorted(int(s) for s in history["seed"].unique()),
        "alpha": design.alpha,
        "rule": F.RULE,
        "design": design.describe() | {"rounds": len(rounds["rounds"])},
        "config_seeds": sequential.seeds_per_config(history),
        "figures": [path.relative_to(root).as_posix() for path in figures],
        "book": F.book_table(family.book, history, summary),
        "findings": sequential.judge(family.judged_findings(cfg), history, family.configs(cfg), section, design,
                                     rounds["rounds"][0]["seeds"][0]),
    }
