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

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from stages import runtime as rt
from stages.engine.population import group_into_populations, seed_blocks, train_population
from stages.engine.trial import Trial, TrialResult


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


def _worker_init(runtime: Mapping, threads: int, parent: int) -> None:
    _exit_with_parent(parent)
    rt.apply(runtime, threads)


def _exit_with_parent(parent: int) -> None:
    """A worker whose stage process died (SIGKILL runs no cleanup) would be adopted by init and train on.

    On Linux the kernel kills it when its parent dies (PR_SET_PDEATHSIG: works while the worker holds the
    GIL, e.g. inside TensorFlow's import); elsewhere a thread watches the parent.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        armed = libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        armed = False
    if os.getppid() != parent:  # it died before the signal was armed
        os._exit(1)
    if not armed:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)
        threading.Thread(target=watch, daemon=True).start()


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
    jit, stack, block = _settings(runtime)
    results = []
    for index, population in enumerate(populations, 1):
        def report(epoch: int, epochs: int, index: int = index, size: int = len(population)) -> None:
            progress(index, size, epoch, epochs)
        results += train_population(population, jit, report, stack, block)
    return results


def run_process_pool(shards: Sequence[Sequence[Trial]], runtime: Mapping, placement: rt.Placement,
                     progress: Progress) -> list[TrialResult]:
    jit, stack, block = _settings(runtime)
    context = multiprocessing.get_context("spawn")  # TensorFlow does not survive fork
    results = []
    with ProcessPoolExecutor(max_workers=placement.worker_count(), mp_context=context, initializer=_worker_init,
                             initargs=(dict(runtime), placement.worker_threads(), os.getpid())) as pool:
        futures = {pool.submit(train_population, list(s), jit, None, stack, block): s for s in shards}
        for index, future in enumerate(as_completed(futures), 1):
            results += future.result()
            done = futures[future]
            progress(index, len(done), done[0].epochs, done[0].epochs)
    return results


def run_trials(trials: Sequence[Trial], runtime: Mapping, label: str = "train",
               placement: rt.Placement | None = None) -> list[TrialResult]:
    """Train every trial where ``placement`` (default: the environment) says; results in the trials' order."""
    placement = placement or rt.placement()
    populations = group_into_populations(trials)
    block = runtime.get("seed_block", 0)
    if placement.executor == "dask":
        from stages.engine.dask_executor import run_on_dask

        results = run_on_dask(populations, runtime, placement, label)  # sharded once the cluster's size is known
    elif placement.executor == "process" and placement.worker_count() > 1:
        shards = shard(populations, placement.worker_count(), block)
        results = run_process_pool(shards, runtime, placement, Progress(label, len(shards), unit="shard"))
    else:
        results = run_local(populations, runtime, Progress(label, len(populations)))
    by_trial = {(r.config, r.seed): r for r in results}
    return [by_trial[(t.config, t.seed)] for t in trials]
