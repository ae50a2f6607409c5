"""Executors run populations: in this process, in a local process pool, or on Dask distributed.

The unit of work shipped to a worker is a *shard*: configurations x a block of seeds of one
population (``runtime.seed_block`` seeds per block; by default all the seeds of a configuration).
A stacked model never spans two blocks, and trials are independent, so a population trained in
shards gives exactly the results it gives trained whole, whichever executor runs them.
Which executor runs is placement (``stages.runtime.placement``: the environment), never a param.
Nothing in a family knows which executor runs it: a family hands over trials and gets their
results back, in the same order.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence

from stages import runtime as rt
from stages.engine import pool
from stages.engine.trial import Shard, Trial, TrialResult, group_into_populations, seed_blocks


class Progress:
    """Prints where a long run is (population, epoch, elapsed), at most every few seconds."""

    def __init__(self, label: str, populations: int, every: float = 5.0, unit: str = "population") -> None:
        self.label, self.populations, self.every, self.unit = label, populations, every, unit
        self.started = time.perf_counter()
        self.last = 0.0

    def __call__(self, index: int, trials: int, epoch: int, epochs: int) -> None:
        now = time.perf_counter()
        if epoch == epochs or now - self.last >= self.every:
            self.last = now
            print(f"[{self.label}] {self.unit} {index}/{self.populations} ({trials} trials): "
                  f"epoch {epoch}/{epochs}, {now - self.started:.0f}s", file=sys.stderr, flush=True)


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


def _settings(runtime: Mapping) -> tuple[bool, bool, int]:
    return runtime["xla"], runtime["stack_seeds"], runtime.get("seed_block", 0)


def run_local(populations: Sequence[Sequence[Trial]], runtime: Mapping, progress: Progress) -> list[TrialResult]:
    from stages.engine.population import train_population  # TensorFlow: only where training runs here

    jit, stack, block = _settings(runtime)
    results = []
    for index, population in enumerate(populations, 1):
        def report(epoch: int, epochs: int, index: int = index, size: int = len(population)) -> None:
            progress(index, size, epoch, epochs)
        results += train_population(population, jit, report, stack, block)
    return results


def run_process_pool(shards: Sequence[Sequence[Trial]], runtime: Mapping, placement: rt.Placement,
                     progress: Progress) -> list[TrialResult]:
    """Train the shards on this machine's worker pool (``stages.engine.pool``: kept between stages)."""
    ordered = sorted(shards, key=_updates, reverse=True)  # the costliest first: the last to finish is a short one
    threads = placement.worker_threads()
    finished = iter(range(1, len(ordered) + 1))
    return pool.run_shards([Shard(list(s), dict(runtime), threads) for s in ordered], placement,
                           lambda done: progress(next(finished), len(done.trials), done.trials[0].epochs,
                                                 done.trials[0].epochs))


def _updates(trials: Sequence[Trial]) -> int:
    """A shard's cost, roughly: its updates (steps per epoch x epochs) x its trials."""
    n_train, batch_size, epochs = trials[0].population_key
    return -(-n_train // batch_size) * epochs * len(trials)


def run_trials(trials: Sequence[Trial], runtime: Mapping, label: str = "train",
               placement: rt.Placement | None = None) -> list[TrialResult]:
    """Train every trial where ``placement`` (default: the environment) says; results in the trials' order."""
    placement = placement or rt.placement()
    populations = group_into_populations(trials)
    block = runtime.get("seed_block", 0)
    if placement.executor == "dask":
        from stages.engine.dask_executor import run_on_dask

        results = run_on_dask(populations, runtime, placement, label)  # sharded once the cluster's size is known
    elif placement.trains_in_pool:
        # Three shards per worker: configurations can differ in cost many times over (vanishing_gradients'
        # 1 to 20 layers), and the pool hands the next shard to whichever worker is free (60 s -> 47 s there).
        shards = shard(populations, placement.worker_count() * 3, block)
        results = run_process_pool(shards, runtime, placement, Progress(label, len(shards), unit="shard"))
    else:
        results = run_local(populations, runtime, Progress(label, len(populations)))
    by_trial = {(r.config, r.seed): r for r in results}
    return [by_trial[(t.config, t.seed)] for t in trials]
