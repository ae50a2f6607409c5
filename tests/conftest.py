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

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def blobs_split():
    """The book's blobs-3 problem, first 500 rows train, last 500 test, one-hot labels."""
    from sklearn.datasets import make_blobs

    from stages.data import encode
    from stages.engine.trial import Split

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
    from stages.engine.trial import Trial

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
    from stages import params as P

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
    from stages import generate, prepare
    from stages.io import write_npz
    from stages.variants import check_variant

    for variant in variants:
        spec = check_variant(params, variant)
        data = generate.check_dataset(params, spec["dataset"])
        x, y = generate.make(data)
        n = data["n_train"]
        raw = {"x_train": x[:n], "y_train": y[:n], "x_test": x[n:], "y_test": y[n:]}
        write_npz(root / "data" / "prepared" / f"{variant}.npz", **prepare.prepare(raw, spec))
