"""Executors run populations: in this process, in a local process pool, or on Dask distributed.

The unit of work shipped to a worker is a *shard*: configurations x a block of seeds of one
population (``runtime.seed_block`` seeds per block; by default all the seeds of a configuration).
A stacked model never spans two blocks, and trials are independent, so a population trained in
shards gives exactly the results it gives trained whole, whichever executor runs them.
Which executor runs is placement (``trainlab.engine.placement``: the environment), never a param.
Nothing in a family knows which executor runs it: a family hands over trials and gets their
results back, in the same order.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from trainlab.engine import placement as rt
from trainlab.engine import runtime
from trainlab.engine.shards import Shard, shard, shard_cost, train_shard
from trainlab.engine.trial import Trial, TrialResult, group_into_populations
from trainlab.params import check_memory


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


def _settings(runtime: Mapping) -> tuple[bool, bool, int]:
    return runtime["xla"], runtime["stack_seeds"], runtime.get("seed_block", 0)


def run_local(populations: Sequence[Sequence[Trial]], runtime: Mapping, progress: Progress) -> list[TrialResult]:
    from trainlab.engine.population import train_population  # TensorFlow: only where training runs here

    jit, stack, block = _settings(runtime)
    results = []
    for index, population in enumerate(populations, 1):
        def report(epoch: int, epochs: int, index: int = index, size: int = len(population)) -> None:
            progress(index, size, epoch, epochs)
        results += train_population(population, jit, report, stack, block)
    return results


def exit_with_parent() -> None:
    """In a worker: exit as soon as the stage that started it is gone (killed mid-shard, say), rather than
    train on for nobody. A worker busy with a shard would otherwise notice only when the shard ends."""
    parent = multiprocessing.parent_process()

    def watch() -> None:
        parent.join()
        os._exit(1)

    if parent is not None:
        threading.Thread(target=watch, daemon=True).start()


class ProcessPool:
    """This stage's worker processes: started on first use, one TensorFlow each, shut down with the stage.

    Spawned, not forked: the stage process may have loaded MLflow, and a forked copy of it is not safe.
    Used as a context manager (``runtime.training``), so no worker outlives the stage that started it.
    """

    def __init__(self, runtime: Mapping, placement: rt.Placement) -> None:
        self.runtime, self.placement = dict(runtime), placement
        self.executor: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Spawn every worker now (each imports TensorFlow once, for all of the stage's rounds)."""
        if self.executor is None:
            self.executor = ProcessPoolExecutor(max_workers=self.placement.worker_count(),
                                                mp_context=multiprocessing.get_context("spawn"),
                                                initializer=exit_with_parent)
            for _ in range(self.placement.worker_count()):
                self.executor.submit(os.getpid)

    def map(self, shards: Sequence[Sequence[Trial]], progress: Progress) -> list[TrialResult]:
        """Train the shards, the costliest first (the last to finish is then a short one)."""
        self.start()
        threads = self.placement.worker_threads()
        ordered = sorted(shards, key=shard_cost, reverse=True)
        futures = {self.executor.submit(train_shard, Shard(list(s), self.runtime, threads)): s for s in ordered}
        results: list[TrialResult] = []
        for done, future in enumerate(as_completed(futures), 1):
            results += future.result()
            trials = futures[future]
            progress(done, len(trials), trials[0].epochs, trials[0].epochs)
        return results

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_trials(trials: Sequence[Trial], runtime: Mapping, label: str = "train",
               placement: rt.Placement | None = None, pool: ProcessPool | None = None) -> list[TrialResult]:
    """Train every trial where ``placement`` (default: the environment) says; results in the trials' order.

    With the ``process`` executor, ``pool`` is the stage's pool (kept across its rounds of seeds); without
    one, a pool is started for this call and shut down at its end."""
    placement = placement or rt.placement()
    populations = group_into_populations(trials)
    block = runtime.get("seed_block", 0)
    if placement.executor == "dask":
        from trainlab.engine.dask_executor import run_on_dask

        results = run_on_dask(populations, runtime, placement, label)  # sharded once the cluster's size is known
    elif placement.trains_in_pool:
        # Three shards per worker: configurations can differ in cost many times over (vanishing_gradients'
        # 1 to 20 layers), and the pool hands the next shard to whichever worker is free (60 s -> 47 s there).
        shards = shard(populations, placement.worker_count() * 3, block)
        progress = Progress(label, len(shards), unit="shard")
        if pool is None:
            with ProcessPool(runtime, placement) as own:
                results = own.map(shards, progress)
        else:
            results = pool.map(shards, progress)
    else:
        results = run_local(populations, runtime, Progress(label, len(populations)))
    by_trial = {(r.config, r.seed): r for r in results}
    return [by_trial[(t.config, t.seed)] for t in trials]


@contextlib.contextmanager
def training(settings: Mapping, cfg: Mapping, label: str, epochs_key: str = "epochs") -> Iterator[Callable]:
    """The function a stage trains trials with, for the length of a ``with`` block.

    Applies the runtime flags (a section's own ``xla`` overrides ``runtime.xla``) where training runs in
    this process; with the ``process`` executor, one pool of workers serves every round of the stage and is
    shut down when the block ends. ``execute(trials)`` checks that their curves fit in memory
    (``epochs_key`` names the epochs in params.yaml) and returns their results in order.
    """
    where = rt.placement()  # from the environment, never from params: DVC must not rerun a moved study
    flags = runtime.flags(settings, cfg)
    runtime.prepare(flags, where.trains_here, where.threads)
    with ProcessPool(flags, where) as pool:
        if where.trains_in_pool:
            pool.start()  # the workers' TensorFlow loads while this process reads its data

        def execute(trials: list[Trial]) -> list[TrialResult]:
            check_memory(epochs_key, [t.epochs for t in trials])
            print(f"[{label}] {len(trials)} trials ({len({t.config for t in trials})} configurations, "
                  f"{len({t.seed for t in trials})} seeds)", file=sys.stderr)
            return run_trials(trials, flags, label=label, placement=where, pool=pool)

        yield execute
