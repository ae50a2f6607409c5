"""Batch normalization (book chapter 8): where BatchNormalization goes and how fast the MLP learns.

Data: circles, unscaled. Model: Dense(50, he_uniform) with relu, then Dense(1, sigmoid);
binary cross-entropy, SGD(0.01, momentum 0.9), 100 epochs, batch 32. Placements: none
(the baseline), BatchNormalization after the relu, and before it (a linear Dense, then BN,
then the relu). Speed of learning is the number of epochs to reach 80% test accuracy.
"""

from __future__ import annotations

from functools import partial

from trainlab import curves
from trainlab import params as P
from trainlab.configs import ConfigId, Study
from trainlab.data.prepared import load_prepared
from trainlab.engine.trial import Trial, TrialResult
from trainlab.families import common
from trainlab.family import Family
from trainlab.stats.findings import Finding, below, epochs_to, final, less, similar

PLACEMENTS = ("none", "after", "before")
FIELDS = common.training_fields(
    hidden=P.Field(int, minimum=1),
    placements=P.Field(list, item=P.Field(str, choices=PLACEMENTS)),
    bn_momentum=P.Field(float, default=0.99, minimum=0, maximum=1),
    threshold=P.Field(float, default=0.8, minimum=0, maximum=1),
)
PLACEMENT = Study("placement", param="placements")


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


def configs(cfg: dict) -> list[ConfigId]:
    """One configuration per placement, in the params' order."""
    return PLACEMENT.of(cfg["placements"])


def trials(cfg: dict, seeds: list[int]) -> list[Trial]:
    data = load_prepared(cfg["data"]).split("raw")
    return [
        Trial(config=config, seed=seed, data=data,
              build_model=partial(model, data.x_train.shape[1], cfg["hidden"], config.value, cfg["bn_momentum"]),
              build_optimizer=common.optimizer_factory(cfg["optimizer"]),
              loss=cfg["loss"], metric="binary_accuracy", batch_size=cfg["batch_size"], epochs=cfg["epochs"],
              grad_stats=cfg["grad_stats"], tags={"batch_norm": config.value})
        for config in configs(cfg) for seed in seeds
    ]


def trial_metrics(result: TrialResult, cfg: dict) -> dict[str, float]:
    """Epochs until the test and the training accuracy first reach the threshold (never: epochs + 1)."""
    t = cfg["threshold"]
    return {f"epochs_to_{metric}_{t:g}": curves.epochs_to(result.history[metric], t)
            for metric in ("val_accuracy", "accuracy")}


def findings(cfg: dict) -> list[Finding]:
    """What the book concludes; "fast" is epochs until the test accuracy first reaches ``threshold``."""
    t = cfg["threshold"]
    share = f"{t:.0%}"

    def to_threshold(placement: str):  # never reached: epochs + 1
        return epochs_to(PLACEMENT(placement), "val_accuracy", t)

    def acc(placement: str, metric: str = "val_accuracy"):
        return final(PLACEMENT(placement), metric)

    return [
        Finding("bn_after_reaches_80_sooner", f"BatchNormalization after the relu reaches {share} test accuracy in "
                "fewer epochs than the baseline (book ~20 vs 30-40)",
                less(to_threshold("after"), to_threshold("none"), test="mannwhitney")),
        Finding("baseline_80_within_40", f"The baseline passes {share} test accuracy within 30-40 epochs (read as: "
                "fewer than 40)", below(to_threshold("none"), 40)),
        Finding("bn_after_80_within_20", f"With BN after the relu, {share} test accuracy comes within about 20 "
                "epochs (read as: fewer than 25)", below(to_threshold("after"), 25)),
        Finding("bn_after_train_below_test", "With BN after the relu the training accuracy (batch statistics) sits "
                "below the test accuracy", less(acc("after", "accuracy"), acc("after"), test="paired")),
        Finding("bn_before_train_accuracy_low", "With BN before the relu the training accuracy hovers at only about "
                "70-75% (read as: below 0.78)", below(acc("before", "accuracy"), 0.78)),
        Finding("bn_before_worse_than_after", "BN before the relu ends with a lower test accuracy than BN after it "
                "(book 0.830 vs 0.848)", less(acc("before"), acc("after"))),
        Finding("bn_before_as_fast_as_baseline", "BN before the relu learns about as fast as the baseline: epochs to "
                f"{share} within ±10", similar(to_threshold("before"), to_threshold("none"), 10.0)),
    ]


# The book's single runs (test accuracy).
BOOK = {PLACEMENT("none"): {"val_accuracy": 0.846}, PLACEMENT("after"): {"val_accuracy": 0.848},
        PLACEMENT("before"): {"val_accuracy": 0.830}}

FAMILY = Family(
    name="batch_norm", doc=__doc__, fields=FIELDS, check=check, configs=configs,
    trials=trials, findings=findings, book=BOOK, trial_metrics=trial_metrics,
    needs_book_data=("its findings are the book's timings on the circles problem (epochs to 0.8 accuracy); a general "
                     "batch-norm lesson is not among them"),
)
