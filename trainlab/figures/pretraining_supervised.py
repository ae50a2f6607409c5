"""Supervised pretraining's figure (``layers``): train and test accuracy against depth, and the test accuracy
through every phase."""

from __future__ import annotations

import pandas as pd

from trainlab.families.pretraining_supervised import LAYERS, configs
from trainlab.figures.common import plot_against_depth, plot_phases, seed_count


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    import matplotlib.pyplot as plt

    layers = configs(cfg)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    plot_against_depth(left, history, layers, {"train": "accuracy", "test": "val_accuracy"}, "accuracy")
    plot_phases(right, history, layers, "val_accuracy", "test accuracy")
    seeds = seed_count(history, layers)
    fig.suptitle(f"Supervised greedy layer-wise pretraining (blobs-3): a hidden layer of {cfg['width']} "
                 f"added per phase\nmean over {seeds} seeds, ±1 std")
    fig.tight_layout()
    return {LAYERS.name: fig}
