"""Where training runs: the environment, never params, so moving a study to another executor or cluster
never makes DVC rerun it (see docs/scale-out.md):

- ``TRAINLAB_EXECUTOR``: ``local`` (in the stage's process), ``process`` (a pool of worker processes
  the stage starts and shuts down; the default where the machine has more than one core) or ``dask``
  (Dask distributed: the cluster at ``DASK_SCHEDULER_ADDRESS``, else a ``LocalCluster`` on 127.0.0.1);
- ``TRAINLAB_WORKERS``: worker processes for ``process`` and for a Dask ``LocalCluster``
  (default: the machine's cores);
- ``TRAINLAB_THREADS``: TensorFlow intra/inter-op threads per process (default: TensorFlow's
  choice in this process; the cores divided among the workers in a worker; 1 on a Dask
  worker of a remote cluster, which runs one worker process per core).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from trainlab.params import ParamsError

EXECUTORS = ("local", "process", "dask")


class PlacementError(ParamsError):
    """A bad placement variable; caught wherever a bad param is, so it stops a stage in one line."""


@dataclass(frozen=True)
class Placement:
    """Where a stage trains; ``workers``/``threads`` 0 mean "choose for this machine"."""

    executor: str = "local"
    workers: int = 0
    threads: int = 0
    scheduler: str | None = None  # DASK_SCHEDULER_ADDRESS

    @property
    def trains_in_pool(self) -> bool:
        """Training runs in a pool of worker processes the stage starts (``executor.ProcessPool``)."""
        return self.executor == "process" and self.worker_count() > 1

    @property
    def trains_here(self) -> bool:
        """Training runs in the stage's own process, which therefore loads TensorFlow."""
        return not (self.trains_in_pool or self.executor == "dask")

    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1

    def worker_threads(self) -> int:
        """TensorFlow threads in each worker: pinned, so that workers do not oversubscribe the cores."""
        if self.threads:
            return self.threads
        if self.executor == "dask" and self.scheduler:
            return 1  # a remote cluster runs one worker process per core (docs/scale-out.md)
        return max(1, (os.cpu_count() or 1) // self.worker_count())


def _count(environ: Mapping[str, str], name: str) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or int(raw) < 1:
        raise PlacementError(f"{name}: expected an integer ≥ 1 (or unset to choose for this machine), got {raw!r}")
    return int(raw)


def default_executor() -> str:
    """``process`` where there is more than one core: one TensorFlow process keeps only about 1.3 of 2 cores
    busy, and two workers train the same trials to the same bits (tests/test_engine.py)."""
    return "process" if (os.cpu_count() or 1) > 1 else "local"


def placement(environ: Mapping[str, str] | None = None) -> Placement:
    """The placement the environment asks for; a bad value raises PlacementError naming the variable."""
    environ = os.environ if environ is None else environ
    executor = environ.get("TRAINLAB_EXECUTOR", "").strip() or default_executor()
    if executor not in EXECUTORS:
        raise PlacementError(f"TRAINLAB_EXECUTOR: expected one of {', '.join(EXECUTORS)}, got {executor!r}")
    scheduler = environ.get("DASK_SCHEDULER_ADDRESS", "").strip() or None
    return Placement(executor, _count(environ, "TRAINLAB_WORKERS"), _count(environ, "TRAINLAB_THREADS"), scheduler)
