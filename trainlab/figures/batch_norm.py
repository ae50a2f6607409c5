"""Batch normalization's figure (``placement``): loss, train and test accuracy per placement of the layer, with
the accuracy threshold."""

from __future__ import annotations

import pandas as pd

from trainlab.families.batch_norm import PLACEMENT
from trainlab.figures.common import learning_curves


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    fig = learning_curves(history, PLACEMENT.name, f"Batch normalization: none / after the relu / before it "
                                                   f"(circles, {cfg['hidden']} relu nodes)",
                          metrics=("loss", "accuracy", "val_accuracy"))
    for ax in fig.axes[1:]:
        ax.axhline(cfg["threshold"], color="grey", linestyle="--", linewidth=0.8)
    return {PLACEMENT.name: fig}
