"""Batch size's figures: small multiples of train and test accuracy, one panel per configuration, for the
``descent`` study and the ``batch_size`` sweep."""

from __future__ import annotations

import math

import pandas as pd

from trainlab.configs import ConfigId
from trainlab.families.batch_size import BATCH_SIZE, DESCENT, configurations
from trainlab.figures.common import config_seeds, curve_band, seed_count


def grid(history: pd.DataFrame, configs: list[ConfigId], title: str, ncols: int):
    """The book's small multiples: one panel per configuration, train and test accuracy (band over seeds)."""
    import matplotlib.pyplot as plt

    nrows = math.ceil(len(configs) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.8 * nrows), sharex=True, sharey=True,
                             squeeze=False)
    for ax, config in zip(axes.flat, configs):
        for metric, label in (("accuracy", "train"), ("val_accuracy", "test")):
            band = curve_band(history, config, metric)
            line, = ax.plot(band.index, band["mean"], label=label, linewidth=1)
            ax.fill_between(band.index, band["mean"] - band["std"], band["mean"] + band["std"],
                            color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_title(f"{config} ({config_seeds(history, config)} seeds)", fontsize="small")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(configs):]:
        ax.set_visible(False)
    axes[0][0].legend(fontsize="small")
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for row in axes:
        row[0].set_ylabel("accuracy")
    fig.suptitle(f"{title}\nmean over {seed_count(history, configs)} seeds, band = ±1 std")
    fig.tight_layout()
    return fig


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    trained = set(history["config"].unique())
    descent = [c for c in configurations(cfg) if c.study == DESCENT.name and str(c) in trained]
    sweep = [c for c in configurations(cfg) if c.study == BATCH_SIZE.name and str(c) in trained]
    out = {}
    if descent:
        out[DESCENT.name] = grid(history, descent, "Batch, stochastic and minibatch gradient descent (blobs-3)",
                                 ncols=min(4, len(descent)))
    if sweep:
        out[BATCH_SIZE.name] = grid(history, sweep, f"Batch size sweep, SGD(lr={cfg['optimizer']['learning_rate']:g}, "
                                                    f"momentum={cfg['optimizer']['momentum']:g})", ncols=4)
    return out
