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
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import trainlab.figures
from trainlab import families, tracking
from trainlab import params as P
from trainlab.family import Family
from trainlab.io import write_json, write_with
from trainlab.stats import findings as F
from trainlab.stats import sequential

PLOT_METRICS = ("loss", "val_loss", "val_accuracy", "val_mse", "smoothed_loss")  # `dvc plots` pages, one per metric
# (smoothed_loss: the LR range test, per update). Every one of them is >= 0, and accuracies are <= 1, so a
# band of ±1 std is clipped to that range: a band below 0 would show values no seed can take.
UPPER_BOUND = {"val_accuracy": 1.0}
PLOT_POINTS = 40  # epochs per curve at most: the page holds every point of every line, and must stay small
SPIKE_FACTOR = 20  # a panel whose largest value exceeds this many times its 95th percentile has a spike


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is >= ``value`` (> 0): a round axis limit that
    stays the same under small seed noise, so ``dvc plots diff`` keeps both revisions in one panel."""
    power = 10.0 ** math.floor(math.log10(value))
    return next(power * step for step in (1, 2, 5, 10) if power * step >= value * (1 - 1e-12))


def panel_title(study: str, table: pd.DataFrame, metric: str,
                diverged: dict[str, tuple[int, int]]) -> tuple[str, float]:
    """The study's panel header and the y limit its curves are clipped to (inf: none). ``diverged``: per
    configuration, (seeds that diverged, seeds). The header names a configuration without a curve because
    every seed diverged (its panel is empty otherwise, with no word why), says when some seeds are left
    out of a mean, and says when an early spike was clipped, since a spike of a million flattens every curve."""
    notes = [f"{config} diverged on all {seeds} seeds" for config, (lost, seeds) in diverged.items() if lost == seeds]
    if any(0 < lost < seeds for lost, seeds in diverged.values()):
        notes.append("diverged seeds left out of the mean")
    values = table[["high", metric]].to_numpy().ravel()
    values = values[np.isfinite(values)]
    limit = math.inf
    if len(values):
        typical = float(np.quantile(values, 0.95))
        if typical > 0 and values.max() > SPIKE_FACTOR * typical:
            limit = nice_ceiling(2 * typical)
            notes.append(f"y clipped at {limit:g}, mean peaks at {table[metric].max():.2g}")
    return (f"{study}: {'; '.join(notes)}" if notes else study), limit


def plot_table(history: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (config, epoch): the study, mean over seeds and a ±1 std band, on at most PLOT_POINTS epochs
    (evenly spaced, the last one kept): the long table the dvc plots template draws. The study column is
    the panel's header: it names configurations whose seeds diverged and says when a spike was clipped."""
    rows = history[history["metric"] == metric]
    epochs = sorted(rows["epoch"].unique())
    step = -(-len(epochs) // PLOT_POINTS)
    kept = set(epochs[::step]) | {epochs[-1]} if epochs else set()
    finite = rows.assign(finite=np.isfinite(rows["value"]))
    seed_diverged = (~finite.groupby(["study", "config", "seed"], sort=False)["finite"].all()).groupby(
        ["study", "config"], sort=False).agg(["sum", "size"])
    rows = rows[rows["epoch"].isin(kept)]
    table = rows.groupby(["study", "config", "epoch"], sort=False)["value"].agg(["mean", "std"]).reset_index()
    table["std"] = table["std"].fillna(0.0)
    upper = UPPER_BOUND.get(metric, math.inf)
    table["low"] = (table["mean"] - table["std"]).clip(lower=0.0)
    table["high"] = (table["mean"] + table["std"]).clip(upper=upper)
    table = table.rename(columns={"mean": metric})
    panels = []
    for study, panel in table.groupby("study", sort=False):
        diverged = {config: (int(counts["sum"]), int(counts["size"]))
                    for (_, config), counts in seed_diverged.loc[[study]].iterrows()}
        title, limit = panel_title(study, panel, metric, diverged)
        panel = panel.assign(study=title)
        panel[["low", "high", metric]] = panel[["low", "high", metric]].clip(upper=limit)
        panels.append(panel)
    table = pd.concat(panels).round(6) if panels else table.round(6)
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
