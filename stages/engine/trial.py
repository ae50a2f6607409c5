"""What the engine trains: a trial (one configuration x one seed) and its result.

A trial is a declarative, picklable recipe: the family hands over functions that
build a plain Keras model and its optimizer, and the engine decides when and
where they run (in this process or in a worker).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from stages.configs import ConfigId


@dataclass(frozen=True)
class Split:
    """Train and validation arrays; the validation rows are the book's test split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

    @property
    def n_train(self) -> int:
        return len(self.x_train)


@dataclass(frozen=True)
class Plateau:
    """Keras ``ReduceLROnPlateau`` settings, applied per trial between epochs."""

    patience: int
    factor: float = 0.1
    min_delta: float = 1e-4
    monitor: str = "val_loss"
    cooldown: int = 0
    min_lr: float = 0.0


@dataclass(frozen=True)
class Trial:
    """One configuration trained from one seed.

    ``build_model`` and ``build_optimizer`` are called after the engine has set
    the trial's seed, so the initial weights depend on ``seed`` alone.
    ``loss`` is a Keras loss name (or callable) as given to ``model.compile``;
    ``metric`` names a per-sample metric from ``stages.engine.metrics``.
    """

    config: ConfigId
    seed: int
    data: Split
    build_model: Callable[[], Any]
    build_optimizer: Callable[[], Any]
    loss: str | Callable
    metric: str
    batch_size: int
    epochs: int
    plateau: Plateau | None = None
    grad_stats: bool = False
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def population_key(self) -> tuple[int, int, int]:
        """Trials with the same key can be stepped together in one compiled loop."""
        return (self.data.n_train, self.batch_size, self.epochs)


@dataclass
class TrialResult:
    """Per-epoch curves of one trial, its divergence epoch and final weights."""

    config: ConfigId
    seed: int
    history: dict[str, np.ndarray]  # metric name -> one value per epoch
    diverged_epoch: int | None  # first epoch (1-based) with a non-finite loss
    weights: list[np.ndarray]
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        return self.diverged_epoch is not None
