"""What the engine trains: a trial (one configuration x one seed) and its result.

A trial is a declarative, picklable recipe: the family hands over functions that
build a plain Keras model and its optimizer, and the engine decides when and
where they run (in this process or in a worker).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from trainlab.data.prepared import Split

if TYPE_CHECKING:
    from trainlab.configs import ConfigId


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
    ``metric`` names a per-sample metric from ``trainlab.engine.metrics``.
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
    def params(self) -> dict[str, Any]:
        """The values this trial trains with, flat and named as a user searches them.

        Its batch size, epochs and loss; the optimizer's own settings when its builder declares them
        (``params`` on the builder, as ``trainlab.families.common.optimizer_factory`` gives); its data; the
        plateau schedule; then the family's tags for what the engine cannot see (``optimizer.*`` tags only
        when the builder declares nothing; unset values left out). What the trial itself says wins over a
        tag of the same name.
        """
        loss = self.loss if isinstance(self.loss, str) else getattr(self.loss, "__name__", type(self.loss).__name__)
        own: dict[str, Any] = {"batch_size": self.batch_size, "epochs": self.epochs, "loss": loss}
        if self.data.name:
            own["data"] = self.data.name
        optimizer = dict(getattr(self.build_optimizer, "params", {}))
        own |= optimizer
        if self.plateau is not None:
            own |= {f"plateau.{k}": v for k, v in vars(self.plateau).items()}
        tagged = {}
        for key, value in self.tags.items():
            if key == "population_seconds" or value is None or value == "none":  # not a setting, or not applicable
                continue
            if key.startswith("optimizer."):
                if optimizer:  # the builder's own list holds only the keys that apply to that optimizer
                    continue
                key = key.removeprefix("optimizer.")
            tagged[key] = value
        return {**tagged, **own}

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
    params: dict[str, Any] = field(default_factory=dict)  # Trial.params: the values it trained with
    dataset: dict[str, Any] = field(default_factory=dict)  # Split.describe() of its rows
    model: dict[str, Any] = field(default_factory=dict)  # its Keras model: summary text, layers, parameter count
    started: float | None = None  # wall clock (time.time()) when its population started building
    epoch_ends: list[float] = field(default_factory=list)  # wall clock at the end of each epoch

    @property
    def diverged(self) -> bool:
        return self.diverged_epoch is not None


# -- how trials are grouped for training (no TensorFlow here: a stage that trains in workers never loads it) --

def group_into_populations(trials: Sequence[Trial]) -> list[list[Trial]]:
    """Split trials into populations, keeping the family's order within each."""
    groups: dict[tuple[int, int, int], list[Trial]] = {}
    for trial in trials:
        groups.setdefault(trial.population_key, []).append(trial)
    return list(groups.values())


def seed_blocks(trials: Sequence[Trial], seed_block: int) -> list[tuple[str, int]]:
    """Per trial, its (configuration, block): blocks of ``seed_block`` seeds in the trials' order (0: one block).

    A stacked model never spans two blocks, so its float rounding (which depends on how many seeds
    are stacked) is the same whichever executor trains the blocks, together or apart.
    """
    seen: dict[str, int] = {}
    blocks = []
    for trial in trials:
        rank = seen[trial.config] = seen.get(trial.config, -1) + 1
        blocks.append((trial.config, rank // seed_block if seed_block else 0))
    return blocks
