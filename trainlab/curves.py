"""Numbers read off one learning curve (one metric of one trial, one value per epoch).

The metrics summary, the findings and the figures all use these, so a quantity means the
same thing everywhere. Epochs count from 1.

**A run that never reaches a threshold** counts as ``len(curve) + 1`` epochs (censored one
past the end of the run): it sorts after every run that got there, so order-based tests
(Mann-Whitney, medians) stay valid; ``reached`` tells the two apart. A curve that became
NaN/inf (a diverged run) never reaches anything after that point.
"""

from __future__ import annotations

import math

import numpy as np


def final(curve: np.ndarray) -> float:
    """The value at the last epoch."""
    return float(curve[-1]) if len(curve) else math.nan


def at_epoch(curve: np.ndarray, epoch: int) -> float:
    """The value at ``epoch`` (NaN past the end of the curve)."""
    return float(curve[epoch - 1]) if 1 <= epoch <= len(curve) else math.nan


def best(curve: np.ndarray, mode: str = "max") -> float:
    """The best finite value over the epochs (``mode`` max or min)."""
    finite = curve[np.isfinite(curve)]
    if not len(finite):
        return math.nan
    return float(finite.max() if mode == "max" else finite.min())


def epochs_to(curve: np.ndarray, threshold: float, below: bool = False) -> float:
    """The first epoch at which the curve reaches ``threshold`` (≥, or ≤ with ``below``); never: epochs + 1."""
    values = np.asarray(curve, dtype=float)
    with np.errstate(invalid="ignore"):
        hit = np.isfinite(values) & ((values <= threshold) if below else (values >= threshold))
    hits = np.flatnonzero(hit)
    return float(hits[0] + 1) if len(hits) else float(len(values) + 1)


def reached(curve: np.ndarray, threshold: float, below: bool = False) -> bool:
    """Whether the curve reaches ``threshold`` within the run."""
    return epochs_to(curve, threshold, below) <= len(curve)


def updates_to(curve: np.ndarray, threshold: float, updates_per_epoch: int, below: bool = False) -> float:
    """``epochs_to`` counted in weight updates (the same censoring, times the updates per epoch)."""
    return epochs_to(curve, threshold, below) * updates_per_epoch


def volatility(curve: np.ndarray, last: int | None = None) -> float:
    """Mean absolute change between consecutive epochs over the last ``last`` epochs (default: second half)."""
    window = np.asarray(curve, dtype=float)[-(last or max(2, len(curve) // 2)):]
    return float(np.mean(np.abs(np.diff(window)))) if len(window) > 1 else math.nan


def rebound(curve: np.ndarray) -> float:
    """How far the curve climbs back above its lowest value so far (0 for a curve that only falls)."""
    finite = np.asarray(curve, dtype=float)
    finite = finite[np.isfinite(finite)]
    return float(np.max(finite - np.minimum.accumulate(finite))) if len(finite) else math.nan


def diverged(curve: np.ndarray) -> float:
    """1.0 when the curve became NaN/inf at some epoch, else 0.0."""
    return float(not np.all(np.isfinite(curve)))


def divergence_epoch(curve: np.ndarray) -> int | None:
    """The first epoch with a NaN/inf value, or None."""
    bad = np.flatnonzero(~np.isfinite(np.asarray(curve, dtype=float)))
    return int(bad[0] + 1) if len(bad) else None
