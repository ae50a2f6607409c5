"""Shared fixtures: a small data set and helpers to build trials with the real engine."""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# Tests train in their own process unless they choose a placement: the default process pool would start
# TensorFlow workers for every stage a test runs (tests/test_pipeline.py and test_engine.py check the pool).
os.environ.setdefault("TRAINLAB_EXECUTOR", "local")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def blobs_split():
    """The book's blobs-3 problem, first 500 rows train, last 500 test, one-hot labels."""
    from sklearn.datasets import make_blobs

    from trainlab.data.prepared import Split, encode

    x, y = make_blobs(n_samples=1000, centers=3, n_features=2, cluster_std=2, random_state=2)
    y_train, y_test = encode(y[:500], y[500:], "onehot")
    x = x.astype(np.float32)
    return Split(x[:500], y_train, x[500:], y_test)


def small_model(hidden: int = 8, batch_norm: bool = False):
    import keras

    layers = [keras.Input((2,)), keras.layers.Dense(hidden, activation="relu", kernel_initializer="he_uniform")]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    layers.append(keras.layers.Dense(3, activation="softmax"))
    return keras.Sequential(layers)


def sgd(learning_rate: float = 0.01, momentum: float = 0.9, **clip):
    import keras

    return keras.optimizers.SGD(learning_rate, momentum=momentum, **clip)


def make_trial(split, config: str = "a", seed: int = 1, epochs: int = 3, batch_size: int = 32,
               hidden: int = 8, batch_norm: bool = False, learning_rate: float = 0.01, **clip):
    from trainlab.engine.trial import Trial

    return Trial(config=config, seed=seed, data=split,
                 build_model=partial(small_model, hidden, batch_norm),
                 build_optimizer=partial(sgd, learning_rate, 0.9, **clip),
                 loss="categorical_crossentropy", metric="categorical_accuracy",
                 batch_size=batch_size, epochs=epochs)


def copy_repo(destination: Path) -> Path:
    """A fresh git repository holding the tracked (and new, unignored) files of this one."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    subprocess.run(["git", "init", "-q"], cwd=destination, check=True)
    return destination


def repo_params() -> dict:
    """This repository's params.yaml."""
    from trainlab import params as P

    return P.load(REPO / "params.yaml")


def with_change(params: dict, key: str, value) -> dict:
    """A deep copy of params with ``key`` (dotted) set to ``value``, or removed when value is ``...``."""
    changed = yaml.safe_load(yaml.safe_dump(params))
    *parents, last = key.split(".")
    node = changed
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return changed


def write_prepared(root: Path, params: dict, variants) -> None:
    """data/prepared/<variant>.npz under ``root``, made by the real generate and prepare code."""
    from trainlab.data import datasets, scaling
    from trainlab.data.variants import check_variant
    from trainlab.io import write_npz

    for variant in variants:
        spec = check_variant(params, variant)
        raw, _ = datasets.raw(params, spec["dataset"])
        write_npz(root / "data" / "prepared" / f"{variant}.npz", **scaling.prepare(raw, spec))


def tiny_family_trials(split, seeds=(1, 2), epochs: int = 3) -> list:
    """The learning_rate family's case in small: a section rate of 0.01, configurations that change it
    (``learning_rate=1``) or the optimizer, each through ``common.optimizer_factory`` as the families do."""
    from trainlab.engine.trial import Trial
    from trainlab.families import common

    section = {"name": "sgd", "learning_rate": 0.01}
    configs = {"learning_rate=1": section | {"learning_rate": 1.0}, "learning_rate=0.01": section,
               "optimizer=adam": {"name": "adam"}}
    return [Trial(config=config, seed=seed, data=split, build_model=partial(common.mlp, 2, [8], 3),
                  build_optimizer=common.optimizer_factory(common.check_optimizer(spec, "unit.optimizer")),
                  loss="categorical_crossentropy", metric="categorical_accuracy", batch_size=50, epochs=epochs,
                  tags={f"optimizer.{k}": v for k, v in common.check_optimizer(spec, "k").items()})
            for config, spec in configs.items() for seed in seeds]


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory, blobs_split):
    """A SQLite store holding one tiny family trained for real (3 configurations x 2 seeds, 3 epochs) and
    logged by ``tracking.log_family`` as the train stage logs it, inside a DVC experiment ``tiny-exp``."""
    import dataclasses
    import time

    import trainlab.engine.population  # noqa: F401  TensorFlow loads here, not inside the timed training below
    from trainlab import tracking
    from trainlab.engine.executor import run_trials
    from trainlab.stats.results import summarize

    folder = tmp_path_factory.mktemp("store")
    split = dataclasses.replace(blobs_split, name="blobs3", source="data/prepared/blobs3.npz")
    trials = tiny_family_trials(split)
    started = time.time()
    results = run_trials(trials, {"xla": False, "stack_seeds": True}, label="tiny")
    trained = time.time() - started
    def best(r) -> dict:
        return {"best_val_accuracy": float(max(r.history["val_accuracy"]))}

    summary = summarize(results, best)  # as the train stage summarises a family with trial_metrics
    section = {"seed": 1, "seeds": 2, "unit": {"optimizer": {"name": "sgd", "learning_rate": 0.01}, "epochs": 3}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        patch.setenv("DVC_EXP_NAME", "tiny-exp")
        parents = tracking.log_family("unit", results, summary, stage="train@unit", section=section,
                                      params={"runtime.xla": "False"},
                                      trial_metrics=best)
    return {"folder": folder, "uri": f"sqlite:///{folder / 'mlflow.db'}", "parents": parents, "results": results,
            "trials": trials, "summary": summary, "trained_seconds": trained}


def processes_in(repo: Path) -> list[int]:
    """The ids of the live processes (other than this test process) whose working directory is ``repo``:
    what a stage run there left running."""
    found = []
    for cwd in Path("/proc").glob("[0-9]*/cwd"):
        try:
            pid = int(cwd.parent.name)
            if pid != os.getpid() and Path(os.readlink(cwd)) == Path(repo).resolve():
                found.append(pid)
        except (OSError, ValueError):
            continue
    return sorted(found)
