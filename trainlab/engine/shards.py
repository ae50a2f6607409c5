"""Shards: what one worker (a process pool's or Dask's) trains in one go.

A shard is configurations x a block of seeds of one population (``runtime.seed_block`` seeds per block;
by default all the seeds of a configuration). A stacked model never spans two blocks, and trials are
independent, so a population trained in shards gives exactly the results it gives trained whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trainlab.engine.trial import Trial, TrialResult, seed_blocks


@dataclass(frozen=True)
class Shard:
    """What a worker (a pool's or Dask's) trains in one go, and how: configurations x a block of seeds
    of one population (``shard``), the numerics flags and its TensorFlow threads."""

    trials: list[Trial]
    runtime: dict
    threads: int


def train_shard(shard: Shard) -> list[TrialResult]:
    """Runs in a worker: TensorFlow set up once per process (``runtime.apply_once``), then the shard
    trained as one population."""
    from trainlab.engine import runtime as rt

    rt.apply_once(shard.runtime, shard.threads)
    from trainlab.engine.population import train_population  # imports TensorFlow: after apply

    settings = shard.runtime
    return train_population(shard.trials, settings["xla"], None, settings["stack_seeds"],
                            settings.get("seed_block", 0))


def shard(populations: Sequence[Sequence[Trial]], parts: int, seed_block: int = 0) -> list[list[Trial]]:
    """Cut each population into at most ``parts`` shards of whole (configuration, seed block) groups.

    Consecutive groups go together (so a configuration's blocks stay in one shard where they fit),
    each shard holding about ``1/parts`` of the population's trials.
    """
    shards = []
    for population in populations:
        groups: dict[tuple[str, int], list[Trial]] = {}
        for trial, block in zip(population, seed_blocks(population, seed_block)):
            groups.setdefault(block, []).append(trial)
        target = -(-len(population) // max(1, parts))
        current: list[Trial] = []
        for members in groups.values():
            if current and len(current) + len(members) > target:
                shards.append(current)
                current = []
            current = current + members
        shards.append(current)
    return shards


def shard_cost(trials: Sequence[Trial]) -> int:
    """A shard's cost, roughly: its updates (steps per epoch x epochs) x its trials."""
    n_train, batch_size, epochs = trials[0].population_key
    return -(-n_train // batch_size) * epochs * len(trials)
