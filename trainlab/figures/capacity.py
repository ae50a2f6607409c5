"""Capacity's figures: learning curves of the ``nodes`` study (one hidden layer) and of the ``layers`` study."""

from __future__ import annotations

import pandas as pd

from trainlab.figures.common import learning_curves


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    return {
        "nodes": learning_curves(history, "nodes", "Capacity: nodes in one hidden layer (blobs-20)"),
        "layers": learning_curves(history, "layers", f"Capacity: hidden layers of {cfg['layer_width']} nodes"),
    }
