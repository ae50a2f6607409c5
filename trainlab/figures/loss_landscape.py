"""Loss landscape's figure (``model``): per model, the 1D loss curve of each seed with its sharpness, and the
mean 2D grid as contours and as a surface."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainlab.families.loss_landscape import MODEL, sharpness
from trainlab.figures.common import seed_count


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    import matplotlib.pyplot as plt

    trained = set(history["config"].unique())
    configs = [c for c in MODEL.of(list(cfg["models"])) if str(c) in trained]
    n = len(configs)
    fig, axes = plt.subplots(3, n, figsize=(3.6 * n, 10.2), squeeze=False)
    a1 = np.linspace(-cfg["span"], cfg["span"], cfg["points_1d"])
    a2 = np.linspace(-cfg["span"], cfg["span"], cfg["points_2d"])
    for j, config in enumerate(configs):
        rows = history[history["config"] == str(config)]
        curves = rows[rows["metric"] == "loss_1d"].pivot(index="seed", columns="epoch", values="value").to_numpy()
        grids = rows[rows["metric"] == "loss_2d"].pivot(index="seed", columns="epoch", values="value").to_numpy()
        top, bottom = axes[0, j], axes[1, j]
        for curve in curves:
            top.plot(a1, curve, color="C0", alpha=0.35, linewidth=0.8)
        top.plot(a1, np.nanmean(curves, axis=0), color="C0", linewidth=1.5, label="mean over seeds")
        sharp = [sharpness(c, cfg["span"], cfg["radius"]) for c in curves]
        spread = np.std(sharp, ddof=1) if len(sharp) > 1 else 0.0
        top.set(title=f"{config}\nsharpness {np.mean(sharp):.3g} ± {spread:.2g}",
                xlabel="a (along d1)", ylabel="train loss", yscale="log")
        top.grid(alpha=0.3)
        grid = np.log10(np.nanmean(grids, axis=0).reshape(len(a2), len(a2)))
        contour = bottom.contour(a2, a2, grid, levels=15, linewidths=0.8)
        bottom.clabel(contour, fontsize=6)
        bottom.set(xlabel="a (d1)", ylabel="b (d2)", title="log10 train loss, mean over seeds", aspect="equal")
        bottom.plot([0], [0], "k+")
        # the same mean grid as a surface (Li et al.'s second view): the contour's levels hide how steep a wall is
        axes[2, j].remove()
        surface = fig.add_subplot(3, n, 2 * n + j + 1, projection="3d")
        a, b = np.meshgrid(a2, a2)  # grid rows are b, columns a (as for the contour)
        surface.plot_surface(a, b, grid, cmap="viridis", linewidth=0, antialiased=True)
        surface.set(xlabel="a (d1)", ylabel="b (d2)", zlabel="log10 loss", title="the same grid as a surface")
        surface.tick_params(labelsize=6)
    fig.suptitle(f"Loss landscape along filter-normalized directions ({cfg['points_2d']}×{cfg['points_2d']} grid, "
                 f"{seed_count(history, configs)} seeds); sharpness = mean rise at ±{cfg['radius']:g}")
    fig.tight_layout()
    return {MODEL.name: fig}
