"""What the engine trains: a trial (one configuration x one seed) and its result.

A trial is a declarative, picklable recipe: the family hands over functions that
build a plain Keras model and its optimizer, and the engine decides when and
where they run (in this process or in a worker).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Split:
    """Train and validation arrays; the validation rows are the book's test split.

    ``source`` says where the arrays come from when they were read from a prepared file
    (see ``stages.data``): a pickled Split then carries that reference, not the arrays, and
    is rebuilt from the file (checked against its content hash) where it is unpickled.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    source: tuple[str, str, str, str] | None = field(default=None, compare=False, repr=False)

    @property
    def n_train(self) -> int:
        return len(self.x_train)

    def __reduce__(self):
        if self.source is None:
            return (Split, (self.x_train, self.y_train, self.x_val, self.y_val))
        return (_split_from_source, (self.source,))


def _split_from_source(source: tuple[str, str, str, str]) -> Split:
    from stages.data import split_from_source  # stages.data imports this module

    return split_from_source(source)


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

    config: str
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

    config: str
    seed: int
    history: dict[str, np.ndarray]  # metric name -> one value per epoch
    diverged_epoch: int | None  # first epoch (1-based) with a non-finite loss
    weights: list[np.ndarray]
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        return self.diverged_epoch is not None
