"""Learning rate (book chapter 4): the rate, momentum, decay, plateau drops and adaptive optimizers.

Data: blobs-3, unscaled, 500 train rows. Model: Dense(50, relu, he_uniform) -> Dense(3, softmax),
categorical cross-entropy, 200 epochs, batch 32 (16 updates per epoch), the test split as validation.
Every study starts from the section's optimizer, SGD(lr=0.01) without momentum, and changes one thing:

- learning_rate: the rate, 1e0 ... 1e-7;
- momentum: 0, 0.5, 0.9, 0.99;
- decay: Keras 2's per-update inverse-time decay, lr_t = lr / (1 + decay * t), t = updates so far;
- patience: ReduceLROnPlateau(monitor=val_loss, factor=0.1, min_delta=1e-7) with patience 2 ... 15,
  each trial reducing its own rate on its own validation loss;
- optimizer: SGD, RMSprop, Adagrad, Adam as Keras names them, with their defaults.

The rate each epoch's last update used is recorded per epoch (``lr``). Speed: the first epoch with
test accuracy >= ``threshold``; stability: the mean absolute change of the test accuracy between
consecutive epochs over the last ``late_epochs``.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from trainlab import curves
from trainlab import params as P
from trainlab.configs import ConfigId, Study
from trainlab.engine.trial import Plateau, Trial, TrialResult
from trainlab.families import common
from trainlab.family import Family
from trainlab.stats import findings as F

MONITORS = ("val_loss", "loss", "val_accuracy", "accuracy")


def _sweep(item: P.Field, what: str) -> P.Field:
    return P.Field(list, item=item, nonempty=False, allowed=f"a list of {what} ([] skips the study)")


FIELDS = common.training_fields(
    loss=P.Field(str, choices=tuple(common.MULTICLASS)),
    learning_rates=_sweep(P.Field(float, **common.POSITIVE), "learning rates > 0"),
    momentums=_sweep(P.Field(float, minimum=0, maximum=1), "momentums from 0 to 1"),
    decays=_sweep(P.Field(float, minimum=0), "per-update decays ≥ 0"),
    patiences=_sweep(P.Field(int, minimum=0), "ReduceLROnPlateau patiences ≥ 0 (epochs)"),
    plateau=P.Field(dict, fields={
        "factor": P.Field(float, default=0.1, minimum=0, maximum=1, exclusive_minimum=True),
        "min_delta": P.Field(float, default=1e-4, minimum=0),
        "monitor": P.Field(str, default="val_loss", choices=MONITORS),
        "cooldown": P.Field(int, default=0, minimum=0),
        "min_lr": P.Field(float, default=0.0, minimum=0),
    }),
    optimizers=P.Field(dict, nonempty=False, allowed="a mapping label -> optimizer ({name: rmsprop, ...})"),
    threshold=P.Field(float, default=0.8, minimum=0, maximum=1),
    late_epochs=P.Field(int, default=50, minimum=1),
)

# The studies; the first three each sweep one key of the section's optimizer (params: <key>s).
LEARNING_RATE = Study("learning_rate", param="learning_rates")
MOMENTUM = Study("momentum", param="momentums")
DECAY = Study("decay", param="decays")
PATIENCE = Study("patience", param="patiences")
OPTIMIZER = Study("optimizer", param="optimizers")
SWEPT = {"learning_rate": LEARNING_RATE, "momentum": MOMENTUM, "decay": DECAY}


def check(section: dict, key: str, params: dict) -> dict:
    cfg = common.check_training(section, key, params, FIELDS, targets=common.MULTICLASS_TARGETS)
    common.check_multiclass_study(cfg, key, params)
    # Each study changes one key of the section's optimizer; the result is checked like any optimizer.
    base = {k: v for k, v in section["optimizer"].items() if v is not None}
    for option, study in SWEPT.items():
        for i, value in enumerate(cfg[study.param]):
            common.check_optimizer(base | {option: value}, f"{key}.{study.param}[{i}]")
    cfg["optimizers"] = {str(label): common.check_optimizer(spec, f"{key}.optimizers.{label}")
                         for label, spec in cfg["optimizers"].items()}
    if not configurations(cfg):
        raise P.ParamsError(f"{key}: nothing to train; every study list is empty")
    for study in (*SWEPT.values(), PATIENCE):
        ids = [str(config) for config in study.of(cfg[study.param])]
        if len(set(ids)) != len(ids):
            raise P.ParamsError(f"{key}.{study.param}: each value once, got {cfg[study.param]}")
    # Derived from the params, for the findings and figures that count updates (decay is per update).
    cfg["updates_per_epoch"] = common.updates_per_epoch(params, cfg["data"], cfg["batch_size"], f"{key}.data")
    return cfg


def configurations(cfg: dict) -> dict[ConfigId, tuple[dict, Plateau | None]]:
    """Each configuration's optimizer and plateau settings (None: no plateau)."""
    out = {study(value): (cfg["optimizer"] | {option: value}, None)
           for option, study in SWEPT.items() for value in cfg[study.param]}
    out |= {PATIENCE(p): (cfg["optimizer"], Plateau(patience=p, **cfg["plateau"])) for p in cfg["patiences"]}
    return out | {OPTIMIZER(label): (spec, None) for label, spec in cfg["optimizers"].items()}


def model(n_inputs: int, n_classes: int):
    return common.mlp(n_inputs, [50], n_classes, activation="relu", hidden_init="he_uniform")


def trials(cfg: dict, seeds: list[int]) -> list[Trial]:
    data, metric, n_classes = common.multiclass_data(cfg)
    out = []
    for config, (optimizer, plateau) in configurations(cfg).items():
        tags = {f"optimizer.{k}": v for k, v in optimizer.items() if v is not None}
        tags["plateau_patience"] = plateau.patience if plateau else "none"
        out += [Trial(config=config, seed=seed, data=data,
                      build_model=partial(model, data.x_train.shape[1], n_classes),
                      build_optimizer=common.optimizer_factory(optimizer),
                      loss=cfg["loss"], metric=metric, batch_size=cfg["batch_size"], epochs=cfg["epochs"],
                      plateau=plateau, grad_stats=cfg["grad_stats"], tags=tags)
                for seed in seeds]
    return out


def same_experiment(trial: Trial) -> tuple:
    # momentum=0, learning_rate=0.01 and optimizer=sgd are one experiment (SGD(0.01)): trained once.
    return tuple(sorted(trial.tags.items()))


def rate_cuts(lr: np.ndarray) -> float:
    """How many epochs ran at a lower rate than the one before (a plateau callback's cuts)."""
    return float(np.sum(lr[1:] < lr[:-1]))


def trial_metrics(result: TrialResult, cfg: dict) -> dict[str, float]:
    t, lr, accuracy = cfg["threshold"], result.history["lr"], result.history["val_accuracy"]
    metrics = {"final_lr": curves.final(lr),
               "final_lr_fraction": curves.final(lr) / float(lr[0]),  # how far the rate was cut (summary: 1e-6)
               f"epochs_to_val_accuracy_{t:g}": curves.epochs_to(accuracy, t),
               "volatility_val_accuracy": curves.volatility(accuracy, cfg["late_epochs"])}
    if result.config.study == PATIENCE.name:  # when, and how often, this trial's own plateau cut its rate
        metrics["lr_reductions"] = rate_cuts(lr)
        # The first epoch run below the starting rate (a plateau only cuts); never cut: epochs + 1.
        metrics["first_reduced_epoch"] = curves.epochs_to(lr, np.nextafter(float(lr[0]), 0.0), below=True)
    return metrics


# -- the book's findings, judged over seeds by the evaluate stage (trainlab.stats.findings) -----------------

def _gain(config: ConfigId) -> F.Quantity:
    """Test accuracy gained from the first epoch to the last."""
    return F.difference(F.final(config, "val_accuracy"), F.at_epoch(config, "val_accuracy", 1))


def _cuts(config: ConfigId) -> F.Quantity:
    """How many times the trial's own plateau callback cut its rate."""
    def compute(results: F.Results) -> pd.Series:
        table = results.curves(config, "lr")
        return pd.Series([rate_cuts(row) for row in table.to_numpy()], index=table.index)
    return F.custom(f"learning-rate cuts of {config}", [config], compute)


def end_rate(cfg: dict, decay: float) -> float:
    """The rate of the run's last update under per-update decay: update t (from 0) runs at lr0 / (1 + decay t)."""
    return cfg["optimizer"]["learning_rate"] / (1 + decay * (cfg["epochs"] * cfg["updates_per_epoch"] - 1))


def findings(cfg: dict) -> list[F.Finding]:
    t, late, epochs = cfg["threshold"], cfg["late_epochs"], cfg["epochs"]
    reached = f"{t:.0%} test accuracy"

    def test(config: ConfigId, metric: str = "val_accuracy") -> F.Quantity:
        return F.final(config, metric)

    def speed(config: ConfigId) -> F.Quantity:
        return F.epochs_to(config, "val_accuracy", t)

    def swing(config: ConfigId) -> F.Quantity:
        return F.volatility(config, "val_accuracy", last=late)

    def within_2_percent(config: ConfigId, rate: float) -> list[F.Statement]:
        return [F.above(test(config, "lr"), rate * 0.98), F.below(test(config, "lr"), rate * 1.02)]

    sgd = OPTIMIZER("sgd")
    nonzero_momentums = [MOMENTUM(m) for m in cfg["momentums"] if m > 0]
    fast, slow = DECAY(0.1), DECAY(0.0001)
    updates = epochs * cfg["updates_per_epoch"]
    return [
        F.Finding("lr_1_oscillates", f"With lr 1.0 the accuracy oscillates: over the last {late} epochs it swings "
                  "more from epoch to epoch than with lr 0.1",
                  F.greater(swing(LEARNING_RATE(1.0)), swing(LEARNING_RATE(0.1)))),
        F.Finding("lr_1e6_1e7_learn_nothing", "lr 1e-6 and 1e-7 learn nothing (read as: under 5 points of test "
                  f"accuracy gained in {epochs} epochs)",
                  F.all_of(F.below(_gain(LEARNING_RATE(1e-6)), 0.05), F.below(_gain(LEARNING_RATE(1e-7)), 0.05))),
        F.Finding("lr_0_1_learns_well", f"lr 0.1 gives good train and test accuracy (read as: above {t:g})",
                  F.all_of(F.above(test(LEARNING_RATE(0.1)), t), F.above(test(LEARNING_RATE(0.1), "accuracy"), t))),
        F.Finding("smaller_lr_slower", f"lr 0.1, 0.01, 0.001 learn progressively more slowly (epochs to {reached})",
                  F.all_of(F.less(speed(LEARNING_RATE(0.1)), speed(LEARNING_RATE(0.01)), test="mannwhitney"),
                           F.less(speed(LEARNING_RATE(0.01)), speed(LEARNING_RATE(0.001)), test="mannwhitney"))),
        F.Finding("momentum_learns_within_50", "With momentum 0.9 and 0.99 good accuracy comes within about 50 "
                  f"epochs ({reached} before epoch 50), sooner than without momentum",
                  F.all_of(F.below(speed(MOMENTUM(0.9)), 50), F.below(speed(MOMENTUM(0.99)), 50),
                           F.less(speed(MOMENTUM(0.9)), speed(MOMENTUM(0.0)), test="mannwhitney"))),
        F.Finding("momentum_steadier", "Every nonzero momentum ("
                  + ", ".join(f"{m.value:g}" for m in nonzero_momentums)
                  + f") gives a steadier test accuracy over the last {late} epochs than none",
                  F.all_of(*(F.less(swing(m), swing(MOMENTUM(0.0))) for m in nonzero_momentums))),
        F.Finding("fast_decay_performs_poorly", "Decay 0.1 and 0.01 cut the rate too fast and end worse than 1e-4",
                  F.all_of(F.less(test(fast), test(slow)), F.less(test(DECAY(0.01)), test(slow)))),
        F.Finding("decay_1e4_like_none", "Decay 1e-4 ends about as without decay (test accuracy within ±0.02)",
                  F.similar(test(slow), test(LEARNING_RATE(cfg["optimizer"]["learning_rate"])), 0.02)),
        F.Finding("decay_end_rates", f"After {updates:,} updates decay 0.1 has cut the rate to about "
                  f"{end_rate(cfg, 0.1):.2g} and 1e-4 to about {end_rate(cfg, 0.0001):.2g} (within 2%)",
                  F.all_of(*within_2_percent(fast, end_rate(cfg, 0.1)),
                           *within_2_percent(slow, end_rate(cfg, 0.0001)))),
        F.Finding("short_patience_stalls", "Patience 2 and 5 cut the rate early and stall at a worse training loss "
                  "than patience 10; train accuracy about 65% (patience 2, read as: below 0.70) and under 75% "
                  "(patience 5)",
                  F.all_of(F.greater(test(PATIENCE(2), "loss"), test(PATIENCE(10), "loss")),
                           F.greater(test(PATIENCE(5), "loss"), test(PATIENCE(10), "loss")),
                           F.below(test(PATIENCE(2), "accuracy"), 0.70),
                           F.below(test(PATIENCE(5), "accuracy"), 0.75))),
        F.Finding("patience_15_one_cut", f"Patience 15 cuts the rate only once in {epochs} epochs (read as: between "
                  "0.5 and 1.5 cuts)",
                  F.all_of(F.above(_cuts(PATIENCE(15)), 0.5), F.below(_cuts(PATIENCE(15)), 1.5))),
        F.Finding("adaptive_learn_within_50", "RMSprop and Adam learn the problem within about 50 epochs "
                  f"({reached} before epoch 50)",
                  F.all_of(F.below(speed(OPTIMIZER("rmsprop")), 50), F.below(speed(OPTIMIZER("adam")), 50))),
        F.Finding("adaptive_steadier_than_sgd", "The adaptive optimizers (Adagrad at the book's lr 0.01) swing less "
                  f"than SGD over the last {late} epochs",
                  F.all_of(*(F.less(swing(OPTIMIZER(o)), swing(sgd)) for o in ("rmsprop", "adagrad_lr0.01", "adam")))),
        F.Finding("sgd_needs_most_epochs", f"SGD (lr 0.01) needs nearly all of its {epochs} epochs to learn (book: "
                  f"200; read as: {reached} only after epoch 150)", F.above(speed(sgd), 150)),
    ]


# On other data (families.learning_rate.data a bundled or file data set) these are listed as "book data only";
# the rest (rates too small learn nothing, momentum and adaptive optimizers steady the accuracy, fast decay
# ends worse, slower with smaller rates) are general and judged on that data.
BOOK_ONLY = {
    "lr_1_oscillates": "the size of the swing is read off blobs-3's curves",
    "lr_0_1_learns_well": "the accuracy threshold is what blobs-3 reaches",
    "momentum_learns_within_50": "'within 50 epochs' is blobs-3's pace",
    "short_patience_stalls": "the 65 % and 75 % train accuracies are blobs-3's",
    "patience_15_one_cut": "when the plateau cuts depends on blobs-3's validation loss",
    "adaptive_learn_within_50": "'within 50 epochs' is blobs-3's pace",
    "sgd_needs_most_epochs": "'nearly all of 200 epochs' is blobs-3's pace",
}

FAMILY = Family(
    name="learning_rate", doc=__doc__, fields=FIELDS, check=check,
    configs=lambda cfg: list(configurations(cfg)),
    trials=trials, same_experiment=same_experiment, trial_metrics=trial_metrics,
    findings=findings, book_only=BOOK_ONLY,
)
