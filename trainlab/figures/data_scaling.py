"""Data scaling's figure (``scaling``): train loss and test MSE per scaling with the divergence epochs marked,
and the final test MSE per seed as a box per scaling."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainlab.families.data_scaling import SCALING, configs
from trainlab.figures.common import config_seeds, diverged_epochs, final_values, plot_curves, seed_count


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    import matplotlib.pyplot as plt

    trained = set(history["config"].unique())
    shown = [c for c in configs(cfg) if str(c) in trained]
    seeds = seed_count(history, shown)
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    plot_curves(axes[0], history, shown, "loss")
    plot_curves(axes[1], history, shown, "val_mse")
    axes[1].legend(fontsize="small")

    finals = [final_values(history, c, "val_mse") for c in shown]
    names = [c.value for c in shown]
    axes[2].boxplot([v if len(v) else [np.nan] for v in finals], showmeans=True)
    axes[2].set_xticks(range(1, len(names) + 1), names, rotation=15, fontsize="small")
    for i, config in enumerate(shown, 1):
        lost = len(diverged_epochs(history, config))
        if lost:
            axes[2].annotate(f"{lost}/{config_seeds(history, config)}\ndiverged", (i, 0.5),
                             xycoords=("data", "axes fraction"),
                             ha="center", color="red", fontsize="small")
    axes[2].set_yscale("log")
    axes[2].set_ylabel("final test MSE (scaled target units)")
    axes[2].grid(alpha=0.3, axis="y")
    fig.suptitle(f"Data scaling: regression MLP, scalers fit on the train split\n"
                 f"curves: mean over the seeds still finite ({seeds} seeds), band = ±1 std, x = divergence epoch; "
                 f"box: final test MSE per seed")
    fig.tight_layout()
    return {SCALING.name: fig}
