"""The result contract every family shares.

- history: one row per (config, seed, epoch, metric) with columns
  ``config, seed, epoch, metric, value`` (epochs count from 1);
- summary: per config, per final metric, ``mean, std, n, ci95_low, ci95_high`` over
  the seeds that did not diverge, plus ``diverged`` (how many seeds did) and ``seeds``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from stages.engine.trial import TrialResult

COLUMNS = ["config", "seed", "epoch", "metric", "value"]
FINAL_METRICS_EXCLUDED = ("lr",)


def history_frame(results: Sequence[TrialResult]) -> pd.DataFrame:
    """Stack every trial's curves into the long history table."""
    frames = []
    for r in results:
        for metric, values in r.history.items():
            epochs = np.arange(1, len(values) + 1)
            frames.append(pd.DataFrame({"config": r.config, "seed": r.seed, "epoch": epochs,
                                        "metric": metric, "value": np.asarray(values, dtype=float)}))
    history = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    return history[COLUMNS]


def describe(values: Sequence[float]) -> dict:
    """Mean, sample std, n and a 95% t-interval of the finite values (None where undefined)."""
    finite = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(finite)
    if n == 0:
        return {"mean": None, "std": None, "n": 0, "ci95_low": None, "ci95_high": None}
    mean = float(finite.mean())
    std = float(finite.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else 0.0
    return {"mean": _round(mean), "std": _round(std), "n": n,
            "ci95_low": _round(mean - half), "ci95_high": _round(mean + half)}


def _round(value: float) -> float:
    """Six significant digits: enough for a diff, and small rates (1e-7) do not round to 0."""
    return float(f"{value:.6g}")


def summarize(results: Sequence[TrialResult],
              trial_metrics: Callable[[TrialResult], dict[str, float]] | None = None) -> dict:
    """The per-configuration summary that becomes reports/metrics/<family>.json.

    ``trial_metrics`` adds numbers derived from each trial's curves, described over seeds too.
    """
    by_config: dict[str, list[TrialResult]] = {}
    for r in results:
        by_config.setdefault(r.config, []).append(r)
    summary = {}
    for config, runs in by_config.items():
        names = [m for m in runs[0].history if m not in FINAL_METRICS_EXCLUDED and not m.startswith("grad_")]
        # A diverged seed's final numbers mean nothing (NaN weights can still score "accuracy").
        healthy = [r for r in runs if not r.diverged]
        entry = {m: describe([float(r.history[m][-1]) for r in healthy]) for m in names}
        if trial_metrics is not None:
            derived = [trial_metrics(r) for r in runs]
            for name in derived[0]:
                entry[name] = describe([d[name] for d in derived])
        entry["diverged"] = sum(r.diverged for r in runs)
        entry["seeds"] = len(runs)
        summary[config] = entry
    return summary


# -- per-trial curve measures the families add to their summaries --------------------------------

def epochs_to(values: np.ndarray, threshold: float) -> float:
    """1-based first epoch at or above ``threshold``; NaN if never (the summary's n counts those that got there)."""
    hits = np.flatnonzero(np.nan_to_num(values, nan=-np.inf) >= threshold)
    return float(hits[0] + 1) if len(hits) else math.nan


def volatility(values: np.ndarray, late_epochs: int) -> float:
    """Mean absolute change between consecutive epochs over the last ``late_epochs``: how much the model
    still swings once it has learned (the same measure as ``stages.findings.volatility``)."""
    window = values[-late_epochs:]
    return float(np.mean(np.abs(np.diff(window)))) if len(window) > 1 else float("nan")
