"""Exploding gradients' figures: ``clipping`` (no clipping vs the book's thresholds), and per clipping kind its
sweep: curves with the divergences marked, and the final test MSE against the threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainlab.families.exploding_gradients import BASELINE, CLIPNORM, CLIPVALUE, GLOBAL_CLIPNORM, STUDIES
from trainlab.figures.common import diverged_epochs, final_values, plot_curves, seed_count


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    import matplotlib.pyplot as plt

    trained = set(history["config"].unique())
    out = {}
    book = [BASELINE, CLIPNORM(cfg["book"]["clipnorm"]), GLOBAL_CLIPNORM(cfg["book"]["clipnorm"]),
            CLIPVALUE(cfg["book"]["clipvalue"])]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, metric in zip(axes, ("loss", "val_mse")):
        plot_curves(ax, history, [c for c in book if str(c) in trained], metric)
    axes[1].legend(fontsize="small")
    fig.suptitle(f"Exploding gradients: unscaled regression, no clipping vs the book's thresholds "
                 f"(its clipnorm was one global norm)\n"
                 f"mean over the seeds still finite ({seed_count(history, book)} seeds), band = ±1 std, "
                 "x = divergence epoch")
    fig.tight_layout()
    out["clipping"] = fig

    for clip, study in STUDIES.items():
        configs = [c for c in study.of(cfg[clip]) if str(c) in trained]
        if not configs:
            continue
        fig, axes = plt.subplots(1, 3, figsize=(17, 4.2))
        plot_curves(axes[0], history, configs, "loss")
        plot_curves(axes[1], history, configs, "val_mse")
        axes[1].legend(fontsize="small")
        thresholds = [c.number for c in configs]
        finals = [final_values(history, c, "val_mse") for c in configs]
        means = [v.mean() if len(v) else np.nan for v in finals]
        stds = [v.std(ddof=1) if len(v) > 1 else 0.0 for v in finals]
        axes[2].errorbar(thresholds, means, yerr=stds, marker="o", capsize=3)
        for t, c in zip(thresholds, configs):
            lost = len(diverged_epochs(history, c))
            if lost:
                axes[2].annotate(f"{lost} diverged", (t, 1), xycoords=("data", "axes fraction"),
                                 ha="center", va="top", fontsize="small", color="red")
        axes[2].set_xscale("log")
        axes[2].set_yscale("log")
        axes[2].set_xlabel(f"{clip} threshold")
        axes[2].set_ylabel("final test MSE (finite seeds)")
        axes[2].grid(alpha=0.3)
        semantics = {"clipnorm": "each variable's gradient clipped to its own norm (Keras 3)",
                     "clipvalue": "each gradient element clipped to ±threshold",
                     "global_clipnorm": "all gradients rescaled by one global norm (the book's Keras clipnorm)"}
        fig.suptitle(f"Exploding gradients: {clip} sweep, {semantics[clip]}\n"
                     f"mean over the seeds still finite ({seed_count(history, configs)} seeds), band = ±1 std, "
                     "x = divergence epoch")
        fig.tight_layout()
        out[clip] = fig
    return out
