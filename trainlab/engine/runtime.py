"""How a process trains: the numerics flags (params ``runtime``), applied before TensorFlow loads.

Numerics are params: oneDNN, op determinism, XLA, stacked seeds and the seed block. oneDNN is read
from the environment when TensorFlow loads, so ``apply`` must run before the first ``import
tensorflow``; the stages therefore import the engine's TensorFlow modules only after calling it.
Where training runs is not a param (``trainlab.engine.placement``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from trainlab.engine.placement import placement


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


def prepare(runtime: Mapping, trains_here: bool, threads: int) -> None:
    """Before a stage trains: apply the flags where it trains in its own process; where it trains in
    workers, only set the environment they inherit, and leave the flags for ``load_tensorflow`` (this
    process then loads TensorFlow only if a family uses it here, e.g. to evaluate a landscape)."""
    if trains_here:
        apply(runtime, threads)
    else:
        set_environment(runtime)
        _pending["flags"] = (runtime, threads)


def load_tensorflow() -> None:
    """Before a family uses TensorFlow in the stage's own process (e.g. a landscape evaluated after training
    in workers): apply the flags ``executor.training`` left pending. A no-op where they are applied."""
    if "flags" in _pending:
        apply(*_pending.pop("flags"))


def check_tensorflow_flags() -> None:
    """At a stage's end: TensorFlow must not have been loaded here without the runtime flags."""
    if "flags" in _pending and "tensorflow" in sys.modules:
        raise RuntimeError("TensorFlow was loaded in the stage process without the runtime flags: "
                           "call trainlab.engine.runtime.load_tensorflow() before using it there")
