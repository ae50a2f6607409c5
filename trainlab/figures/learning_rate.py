"""Learning rate's figures, one per study: train and test accuracy per configuration (``learning_rate``,
``momentum``, ``optimizer``), the decay schedule (``decay``) and each trial's own rate cuts (``patience``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from trainlab.configs import ConfigId, Study
from trainlab.families.learning_rate import DECAY, LEARNING_RATE, MOMENTUM, OPTIMIZER, PATIENCE, configurations
from trainlab.figures.common import config_seeds, curve_band, seed_count


def _band(ax, history: pd.DataFrame, config: ConfigId, metric: str, label: str, **style) -> None:
    band = curve_band(history, config, metric)
    line, = ax.plot(band.index, band["mean"], label=label, linewidth=1, **style)
    ax.fill_between(band.index, band["mean"] - band["std"], band["mean"] + band["std"],
                    color=line.get_color(), alpha=0.2, linewidth=0)


def _accuracy_panels(axes, history: pd.DataFrame, configs: list[ConfigId]) -> None:
    """The book's small multiples: per configuration, train and test accuracy."""
    for ax, config in zip(axes, configs):
        _band(ax, history, config, "accuracy", "train")
        _band(ax, history, config, "val_accuracy", "test")
        ax.set_title(f"{config} ({config_seeds(history, config)} seeds)", fontsize="small")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize="small")


def _title(fig, title: str, history: pd.DataFrame, configs: list[ConfigId]) -> None:
    fig.suptitle(f"{title}\nmean over {seed_count(history, configs)} seeds, band = ±1 std")
    fig.tight_layout()


def grid(history: pd.DataFrame, configs: list[ConfigId], title: str, ncols: int = 4):
    import matplotlib.pyplot as plt

    nrows = math.ceil(len(configs) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.9 * nrows), sharey=True, squeeze=False)
    _accuracy_panels(list(axes.flat), history, configs)
    for ax in list(axes.flat)[len(configs):]:
        ax.set_visible(False)
    _title(fig, title, history, configs)
    return fig


def decay_figure(history: pd.DataFrame, configs: list[ConfigId], cfg: dict):
    """The decay formula over every update of the run, the rate actually applied per epoch, and the accuracy."""
    import matplotlib.pyplot as plt

    ncols = max(2, len(configs))
    fig = plt.figure(figsize=(3.4 * ncols, 6.2))
    top = fig.add_gridspec(2, 2, top=0.86)
    formula, applied = fig.add_subplot(top[0, 0]), fig.add_subplot(top[0, 1])
    lr0, total = cfg["optimizer"]["learning_rate"], cfg["epochs"] * cfg["updates_per_epoch"]
    updates = np.arange(1, total + 1)
    for config in configs:
        formula.plot(updates, lr0 / (1 + config.value * (updates - 1)), label=str(config), linewidth=1)
        band = curve_band(history, config, "lr")
        applied.plot(band.index, band["mean"], label=str(config), linewidth=1)
    formula.set(xlabel="update u", ylabel="learning rate", xscale="log",
                title=f"lr0 / (1 + decay * (u - 1)), lr0={lr0:g}, {total:,} updates")
    applied.set(xlabel="epoch", ylabel="learning rate (last update)", yscale="log",
                title=f"rate of each epoch's last update (batch {cfg['batch_size']})")
    for ax in (formula, applied):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    bottom = fig.add_gridspec(1, ncols, bottom=0.08, top=0.40)
    axes = [fig.add_subplot(bottom[0, i]) for i in range(len(configs))]
    _accuracy_panels(axes, history, configs)
    fig.suptitle(f"Per-update learning rate decay, SGD(lr={lr0:g})\n"
                 f"mean over {seed_count(history, configs)} seeds, band = ±1 std")
    return fig


def plateau_figure(history: pd.DataFrame, configs: list[ConfigId]):
    """The book's three plots: each trial's own learning rate, train loss and train accuracy per epoch."""
    import matplotlib.pyplot as plt

    fig, (rate, loss, accuracy) = plt.subplots(1, 3, figsize=(16, 4))
    for i, config in enumerate(configs):
        color = f"C{i}"
        rows = history[(history["config"] == str(config)) & (history["metric"] == "lr")]
        for j, (_, trace) in enumerate(rows.groupby("seed")):
            rate.plot(trace["epoch"], trace["value"], color=color, linewidth=0.8, alpha=0.7,
                      label=str(config) if j == 0 else None)
        _band(loss, history, config, "loss", str(config), color=color)
        _band(accuracy, history, config, "accuracy", str(config), color=color)
    rate.set(xlabel="epoch", ylabel="learning rate", yscale="log", title="learning rate, one line per seed")
    loss.set(xlabel="epoch", ylabel="train loss", title="train loss")
    accuracy.set(xlabel="epoch", ylabel="train accuracy", title="train accuracy")
    for ax in (rate, loss, accuracy):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    _title(fig, "ReduceLROnPlateau on validation loss, per trial", history, configs)
    return fig


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    trained = set(history["config"].unique())

    def of(study: Study) -> list[ConfigId]:
        return [c for c in configurations(cfg) if c.study == study.name and str(c) in trained]

    out = {}
    if of(LEARNING_RATE):
        out[LEARNING_RATE.name] = grid(history, of(LEARNING_RATE), "Learning rate, SGD without momentum")
    if of(MOMENTUM):
        out[MOMENTUM.name] = grid(history, of(MOMENTUM), f"Momentum, SGD(lr={cfg['optimizer']['learning_rate']:g})")
    if of(DECAY):
        out[DECAY.name] = decay_figure(history, of(DECAY), cfg)
    if of(PATIENCE):
        out[PATIENCE.name] = plateau_figure(history, of(PATIENCE))
    if of(OPTIMIZER):
        out[OPTIMIZER.name] = grid(history, of(OPTIMIZER), "Optimizers with Keras defaults",
                                   ncols=len(of(OPTIMIZER)))
    return out
