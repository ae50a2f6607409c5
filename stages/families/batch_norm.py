"""Batch normalization (book chapter 8): where BatchNormalization goes and how fast the MLP learns.

Data: circles, unscaled. Model: Dense(50, he_uniform) with relu, then Dense(1, sigmoid);
binary cross-entropy, SGD(0.01, momentum 0.9), 100 epochs, batch 32. Placements: none
(the baseline), BatchNormalization after the relu, and before it (a linear Dense, then BN,
then the relu). Speed of learning is the number of epochs to reach 80% test accuracy.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd

from stages import params as P
from stages.data import load_prepared
from stages.engine.trial import Trial, TrialResult
from stages.families import common
from stages.figures import learning_curves
from stages.findings import Finding, below, epochs_to, final, less, similar

STUDY = "placement"
PLACEMENTS = ("none", "after", "before")
FIELDS = common.training_fields(
    hidden=P.Field(int, minimum=1),
    placements=P.Field(list, item=P.Field(str, choices=PLACEMENTS)),
    bn_momentum=P.Field(float, default=0.99, minimum=0, maximum=1),
    threshold=P.Field(float, default=0.8, minimum=0, maximum=1),
)


def check(section: dict, key: str, params: dict) -> dict:
    cfg = common.check_training(section, key, params, FIELDS)
    if len(set(cfg["placements"])) != len(cfg["placements"]):
        raise P.ParamsError(f"{key}.placements: each placement once, got {cfg['placements']}")
    return cfg


def model(n_inputs: int, hidden: int, placement: str, bn_momentum: float):
    import keras

    layers: list = [keras.Input((n_inputs,))]
    if placement == "before":  # BN normalises the pre-activations
        layers += [keras.layers.Dense(hidden, kernel_initializer="he_uniform"),
                   keras.layers.BatchNormalization(momentum=bn_momentum),
                   keras.layers.Activation("relu")]
    else:
        layers.append(keras.layers.Dense(hidden, activation="relu", kernel_initializer="he_uniform"))
        if placement == "after":  # BN normalises the relu outputs
            layers.append(keras.layers.BatchNormalization(momentum=bn_momentum))
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    return keras.Sequential(layers)


def trials(cfg: dict, seeds: list[int]) -> list[Trial]:
    data = load_prepared(cfg["data"]).split("raw")
    return [
        Trial(config=f"{STUDY}={placement}", seed=seed, data=data,
              build_model=partial(model, data.x_train.shape[1], cfg["hidden"], placement, cfg["bn_momentum"]),
              build_optimizer=common.optimizer_factory(cfg["optimizer"]),
              loss=cfg["loss"], metric="binary_accuracy", batch_size=cfg["batch_size"], epochs=cfg["epochs"],
              grad_stats=cfg["grad_stats"], tags={"batch_norm": placement})
        for placement in cfg["placements"] for seed in seeds
    ]


def first_epoch_at_or_above(values: np.ndarray, threshold: float) -> float:
    """1-based first epoch at or above ``threshold``; NaN if never (n in the summary counts those that got there)."""
    hits = np.flatnonzero(np.nan_to_num(values, nan=-np.inf) >= threshold)
    return float(hits[0] + 1) if len(hits) else math.nan


def trial_metrics(result: TrialResult, cfg: dict) -> dict[str, float]:
    t = cfg["threshold"]
    return {f"epochs_to_val_accuracy_{t:g}": first_epoch_at_or_above(result.history["val_accuracy"], t),
            f"epochs_to_accuracy_{t:g}": first_epoch_at_or_above(result.history["accuracy"], t)}


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    fig = learning_curves(history, STUDY, f"Batch normalization: none / after the relu / before it "
                                          f"(circles, {cfg['hidden']} relu nodes)",
                          metrics=("loss", "accuracy", "val_accuracy"))
    for ax in fig.axes[1:]:
        ax.axhline(cfg["threshold"], color="grey", linestyle="--", linewidth=0.8)
    return {STUDY: fig}


# The book's single runs (test accuracy).
BOOK = {f"{STUDY}=none": {"val_accuracy": 0.846}, f"{STUDY}=after": {"val_accuracy": 0.848},
        f"{STUDY}=before": {"val_accuracy": 0.830}}


def to_80(placement: str):
    """Epochs until the test accuracy first reaches 80% (never: epochs + 1)."""
    return epochs_to(f"{STUDY}={placement}", "val_accuracy", 0.8)


def acc(placement: str, metric: str = "val_accuracy"):
    return final(f"{STUDY}={placement}", metric)


FINDINGS = [
    Finding("bn_after_reaches_80_sooner", "BatchNormalization after the relu reaches 80% test accuracy in fewer "
            "epochs than the baseline (book ~20 vs 30-40)", less(to_80("after"), to_80("none"), test="mannwhitney")),
    Finding("baseline_80_within_40", "The baseline passes 80% test accuracy within 30-40 epochs (read as: "
            "fewer than 40)", below(to_80("none"), 40)),
    Finding("bn_after_80_within_20", "With BN after the relu, 80% test accuracy comes within about 20 epochs "
            "(read as: fewer than 25)", below(to_80("after"), 25)),
    Finding("bn_after_train_below_test", "With BN after the relu the training accuracy (batch statistics) sits "
            "below the test accuracy", less(acc("after", "accuracy"), acc("after"), test="paired")),
    Finding("bn_before_train_accuracy_low", "With BN before the relu the training accuracy hovers at only about "
            "70-75% (read as: below 0.78)", below(acc("before", "accuracy"), 0.78)),
    Finding("bn_before_worse_than_after", "BN before the relu ends with a lower test accuracy than BN after it "
            "(book 0.830 vs 0.848)", less(acc("before"), acc("after"))),
    Finding("bn_before_as_fast_as_baseline", "BN before the relu learns about as fast as the baseline: epochs to "
            "80% within ±10", similar(to_80("before"), to_80("none"), 10.0)),
]
