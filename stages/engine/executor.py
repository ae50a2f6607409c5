"""Executors run populations: here in this process, or in a pool of worker processes.

The unit of work is a population (the trials that can share one compiled loop).
Nothing in a family knows which executor runs it: a family hands over trials and
gets their results back, in the same order.
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
from concurrent.futures import ProcessPoolExecutor

from stages.engine.population import group_into_populations, train_population
from stages.engine.trial import Trial, TrialResult


class Progress:
    """Prints where a long run is (population, epoch, elapsed), at most every few seconds."""

    def __init__(self, label: str, populations: int, every: float = 5.0) -> None:
        self.label, self.populations, self.every = label, populations, every
        self.started = time.perf_counter()
        self.last = 0.0

    def __call__(self, index: int, trials: int, epoch: int, epochs: int) -> None:
        now = time.perf_counter()
        if epoch == epochs or now - self.last >= self.every:
            self.last = now
            print(f"[{self.label}] population {index}/{self.populations} ({trials} trials): "
                  f"epoch {epoch}/{epochs}, {now - self.started:.0f}s", file=sys.stderr, flush=True)


def _worker_init(runtime: Mapping, parent: int) -> None:
    from stages import runtime as rt

    _exit_with_parent(parent)
    rt.apply(runtime)


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


def split_for_workers(populations: list[list[Trial]], workers: int) -> list[list[Trial]]:
    """With several workers, cut each population into one part per worker.

    Trials are independent, so a population trained in parts gives the same results;
    the parts trace and train on separate cores (tracing a population is single-threaded).
    """
    if workers == 1:
        return populations
    parts = []
    for population in populations:
        size = -(-len(population) // workers)
        parts += [population[i:i + size] for i in range(0, len(population), size)]
    return parts


def run_trials(trials: Sequence[Trial], runtime: Mapping, label: str = "train") -> list[TrialResult]:
    """Train every trial, population by population, and return results in the trials' order."""
    populations = split_for_workers(group_into_populations(trials), runtime["workers"])
    progress = Progress(label, len(populations))
    jit, stack = runtime["xla"], runtime["stack_seeds"]
    if runtime["workers"] == 1 or len(populations) == 1:
        results = []
        for index, population in enumerate(populations, 1):
            def report(epoch: int, epochs: int, index: int = index, size: int = len(population)) -> None:
                progress(index, size, epoch, epochs)
            results += train_population(population, jit_compile=jit, progress=report, stack_seeds=stack)
    else:
        context = multiprocessing.get_context("spawn")  # TensorFlow does not survive fork
        with ProcessPoolExecutor(max_workers=runtime["workers"], mp_context=context,
                                 initializer=_worker_init, initargs=(dict(runtime), os.getpid())) as pool:
            futures = [pool.submit(train_population, population, jit, None, stack) for population in populations]
            results = []
            for index, (population, future) in enumerate(zip(populations, futures), 1):
                results += future.result()
                progress(index, len(population), population[0].epochs, population[0].epochs)
    by_trial = {(r.config, r.seed): r for r in results}
    return [by_trial[(t.config, t.seed)] for t in trials]
