"""Loss functions (book chapter 3): which loss fits regression, binary and multi-class problems.

All three studies: Dense(hidden, relu, he_uniform) -> Dense(outputs, <activation>), SGD(0.01,
momentum 0.9), batch 32, the test split as validation.

- regression: make_regression with X and y standardised on all 1,000 rows (as the book does),
  25 relu nodes, a linear output, 100 epochs; losses MSE, MSLE (Keras clips both arguments at
  epsilon inside the log, so negative standardised targets count as ~0) and MAE; every loss
  also reports the mean squared error.
- binary: circles, unscaled, 50 nodes, 200 epochs; binary cross-entropy with a sigmoid output
  and {0, 1} labels; hinge and squared hinge with a tanh output and {-1, 1} labels.
- multiclass: blobs-3, unscaled, 50 nodes, 100 epochs; categorical cross-entropy (one-hot),
  sparse categorical cross-entropy (integer labels) and KL divergence (one-hot).

Accuracy of the tanh models (hinge, squared hinge) is sign agreement: a sample is right when
its output has the sign of its {-1, 1} label. The book's Keras 2 counted round(output) == label,
which also needs |output| >= 0.5; that number is reported beside it (``round_accuracy``, from the
final weights) so both can be compared with the book's printed values.

Stability (the book's "bumpy" curves): the mean absolute change of the test metric (MSE, or
accuracy) between consecutive epochs over the last ``late_epochs``; for regression also the
lowest test MSE and its epoch (the book sees MSLE's test MSE fall, then rise).
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd

from trainlab import curves
from trainlab import params as P
from trainlab.configs import ConfigId, Study
from trainlab.data.prepared import load_prepared
from trainlab.engine.trial import Trial, TrialResult
from trainlab.families import common
from trainlab.family import Family
from trainlab.stats import findings as F

TASKS = ("regression", "binary", "multiclass")
# loss -> (task, output activation, target encoding, metric)
LOSSES = {
    "mean_squared_error": ("regression", "linear", "raw", "mse"),
    "mean_squared_logarithmic_error": ("regression", "linear", "raw", "mse"),
    "mean_absolute_error": ("regression", "linear", "raw", "mse"),
    "binary_crossentropy": ("binary", "sigmoid", "raw", "binary_accuracy"),
    "hinge": ("binary", "tanh", "signed", "sign_accuracy"),
    "squared_hinge": ("binary", "tanh", "signed", "sign_accuracy"),
    "categorical_crossentropy": ("multiclass", "softmax", "onehot", "categorical_accuracy"),
    "sparse_categorical_crossentropy": ("multiclass", "softmax", "sparse", "sparse_categorical_accuracy"),
    "kl_divergence": ("multiclass", "softmax", "onehot", "categorical_accuracy"),
}
# One study per task, its settings the losses listed under ``<task>.losses``.
STUDIES = {task: Study(task, param=f"{task}.losses") for task in TASKS}
REGRESSION, BINARY, MULTICLASS = (STUDIES[task] for task in TASKS)
STUDY_FIELDS = {
    "data": P.Field(str, allowed="the name of a variant under prepare:"),
    "epochs": P.Field(int, minimum=1),
    "hidden": P.Field(int, minimum=1),
    "losses": P.Field(list, item=P.Field(str, choices=tuple(LOSSES))),
}
FIELDS = {
    "batch_size": P.Field(int, minimum=1),
    "optimizer": P.Field(dict),
    **{task: P.Field(dict, default=None, fields=STUDY_FIELDS) for task in TASKS},
    "late_epochs": P.Field(int, default=20, minimum=1),
    # seeds, sequential, grad_stats, xla: as every family has them
    **{k: v for k, v in common.training_fields().items() if k in ("seeds", "sequential", "grad_stats", "xla")},
}


def check(section: dict, key: str, params: dict) -> dict:
    cfg = common.check_section(section, key, FIELDS)
    cfg["optimizer"] = common.check_optimizer(cfg["optimizer"], f"{key}.optimizer")
    variants = params.get("prepare") or {}
    if not any(cfg[task] for task in TASKS):
        raise P.ParamsError(f"{key}: nothing to train; give at least one of {', '.join(TASKS)}")
    for task in TASKS:
        study = cfg[task]
        if study is None:
            continue
        if study["data"] not in variants:
            raise P.ParamsError(f"{key}.{task}.data: expected one of {', '.join(variants)} (the variants under "
                                f"prepare:), got {study['data']!r}")
        found, described, _ = common.task_of(params, study["data"])
        common.check_batch_size(cfg["batch_size"], f"{key}.batch_size", params, study["data"])
        if found != task:
            raise P.ParamsError(f"{key}.{task}.data: expected a {task} data set, got {study['data']!r} ({described})")
        if task != "regression" and variants[study["data"]].get("y", "none") != "none":
            raise P.ParamsError(f"{key}.{task}.data: {study['data']!r} scales the class labels (y); "
                                f"use a variant with y: none")
        for i, loss in enumerate(study["losses"]):
            if LOSSES[loss][0] != task:
                fits = ", ".join(name for name, spec in LOSSES.items() if spec[0] == task)
                raise P.ParamsError(f"{key}.{task}.losses[{i}]: {loss!r} is a {LOSSES[loss][0]} loss and does not "
                                    f"fit the {task} task ({described}); expected one of {fits}")
        if len(set(study["losses"])) != len(study["losses"]):
            raise P.ParamsError(f"{key}.{task}.losses: each loss once, got {study['losses']}")
        if cfg["late_epochs"] > study["epochs"]:
            raise P.ParamsError(f"{key}.late_epochs: expected at most {task}.epochs={study['epochs']}, "
                                f"got {cfg['late_epochs']}")
    return cfg


def configurations(cfg: dict) -> list[ConfigId]:
    """Every (task, loss) the params train, task by task."""
    return [STUDIES[task](loss) for task in TASKS if cfg[task] is not None for loss in cfg[task]["losses"]]


def model(n_inputs: int, hidden: int, n_outputs: int, output_activation: str):
    return common.mlp(n_inputs, [hidden], n_outputs, activation="relu", hidden_init="he_uniform",
                      output_activation=output_activation)


def trials(cfg: dict, seeds: list[int]) -> list[Trial]:
    out = []
    for config in configurations(cfg):
        task, loss, study = config.study, config.value, cfg[config.study]
        _, activation, target, metric = LOSSES[loss]
        data = load_prepared(study["data"]).split(target)
        if task != "multiclass":
            n_outputs = 1
        elif target == "sparse":
            n_outputs = int(max(data.y_train.max(), data.y_val.max())) + 1
        else:
            n_outputs = data.y_train.shape[1]
        out += [Trial(config=config, seed=seed, data=data,
                      build_model=partial(model, data.x_train.shape[1], study["hidden"], n_outputs, activation),
                      build_optimizer=common.optimizer_factory(cfg["optimizer"]),
                      loss=loss, metric=metric, batch_size=cfg["batch_size"], epochs=study["epochs"],
                      grad_stats=cfg["grad_stats"],
                      tags={"task": task, "loss": loss, "output_activation": activation, "targets": target,
                            "data": study["data"]})
                for seed in seeds]
    return out


def round_accuracy(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """Keras 2's binary accuracy for a relu -> tanh model: mean(round(output) == label), labels in {-1, 1}."""
    hidden = np.maximum(x @ weights[0] + weights[1], 0.0)
    output = np.tanh(hidden @ weights[2] + weights[3])[:, 0]
    return float(np.mean(np.round(output) == y))


def trial_metrics(result: TrialResult, cfg: dict) -> dict[str, float]:
    task = result.tags["task"]
    metric = "val_mse" if task == "regression" else "val_accuracy"
    values = result.history[metric]
    out = {f"volatility_{metric}": curves.volatility(values, cfg["late_epochs"])}  # stability, late epochs
    if task == "regression":  # MSLE's test MSE falls, then rises: where it bottoms out
        lowest = curves.best(values, "min")
        out["min_val_mse"] = lowest
        out["min_val_mse_epoch"] = curves.epochs_to(values, lowest, below=True) if math.isfinite(lowest) else math.nan
    if result.tags["output_activation"] == "tanh" and not result.diverged:
        data = load_prepared(result.tags["data"]).split("signed")
        out["round_accuracy"] = round_accuracy(result.weights, data.x_train, data.y_train)
        out["val_round_accuracy"] = round_accuracy(result.weights, data.x_val, data.y_val)
    return out


# -- the book's findings, judged over seeds by the evaluate stage (trainlab.stats.findings) -----------------

def _rise_after_minimum(config: ConfigId) -> F.Quantity:
    """How far the final test MSE sits above its lowest value, relative to that lowest value."""
    def compute(results: F.Results) -> pd.Series:
        table = results.curves(config, "val_mse")
        return pd.Series([curves.final(row) / curves.best(row, "min") - 1.0 for row in table.to_numpy()],
                         index=table.index)
    return F.custom(f"final / lowest test MSE − 1 of {config}", [config], compute)


MSE, MSLE, MAE = REGRESSION.of(["mean_squared_error", "mean_squared_logarithmic_error", "mean_absolute_error"])
BCE, HINGE, SQUARED_HINGE = BINARY.of(["binary_crossentropy", "hinge", "squared_hinge"])
CCE, SPARSE, KL = MULTICLASS.of(["categorical_crossentropy", "sparse_categorical_crossentropy", "kl_divergence"])


def findings(cfg: dict) -> list[F.Finding]:
    late = cfg["late_epochs"]

    def test(config: ConfigId, metric: str = "val_accuracy") -> F.Quantity:
        return F.final(config, metric)

    return [
        F.Finding("mse_fits_the_gaussian_target", "MSE learns the standardised regression target almost exactly "
                  "(book test MSE 0.001; read as: below 0.01)", F.below(test(MSE, "val_mse"), 0.01)),
        F.Finding("msle_worse_than_mse", "MSLE ends with a higher test MSE than MSE (book 0.184 vs 0.001)",
                  F.greater(test(MSLE, "val_mse"), test(MSE, "val_mse"))),
        F.Finding("msle_test_mse_falls_then_rises", "MSLE's test MSE drops quickly, then rises again (book: from "
                  "about epoch 20; read as: it ends at least 10% above its lowest value)",
                  F.above(_rise_after_minimum(MSLE), 0.10)),
        F.Finding("mae_good_but_bumpy", "MAE also reaches a low test MSE (book 0.002; read as: below 0.01), but its "
                  f"curve is bumpier than MSE's over the last {late} epochs",
                  F.all_of(F.below(test(MAE, "val_mse"), 0.01),
                           F.greater(F.volatility(MAE, "val_mse", last=late),
                                     F.volatility(MSE, "val_mse", last=late)))),
        F.Finding("bce_learns_circles", "Binary cross-entropy learns the circles (book test accuracy 0.852; read as: "
                  "above 0.8)", F.above(test(BCE), 0.8)),
        F.Finding("hinge_slightly_worse_than_bce", "Hinge ends a little below binary cross-entropy (book 0.740 vs "
                  "0.852, in Keras 2's round(tanh) accuracy; judged here on sign accuracy)",
                  F.less(test(HINGE), test(BCE))),
        F.Finding("squared_hinge_worst", "Squared hinge ends below hinge (book 0.646 vs 0.740, in Keras 2's "
                  "round(tanh) accuracy; judged here on sign accuracy)",
                  F.less(test(SQUARED_HINGE), test(HINGE))),
        F.Finding("cce_learns_blobs", "Categorical cross-entropy learns the 3 blobs (book test accuracy 0.822; read "
                  "as: above 0.8)", F.above(test(CCE), 0.8)),
        F.Finding("sparse_same_as_cce", "Sparse categorical cross-entropy performs as categorical cross-entropy "
                  "(test accuracy within ±0.01)", F.similar(test(SPARSE), test(CCE), 0.01)),
        F.Finding("kl_same_as_cce", "With one-hot targets KL divergence behaves as categorical cross-entropy (test "
                  "accuracy within ±0.01)", F.similar(test(KL), test(CCE), 0.01)),
    ]


# What the book prints (one run each). Its hinge accuracies are Keras 2's round(tanh) == label.
BOOK = {
    MSE: {"mse": 0.000, "val_mse": 0.001},
    MSLE: {"mse": 0.165, "val_mse": 0.184},
    MAE: {"mse": 0.002, "val_mse": 0.002},
    BCE: {"accuracy": 0.836, "val_accuracy": 0.852},
    HINGE: {"round_accuracy": 0.792, "val_round_accuracy": 0.740},
    SQUARED_HINGE: {"round_accuracy": 0.682, "val_round_accuracy": 0.646},
    CCE: {"accuracy": 0.840, "val_accuracy": 0.822},
    SPARSE: {"accuracy": 0.832, "val_accuracy": 0.818},
    KL: {"accuracy": 0.822, "val_accuracy": 0.822},
}

FAMILY = Family(
    name="loss_functions", doc=__doc__, fields=FIELDS, check=check, configs=configurations,
    trials=trials, trial_metrics=trial_metrics, findings=findings, book=BOOK,
    needs_book_data=("each study is tied to one of the book's three problems and its printed errors; use data_scaling "
                     "or capacity for your own data"),
)
