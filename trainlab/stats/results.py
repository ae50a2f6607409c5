"""The result contract every family shares.

- history: one row per (config, seed, epoch, metric) with columns
  ``config, study, seed, epoch, metric, value`` (epochs count from 1; ``config`` is the
  configuration's canonical id, ``study`` its study);
- summary: per config, per final metric and per number the family derives from a trial's curves,
  ``mean, std, n, ci95_low, ci95_high`` over the seeds that did not diverge, plus ``diverged``
  (how many seeds did) and ``seeds``. A diverged seed's numbers mean nothing (NaN weights can
  still score an "accuracy"), so they are left out here exactly as the findings leave them out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from trainlab import curves
from trainlab.engine.trial import TrialResult

COLUMNS = ["config", "study", "seed", "epoch", "metric", "value"]
FINAL_METRICS_EXCLUDED = ("lr",)


def history_frame(results: Sequence[TrialResult]) -> pd.DataFrame:
    """Stack every trial's curves into the long history table (trial by trial, metric by metric, epoch by epoch).

    Built column-wise with numpy, one concatenation: a family has thousands of (trial, metric) curves, and a
    small DataFrame per curve cost seconds per family."""
    keys, curves = [], []  # per curve: (config, study, seed, metric), and its values
    for r in results:
        config, study = str(r.config), r.config.study
        for metric, values in r.history.items():
            keys.append((config, study, r.seed, metric))
            curves.append(np.asarray(values, dtype=float))
    if not keys:
        return pd.DataFrame(columns=COLUMNS)
    lengths = np.fromiter((len(c) for c in curves), dtype=np.int64, count=len(curves))
    starts = np.cumsum(lengths) - lengths
    epochs = np.arange(1, int(lengths.sum()) + 1, dtype=np.int64) - np.repeat(starts, lengths)
    config, study, seed, metric = zip(*keys)

    def repeat(values: tuple, dtype: type = object) -> np.ndarray:
        return np.repeat(np.array(values, dtype=dtype), lengths)

    return pd.DataFrame({"config": repeat(config), "study": repeat(study), "seed": repeat(seed, np.int64),
                         "epoch": epochs, "metric": repeat(metric), "value": np.concatenate(curves)})


def bounds(metric: str) -> tuple[float, float] | None:
    """The range a metric cannot leave: accuracies are shares of examples, in [0, 1]; None if unbounded."""
    return (0.0, 1.0) if "accuracy" in metric else None


def describe(values: Sequence[float], limits: tuple[float, float] | None = None) -> dict:
    """Mean, sample std, n and a 95% t-interval of the finite values (None where undefined).

    With ``limits`` (a bounded quantity, e.g. an accuracy) the t-interval is clipped to them: the true mean
    lies inside the limits, so cutting off the impossible part keeps the coverage and only drops values
    no run could have (a t-interval of accuracies near 1 otherwise ends above 1).
    """
    finite = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(finite)
    if n == 0:
        return {"mean": None, "std": None, "n": 0, "ci95_low": None, "ci95_high": None}
    mean = float(finite.mean())
    std = float(finite.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else 0.0
    return clip_interval({"mean": _round(mean), "std": _round(std), "n": n,
                          "ci95_low": _round(mean - half), "ci95_high": _round(mean + half)}, limits)


def clip_interval(summary: dict, limits: tuple[float, float] | None) -> dict:
    """``summary`` with its 95 % interval cut to ``limits`` (unchanged without limits or an interval)."""
    if limits is None or summary.get("ci95_low") is None:
        return summary
    low, high = limits
    return {**summary, "ci95_low": min(max(summary["ci95_low"], low), high),
            "ci95_high": max(min(summary["ci95_high"], high), low)}


def _round(value: float) -> float:
    """Six significant digits: enough for a diff, and small rates (1e-7) do not round to 0."""
    return float(f"{value:.6g}")


def summarize(results: Sequence[TrialResult],
              trial_metrics: Callable[[TrialResult], dict[str, float]] | None = None) -> dict:
    """The per-configuration summary that becomes reports/results/<family>.json.

    ``trial_metrics`` adds numbers derived from each trial's curves, described over seeds too.
    """
    by_config: dict[str, list[TrialResult]] = {}
    for r in results:
        by_config.setdefault(str(r.config), []).append(r)
    summary = {}
    for config, runs in by_config.items():
        names = [m for m in runs[0].history if m not in FINAL_METRICS_EXCLUDED and not m.startswith("grad_")]
        healthy = [r for r in runs if not r.diverged]
        entry = {m: describe([curves.final(r.history[m]) for r in healthy], bounds(m)) for m in names}
        if trial_metrics is not None and healthy:
            derived = [trial_metrics(r) for r in healthy]
            for name in derived[0]:
                entry[name] = describe([d[name] for d in derived], bounds(name))
        entry["diverged"] = sum(r.diverged for r in runs)
        entry["seeds"] = len(runs)
        # each seed's final values (None for a diverged seed), for comparisons over seeds (e.g. the PR diff)
        entry["per_seed"] = {"seed": [r.seed for r in runs],
                             **{m: [None if r.diverged else _round_or_none(curves.final(r.history[m])) for r in runs]
                                for m in names}}
        summary[config] = entry
    return summary


def _round_or_none(value: float) -> float | None:
    return _round(value) if math.isfinite(value) else None


HEADLINE_METRICS = ("val_accuracy", "val_mse", "val_loss")  # the first a family has is its main test metric
SHORT = {"val_accuracy": "best_acc", "val_mse": "best_mse", "val_loss": "best_loss"}  # narrow metrics columns


def headline(summary: dict) -> dict:
    """What ``dvc metrics show|diff`` prints for a family: one row of a few columns that every family
    shares, so the table fits a terminal. ``seeds``: seeds spent over all configurations; ``diverged``:
    seeds that diverged; ``best_acc|best_mse|best_loss``: the best configuration's mean final
    val_accuracy|val_mse|val_loss (the highest accuracy, the lowest loss), one per main test metric the
    family has (a family may mix an autoencoder and a classifier); absent when every seed diverged.
    Each configuration's own numbers are in reports/results/<family>.json, which ``make diff`` compares."""
    best: dict[str, float] = {}
    for entry in summary.values():
        main = next((m for m in HEADLINE_METRICS if isinstance(entry.get(m), dict)), None)
        value = entry[main]["mean"] if main else None
        if main is None or value is None:
            continue
        better = max if main == "val_accuracy" else min
        best[main] = better(best.get(main, value), value)
    return {"seeds": sum(entry["seeds"] for entry in summary.values()),
            "diverged": sum(entry.get("diverged") or 0 for entry in summary.values()),
            **{SHORT[metric]: best[metric] for metric in HEADLINE_METRICS if metric in best}}
