"""The runtime flags that change numerics, applied before TensorFlow is imported.

oneDNN is read from the environment when TensorFlow loads, so ``apply`` must run
before the first ``import tensorflow``; the stages therefore import the engine
and the families only after calling it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping


def apply(runtime: Mapping) -> None:
    """Set oneDNN, op determinism and thread counts for this process."""
    if "tensorflow" in sys.modules and os.environ.get("TF_ENABLE_ONEDNN_OPTS") != str(int(runtime["onednn"])):
        # Too late to change oneDNN in this process: say so rather than run with other numerics.
        raise RuntimeError("runtime.onednn must be applied before TensorFlow is imported")
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = str(int(runtime["onednn"]))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")

    import tensorflow as tf

    if runtime["threads"]:
        tf.config.threading.set_intra_op_parallelism_threads(runtime["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(runtime["threads"])
    if runtime["deterministic_ops"]:
        tf.config.experimental.enable_op_determinism()


def describe(runtime: Mapping) -> dict[str, str]:
    """The flags and library versions, for MLflow params."""
    import keras
    import tensorflow as tf

    return {
        "runtime.onednn": str(runtime["onednn"]),
        "runtime.deterministic_ops": str(runtime["deterministic_ops"]),
        "runtime.xla": str(runtime["xla"]),
        "runtime.threads": str(runtime["threads"]),
        "runtime.workers": str(runtime["workers"]),
        "runtime.stack_seeds": str(runtime["stack_seeds"]),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def start_training(settings: Mapping, cfg: Mapping, label: str,
                   epochs_key: str = "epochs") -> tuple[Callable[[list], list], dict]:
    """Apply the runtime flags (a section's own ``xla`` overrides ``runtime.xla``) and load the engine.

    Returns the function that trains a list of trials (after checking that their curves fit in
    memory; ``epochs_key`` names the epochs in params.yaml), and the flags in force (to log them).
    """
    flags = dict(settings["runtime"])
    if cfg.get("xla") is not None:
        flags["xla"] = cfg["xla"]
    apply(flags)
    from stages.engine.executor import run_trials
    from stages.params import check_memory

    def execute(trials: list) -> list:
        check_memory(epochs_key, [t.epochs for t in trials])
        print(f"[{label}] {len(trials)} trials ({len({t.config for t in trials})} configurations, "
              f"{len({t.seed for t in trials})} seeds)", file=sys.stderr)
        return run_trials(trials, flags, label=label)

    return execute, flags
