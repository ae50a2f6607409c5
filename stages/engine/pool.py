"""A stage's worker processes: started before anything heavy loads, kept for every round of seeds.

One TensorFlow process keeps about 1.3 of this machine's 2 cores busy (its compiled epochs are many
tiny ops; see the README's "Budget"), so two worker processes train a family faster than the stage's
own process does. Their cost is TensorFlow's import in each: started first thing in the stage (while
the stage process loads MLflow and TensorFlow itself) and kept until the process exits, the workers
import once per stage instead of once per round. This module loads no TensorFlow, so the stage can
start the workers before its own import.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor

from stages import runtime as rt

_pools: dict[tuple, ProcessPoolExecutor] = {}


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


def worker_pool(runtime: Mapping, placement: rt.Placement) -> ProcessPoolExecutor:
    """This process's pool for ``placement`` and the numerics of ``runtime``, its workers started now."""
    workers, threads = placement.worker_count(), placement.worker_threads()
    key = (bool(runtime["onednn"]), bool(runtime["deterministic_ops"]), workers, threads)
    if key not in _pools:
        rt.set_environment(runtime)  # workers inherit it: oneDNN is read when TensorFlow loads
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init, initargs=(dict(runtime), threads, os.getpid()))
        for _ in range(workers):  # spawn every worker now, so their imports overlap this process's work
            pool.submit(os.getpid)
        _pools[key] = pool
    return _pools[key]


def start_workers(settings: Mapping, cfg: Mapping) -> None:
    """Where the environment places training in a process pool, start its workers (call this first)."""
    where = rt.placement()
    if where.executor == "process" and where.worker_count() > 1:
        worker_pool(rt.flags(settings, cfg), where)


@atexit.register
def _shut_down() -> None:
    for pool in _pools.values():
        pool.shutdown(wait=True, cancel_futures=True)
    _pools.clear()
