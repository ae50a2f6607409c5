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

import math
from functools import partial

import numpy as np
import pandas as pd

from stages import findings as F
from stages import params as P
from stages.engine.trial import Plateau, Trial, TrialResult
from stages.families import common
from stages.figures import curve_band
from stages.results import epochs_to, volatility

MONITORS = ("val_loss", "loss", "val_accuracy", "accuracy")
SWEPT = ("learning_rate", "momentum", "decay")  # optimizer keys a study sweeps (params: <key>s)


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




def check(section: dict, key: str, params: dict) -> dict:
    cfg = common.check_training(section, key, params, FIELDS, targets=common.MULTICLASS_TARGETS)
    common.check_multiclass_study(cfg, key, params)
    # Each study changes one key of the section's optimizer; the result is checked like any optimizer.
    base = {k: v for k, v in section["optimizer"].items() if v is not None}
    for option in SWEPT:
        for i, value in enumerate(cfg[f"{option}s"]):
            common.check_optimizer(base | {option: value}, f"{key}.{option}s[{i}]")
    cfg["optimizers"] = {str(label): common.check_optimizer(spec, f"{key}.optimizers.{label}")
                         for label, spec in cfg["optimizers"].items()}
    if not configurations(cfg):
        raise P.ParamsError(f"{key}: nothing to train; every study list is empty")
    for study in ("learning_rates", "momentums", "decays", "patiences"):
        ids = [f"{v:g}" for v in cfg[study]]
        if len(set(ids)) != len(ids):
            raise P.ParamsError(f"{key}.{study}: each value once, got {cfg[study]}")
    return cfg


def configurations(cfg: dict) -> dict[str, tuple[dict, Plateau | None]]:
    """Configuration id -> (optimizer, plateau settings or None)."""
    out = {f"{option}={value:g}": (cfg["optimizer"] | {option: value}, None)
           for option in SWEPT for value in cfg[f"{option}s"]}
    out |= {f"patience={p}": (cfg["optimizer"], Plateau(patience=p, **cfg["plateau"])) for p in cfg["patiences"]}
    return out | {f"optimizer={label}": (spec, None) for label, spec in cfg["optimizers"].items()}


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


def run(cfg: dict, seeds: list[int], execute) -> list[TrialResult]:
    # momentum=0, learning_rate=0.01 and optimizer=sgd are one experiment (SGD(0.01)): trained once.
    return common.train_unique(trials(cfg, seeds), lambda t: tuple(sorted(t.tags.items())), execute)


def trial_metrics(result: TrialResult, cfg: dict) -> dict[str, float]:
    t, lr = cfg["threshold"], result.history["lr"]
    metrics = {"final_lr": float(lr[-1]),
               "final_lr_fraction": float(lr[-1] / lr[0]),  # how far the rate was cut (the summary rounds to 1e-6)
               f"epochs_to_val_accuracy_{t:g}": epochs_to(result.history["val_accuracy"], t),
               "volatility_val_accuracy": volatility(result.history["val_accuracy"], cfg["late_epochs"])}
    if result.config.startswith("patience="):  # when, and how often, this trial's own plateau cut its rate
        drops = np.flatnonzero(lr[1:] < lr[:-1]) + 2  # 1-based epochs that ran at a lower rate than the one before
        metrics["lr_reductions"] = float(len(drops))
        metrics["first_reduced_epoch"] = float(drops[0]) if len(drops) else math.nan
    return metrics


# -- figures --------------------------------------------------------------------------------

def _band(ax, history: pd.DataFrame, config: str, metric: str, label: str, **style) -> None:
    band = curve_band(history, config, metric)
    line, = ax.plot(band.index, band["mean"], label=label, linewidth=1, **style)
    ax.fill_between(band.index, band["mean"] - band["std"], band["mean"] + band["std"],
                    color=line.get_color(), alpha=0.2, linewidth=0)


def _accuracy_panels(axes, history: pd.DataFrame, configs: list[str]) -> None:
    """The book's small multiples: per configuration, train and test accuracy."""
    for ax, config in zip(axes, configs):
        _band(ax, history, config, "accuracy", "train")
        _band(ax, history, config, "val_accuracy", "test")
        ax.set_title(config, fontsize="small")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize="small")


def _title(fig, title: str, history: pd.DataFrame) -> None:
    fig.suptitle(f"{title}\nmean over {history['seed'].nunique()} seeds, band = ±1 std")
    fig.tight_layout()


def grid(history: pd.DataFrame, configs: list[str], title: str, ncols: int = 4):
    import matplotlib.pyplot as plt

    nrows = math.ceil(len(configs) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.9 * nrows), sharey=True, squeeze=False)
    _accuracy_panels(list(axes.flat), history, configs)
    for ax in list(axes.flat)[len(configs):]:
        ax.set_visible(False)
    _title(fig, title, history)
    return fig


def decay_figure(history: pd.DataFrame, configs: list[str], cfg: dict):
    """The book's decay formula over 200 updates, the rate actually applied per epoch, and the accuracy."""
    import matplotlib.pyplot as plt

    ncols = max(2, len(configs))
    fig = plt.figure(figsize=(3.4 * ncols, 6.2))
    top = fig.add_gridspec(2, 2, top=0.86)
    formula, applied = fig.add_subplot(top[0, 0]), fig.add_subplot(top[0, 1])
    lr0, updates = cfg["optimizer"]["learning_rate"], np.arange(1, 201)
    for config in configs:
        decay = float(config.split("=", 1)[1])
        formula.plot(updates, lr0 / (1 + decay * updates), label=config, linewidth=1)
        band = curve_band(history, config, "lr")
        applied.plot(band.index, band["mean"], label=config, linewidth=1)
    formula.set(xlabel="update", ylabel="learning rate", title=f"lr0 / (1 + decay * update), lr0={lr0:g}")
    applied.set(xlabel="epoch", ylabel="learning rate (last update)", yscale="log",
                title=f"rate of each epoch's last update (batch {cfg['batch_size']})")
    for ax in (formula, applied):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    bottom = fig.add_gridspec(1, ncols, bottom=0.08, top=0.40)
    axes = [fig.add_subplot(bottom[0, i]) for i in range(len(configs))]
    _accuracy_panels(axes, history, configs)
    fig.suptitle(f"Per-update learning rate decay, SGD(lr={lr0:g})\n"
                 f"mean over {history['seed'].nunique()} seeds, band = ±1 std")
    return fig


def plateau_figure(history: pd.DataFrame, configs: list[str]):
    """The book's three plots: each trial's own learning rate, train loss and train accuracy per epoch."""
    import matplotlib.pyplot as plt

    fig, (rate, loss, accuracy) = plt.subplots(1, 3, figsize=(16, 4))
    for i, config in enumerate(configs):
        color = f"C{i}"
        rows = history[(history["config"] == config) & (history["metric"] == "lr")]
        for j, (_, trace) in enumerate(rows.groupby("seed")):
            rate.plot(trace["epoch"], trace["value"], color=color, linewidth=0.8, alpha=0.7,
                      label=config if j == 0 else None)
        _band(loss, history, config, "loss", config, color=color)
        _band(accuracy, history, config, "accuracy", config, color=color)
    rate.set(xlabel="epoch", ylabel="learning rate", yscale="log", title="learning rate, one line per seed")
    loss.set(xlabel="epoch", ylabel="train loss", title="train loss")
    accuracy.set(xlabel="epoch", ylabel="train accuracy", title="train accuracy")
    for ax in (rate, loss, accuracy):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    _title(fig, "ReduceLROnPlateau on validation loss, per trial", history)
    return fig


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    configs = list(history["config"].unique())

    def of(study: str) -> list[str]:
        return [c for c in configs if c.split("=", 1)[0] == study]

    out = {}
    if of("learning_rate"):
        out["learning_rate"] = grid(history, of("learning_rate"), "Learning rate, SGD without momentum")
    if of("momentum"):
        out["momentum"] = grid(history, of("momentum"), f"Momentum, SGD(lr={cfg['optimizer']['learning_rate']:g})")
    if of("decay"):
        out["decay"] = decay_figure(history, of("decay"), cfg)
    if of("patience"):
        out["patience"] = plateau_figure(history, of("patience"))
    if of("optimizer"):
        out["optimizer"] = grid(history, of("optimizer"), "Optimizers with Keras defaults", ncols=len(of("optimizer")))
    return out


# -- the book's findings, judged over seeds by the evaluate stage (stages.findings) -----------------

def _test(config: str, metric: str = "val_accuracy") -> F.Quantity:
    return F.final(config, metric)


def _to_80(config: str, metric: str = "val_accuracy") -> F.Quantity:
    return F.epochs_to(config, metric, 0.8)


def _swing(config: str, metric: str = "val_accuracy") -> F.Quantity:
    return F.volatility(config, metric, last=50)


def _gain(config: str) -> F.Quantity:
    """Test accuracy gained from the first epoch to the last."""
    return F.difference(F.final(config, "val_accuracy"), F.at_epoch(config, "val_accuracy", 1))


def _drops(config: str) -> F.Quantity:
    """How many times the trial's own plateau callback cut its rate."""
    def compute(results: F.Results) -> pd.Series:
        lr = results.curves(config, "lr").to_numpy()
        return pd.Series((lr[:, 1:] < lr[:, :-1]).sum(axis=1), index=results.curves(config, "lr").index)
    return F.custom(f"learning-rate cuts of {config}", compute)


FINDINGS = [
    F.Finding("lr_1_oscillates", "With lr 1.0 the accuracy oscillates: it swings more from epoch to epoch than "
              "with lr 0.1", F.greater(_swing("learning_rate=1"), _swing("learning_rate=0.1"))),
    F.Finding("lr_1e6_1e7_learn_nothing", "lr 1e-6 and 1e-7 learn nothing (read as: under 5 points of test "
              "accuracy gained in 200 epochs)",
              F.all_of(F.below(_gain("learning_rate=1e-06"), 0.05), F.below(_gain("learning_rate=1e-07"), 0.05))),
    F.Finding("lr_0_1_learns_well", "lr 0.1 gives good train and test accuracy (read as: above 0.8)",
              F.all_of(F.above(_test("learning_rate=0.1"), 0.8), F.above(_test("learning_rate=0.1", "accuracy"), 0.8))),
    F.Finding("smaller_lr_slower", "lr 0.1, 0.01, 0.001 learn progressively more slowly (epochs to 80% test accuracy)",
              F.all_of(F.less(_to_80("learning_rate=0.1"), _to_80("learning_rate=0.01"), test="mannwhitney"),
                       F.less(_to_80("learning_rate=0.01"), _to_80("learning_rate=0.001"), test="mannwhitney"))),
    F.Finding("momentum_learns_within_50", "With momentum 0.9 and 0.99 good accuracy comes within about 50 epochs "
              "(80% test accuracy before epoch 50), sooner than without momentum",
              F.all_of(F.below(_to_80("momentum=0.9"), 50), F.below(_to_80("momentum=0.99"), 50),
                       F.less(_to_80("momentum=0.9"), _to_80("momentum=0"), test="mannwhitney"))),
    F.Finding("momentum_steadier", "Every nonzero momentum gives a steadier test accuracy than none",
              F.all_of(*(F.less(_swing(f"momentum={m}"), _swing("momentum=0")) for m in ("0.5", "0.9", "0.99")))),
    F.Finding("fast_decay_performs_poorly", "Decay 0.1 and 0.01 cut the rate too fast and end worse than 1e-4",
              F.all_of(F.less(_test("decay=0.1"), _test("decay=0.0001")),
                       F.less(_test("decay=0.01"), _test("decay=0.0001")))),
    F.Finding("decay_1e4_like_none", "Decay 1e-4 ends about as without decay (test accuracy within ±0.02)",
              F.similar(_test("decay=0.0001"), _test("learning_rate=0.01"), 0.02)),
    F.Finding("decay_end_rates", "After 3,200 updates decay 0.1 has cut the rate to about 3.1e-5 and 1e-4 to about "
              "0.0076 (within 2%)",
              F.all_of(F.above(F.final("decay=0.1", "lr"), 3.05e-5), F.below(F.final("decay=0.1", "lr"), 3.18e-5),
                       F.above(F.final("decay=0.0001", "lr"), 7.42e-3),
                       F.below(F.final("decay=0.0001", "lr"), 7.73e-3))),
    F.Finding("short_patience_stalls", "Patience 2 and 5 cut the rate early and stall at a worse training loss "
              "than patience 10; train accuracy about 65% (patience 2, read as: below 0.70) and under 75% "
              "(patience 5)",
              F.all_of(F.greater(_test("patience=2", "loss"), _test("patience=10", "loss")),
                       F.greater(_test("patience=5", "loss"), _test("patience=10", "loss")),
                       F.below(_test("patience=2", "accuracy"), 0.70), F.below(_test("patience=5", "accuracy"), 0.75))),
    F.Finding("patience_15_one_cut", "Patience 15 cuts the rate only once in 200 epochs (read as: between 0.5 and "
              "1.5 cuts)", F.all_of(F.above(_drops("patience=15"), 0.5), F.below(_drops("patience=15"), 1.5))),
    F.Finding("adaptive_learn_within_50", "RMSprop and Adam learn the problem within about 50 epochs (80% test "
              "accuracy before epoch 50)",
              F.all_of(F.below(_to_80("optimizer=rmsprop"), 50), F.below(_to_80("optimizer=adam"), 50))),
    F.Finding("adaptive_steadier_than_sgd", "The adaptive optimizers (Adagrad at the book's lr 0.01) swing less than "
              "SGD late in training",
              F.all_of(*(F.less(_swing(f"optimizer={o}"), _swing("optimizer=sgd"))
                         for o in ("rmsprop", "adagrad_lr0.01", "adam")))),
    F.Finding("sgd_needs_most_epochs", "SGD (lr 0.01) needs nearly all 200 epochs to learn (read as: 80% test "
              "accuracy only after epoch 150)", F.above(_to_80("optimizer=sgd"), 150)),
]
