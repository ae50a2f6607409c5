"""Unsupervised pretraining's figures: ``autoencoder`` (reconstruction MSE against depth and through every
phase) and ``classifier`` (the head's accuracy on each depth's encoder, the same two ways)."""

from __future__ import annotations

import pandas as pd

from trainlab.families.pretraining_unsupervised import AUTOENCODER, CLASSIFIER
from trainlab.figures.common import config_seeds, plot_against_depth, plot_phases


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    import matplotlib.pyplot as plt

    base = history[(history["config"] == str(AUTOENCODER(1))) & (history["metric"] == "val_mse")]
    lost = int(base.loc[base["epoch"] == base["epoch"].max(), "value"].isna().sum())
    base_seeds = config_seeds(history, AUTOENCODER(1))
    over = f"mean ±1 std over the seeds that did not diverge ({lost} of {base_seeds} diverged in the base autoencoder)"
    depths = range(1, cfg["depth"] + 1)
    out = {}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    encoders = AUTOENCODER.of(list(depths))
    plot_against_depth(left, history, encoders, {"train": "mse", "test": "val_mse"}, "reconstruction MSE")
    left.set_yscale("log")
    plot_phases(right, history, encoders, "val_mse", "test reconstruction MSE")
    right.set_yscale("log")
    fig.suptitle(f"Unsupervised greedy pretraining (blobs-3): autoencoder deepened a {cfg['width']}-relu layer "
                 f"per phase\n{over}")
    fig.tight_layout()
    out[AUTOENCODER.name] = fig

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    heads = CLASSIFIER.of(list(depths))
    plot_against_depth(left, history, heads, {"train": "accuracy", "test": "val_accuracy"}, "accuracy")
    plot_phases(right, history, heads, "val_accuracy", "test accuracy")
    fig.suptitle(f"Softmax head on the frozen encoder of each depth (blobs-3)\n{over}")
    fig.tight_layout()
    out[CLASSIFIER.name] = fig
    return out
