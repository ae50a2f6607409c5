"""Activations' figures, one per depth (``depth<n>``): train loss and test accuracy per activation, and the
share of dead units in each hidden layer of the rectifier networks."""

from __future__ import annotations

import pandas as pd

from trainlab.families.activations import architectures, study
from trainlab.figures.common import curve_band, final_values, seed_count


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    """Per depth: train loss and test accuracy (band over seeds), and the dead units of each hidden layer."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out = {}
    for depth in cfg["depths"]:
        configs = [c for c in architectures(cfg) if c.study == study(depth).name]
        fig, axes = plt.subplots(1, 3, figsize=(16.5, 4.2))
        for config in configs:
            for ax, metric in zip(axes, ("loss", "val_accuracy")):
                band = curve_band(history, config, metric)
                line, = ax.plot(band.index, band["mean"], linewidth=1.2, label=config.value)
                ax.fill_between(band.index, band["mean"] - band["std"], band["mean"] + band["std"],
                                color=line.get_color(), alpha=0.15, linewidth=0)
            shares = [final_values(history, config, f"dead_units/{k}") for k in range(1, depth + 1)]
            if all(len(s) for s in shares):  # the rectifiers (same colour as their curves)
                axes[2].errorbar(range(1, depth + 1), [s.mean() for s in shares], yerr=[s.std(ddof=1) for s in shares],
                                 marker="o", capsize=2, color=line.get_color(), label=config.value)
        for ax, label in zip(axes, ("train loss", "test accuracy", "share of dead units (end of training)")):
            ax.set_xlabel("hidden layer" if ax is axes[2] else "epoch")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
        axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.suptitle(f"Activations: {depth} hidden layers of {cfg['width']} nodes (circles in [-1, 1])\n"
                     f"mean over {seed_count(history, configs)} seeds, band/bars = ±1 std; dead: pre-activation ≤ 0 "
                     "for every training input")
        fig.tight_layout()
        out[study(depth).name] = fig
    return out
