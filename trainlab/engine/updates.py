"""A population stepped update by update, each update's batch loss recorded: for diagnostics that read the
loss per weight update rather than per epoch (the LR range test).

It reuses ``Population`` as it is (the seeds of a configuration stacked into one model, each configuration's
own Keras optimizer and its schedule): only the loop differs. ``Population.run`` compiles a whole epoch and
reports epoch means; here one compiled update is called ``updates`` times and returns each trial's loss on
the batch it was updated on (computed before the update, as fastai's recorder takes it) and the rate that
update used. Every update sees a full batch: each trial's own shuffles, epoch after epoch, with the short
last batch of an epoch left out so no update runs on fewer rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from trainlab.engine.population import Population
from trainlab.engine.trial import Trial


def batch_orders(population: Population, updates: int) -> np.ndarray:
    """[updates, trials, batch_size] row indices: each trial's own permutation per epoch, full batches only."""
    full = population.n_train // population.batch_size
    if full < 1:
        raise ValueError(f"batch size {population.batch_size} exceeds the {population.n_train} train rows")
    epochs = -(-updates // full)
    out = np.empty((epochs * full, len(population.trials), population.batch_size), dtype=np.int32)
    for epoch in range(epochs):
        orders = np.stack([rng.permutation(population.n_train) for rng in population.shufflers])
        for b in range(full):
            out[epoch * full + b] = orders[:, b * population.batch_size:(b + 1) * population.batch_size]
    return out[:updates]


def train_updates(trials: Sequence[Trial], updates: int,
                  stack_seeds: bool = True) -> tuple[list[Trial], np.ndarray, np.ndarray, Population]:
    """Run ``updates`` updates of every trial (one population: they must share n_train and batch size).

    Returns the trials in the population's order, the batch loss and the learning rate of each update
    ([trials, updates] each, NaN/inf kept as they came), and the population (its units hold the weights).
    """
    population = Population(trials, jit_compile=False, stack_seeds=stack_seeds)

    def one_update(index: tf.Tensor) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        totals, rates = population._step(index, population._empty_totals())
        return [t["loss"] for t in totals], rates  # per unit: the batch loss x rows, the rate used

    step = tf.function(one_update, autograph=False)
    loss = np.full((len(population.trials), updates), np.nan)
    rate = np.full_like(loss, np.nan)
    for u, order in enumerate(batch_orders(population, updates)):
        losses, rates = step(tf.constant(order))
        loss[:, u] = np.concatenate([v.numpy() for v in losses]) / population.batch_size
        rate[:, u] = np.concatenate([v.numpy() for v in rates])
    return population.trials, loss, rate, population
