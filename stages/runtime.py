"""How a process trains: the numerics flags (params) and where training runs (environment).

Numerics are params (``runtime`` in params.yaml): oneDNN, op determinism, XLA, stacked
seeds and the seed block. oneDNN is read from the environment when TensorFlow loads, so
``apply`` must run before the first ``import tensorflow``; the stages therefore import
the engine and the families only after calling it.

Placement is not a param, so moving a study to another executor or cluster never makes
DVC rerun it. It is read from the environment (see the README):

- ``TRAINLAB_EXECUTOR``: ``local`` (in this process), ``process`` (a pool of worker processes
  on this machine; the default where it has more than one core, ``stages.engine.pool``) or
  ``dask`` (Dask distributed: the cluster at ``DASK_SCHEDULER_ADDRESS``, else a ``LocalCluster``
  on 127.0.0.1);
- ``TRAINLAB_WORKERS``: worker processes for ``process`` and for a Dask ``LocalCluster``
  (default: the machine's cores);
- ``TRAINLAB_THREADS``: TensorFlow intra/inter-op threads per process (default: TensorFlow's
  choice in this process; the cores divided among the workers in a worker; 1 on a Dask
  worker of a remote cluster, which runs one worker process per core).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from stages.params import ParamsError

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
        """Training runs in this machine's worker pool (``stages.engine.pool``), not in the stage's process."""
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
            return 1  # a remote cluster runs one worker process per core (see the README)
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


def set_environment(runtime: Mapping) -> None:
    """The variables TensorFlow reads when it loads (this process's, and any worker it then starts)."""
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = str(int(runtime["onednn"]))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def flags(settings: Mapping, cfg: Mapping) -> dict:
    """The runtime flags a section trains with: ``runtime``, with the section's own ``xla`` if it sets one."""
    out = dict(settings["runtime"])
    if cfg.get("xla") is not None:
        out["xla"] = cfg["xla"]
    return out


def apply(runtime: Mapping, threads: int | None = None) -> None:
    """Set oneDNN, op determinism and thread counts for this process.

    ``threads`` defaults to ``TRAINLAB_THREADS`` (0: TensorFlow's choice); workers pass theirs.
    """
    if "tensorflow" in sys.modules and os.environ.get("TF_ENABLE_ONEDNN_OPTS") != str(int(runtime["onednn"])):
        # Too late to change oneDNN in this process: say so rather than run with other numerics.
        raise RuntimeError("runtime.onednn must be applied before TensorFlow is imported")
    if threads is None:
        threads = placement().threads
    set_environment(runtime)

    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    if runtime["deterministic_ops"]:
        tf.config.experimental.enable_op_determinism()


_applied: dict[str, tuple] = {}  # in a long-lived worker: what this process was set up with


def apply_once(runtime: Mapping, threads: int) -> None:
    """``apply`` in a worker that may serve many shards (and studies): once per process.

    TensorFlow's threads and oneDNN cannot change once it has run, so a worker asked for other
    settings than it has says so (restart the workers) instead of training with other numerics.
    """
    wanted = (bool(runtime["onednn"]), bool(runtime["deterministic_ops"]), threads)
    if "settings" in _applied:
        if _applied["settings"] != wanted:
            raise RuntimeError(f"this worker process runs with (onednn, deterministic_ops, threads) = "
                               f"{_applied['settings']}, the study asks {wanted}: restart the workers")
        return
    apply(runtime, threads)
    _applied["settings"] = wanted


def describe(runtime: Mapping) -> dict[str, str]:
    """The numerics flags and library versions, for MLflow params (placement is not among them)."""
    from importlib.metadata import version  # not an import of TensorFlow: the stage may train in workers

    return {
        "runtime.onednn": str(runtime["onednn"]),
        "runtime.deterministic_ops": str(runtime["deterministic_ops"]),
        "runtime.xla": str(runtime["xla"]),
        "runtime.stack_seeds": str(runtime["stack_seeds"]),
        "runtime.seed_block": str(runtime["seed_block"]),
        "tensorflow": version("tensorflow"),
        "keras": version("keras"),
    }


_pending: dict[str, tuple[Mapping, int]] = {}  # flags a stage that trains in workers has not applied here


def start_training(settings: Mapping, cfg: Mapping, label: str,
                   epochs_key: str = "epochs") -> tuple[Callable[[list], list], dict]:
    """Apply the runtime flags (a section's own ``xla`` overrides ``runtime.xla``) and load the engine.

    Where training runs in workers, this process does not load TensorFlow (~8 s of CPU that the
    workers need): the flags wait until ``load_tensorflow`` is called by code that uses it here.
    Returns the function that trains a list of trials (after checking that their curves fit in
    memory; ``epochs_key`` names the epochs in params.yaml), and the flags in force (to log them).
    """
    where = placement()  # placement comes from the environment, never from params (DVC must not rerun)
    flags_in_force = flags(settings, cfg)
    if where.trains_here:
        apply(flags_in_force, where.threads)
    else:
        set_environment(flags_in_force)
        _pending["flags"] = (flags_in_force, where.threads)
    from stages.engine.executor import run_trials
    from stages.params import check_memory

    def execute(trials: list) -> list:
        check_memory(epochs_key, [t.epochs for t in trials])
        print(f"[{label}] {len(trials)} trials ({len({t.config for t in trials})} configurations, "
              f"{len({t.seed for t in trials})} seeds)", file=sys.stderr)
        return run_trials(trials, flags_in_force, label=label, placement=where)

    return execute, flags_in_force


def load_tensorflow() -> None:
    """Before a family uses TensorFlow in the stage's own process (e.g. a landscape evaluated after training
    in workers): apply the flags ``start_training`` left pending. A no-op where they are applied."""
    if "flags" in _pending:
        apply(*_pending.pop("flags"))


def check_tensorflow_flags() -> None:
    """At a stage's end: TensorFlow must not have been loaded here without the runtime flags."""
    if "flags" in _pending and "tensorflow" in sys.modules:
        raise RuntimeError("TensorFlow was loaded in the stage process without the runtime flags: "
                           "call stages.runtime.load_tensorflow() before using it there")
