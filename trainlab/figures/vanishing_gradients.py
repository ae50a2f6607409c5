"""Vanishing gradients' figures, ``model`` and ``depth``: learning curves, the per-layer gradient profile, and
each configuration's per-layer gradients over epochs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainlab.configs import ConfigId
from trainlab.families.vanishing_gradients import DEPTH, MODEL, architecture, architectures, kernels
from trainlab.figures.common import curve_band, seed_count


def gradient_figure(history: pd.DataFrame, configs: list[ConfigId], title: str):
    """Learning curves, the per-layer gradient profile, and each configuration's per-layer gradients over epochs."""
    import matplotlib.pyplot as plt

    columns = max(4, len(configs))
    fig, axes = plt.subplots(2, columns, figsize=(4.6 * columns, 8.4), squeeze=False)
    for ax in axes[0][4:]:
        ax.set_visible(False)
    for ax in axes[1][len(configs):]:
        ax.set_visible(False)
    colors = {}
    for ax, metric in zip(axes[0][:2], ("loss", "val_accuracy")):
        for config in configs:
            band = curve_band(history, config, metric)
            line, = ax.plot(band.index, band["mean"], label=str(config), linewidth=1.2, color=colors.get(config))
            colors[config] = line.get_color()
            ax.fill_between(band.index, band["mean"] - band["std"], band["mean"] + band["std"],
                            color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy" if metric == "val_accuracy" else "train loss")
        ax.grid(alpha=0.3)
    axes[0][1].legend(fontsize="small")

    # The gradient profile across depth: each layer's statistic averaged over epochs, mean ± std over seeds.
    profiles = ((axes[0][2], "grad_mean_abs", "mean |gradient|"), (axes[0][3], "grad_norm", "gradient norm"))
    for ax, stat, label in profiles:
        # one string pass over the whole history per statistic (string ops per config cost ~15 s at 500 epochs)
        of_stat = history[history["metric"].str.startswith(f"{stat}/")]
        for config in configs:
            rows = of_stat[of_stat["config"] == str(config)]
            if rows.empty:
                continue
            per_seed = rows.assign(layer=rows["metric"].str.slice(len(stat) + 1).astype(int)) \
                .groupby(["layer", "seed"])["value"].mean().groupby("layer").agg(["mean", "std", "min"]).fillna(0.0)
            low = np.minimum(per_seed["std"], per_seed["mean"] - per_seed["min"])  # log axis: stop at the lowest seed
            ax.errorbar(per_seed.index, per_seed["mean"], yerr=[low, per_seed["std"]], marker="o", markersize=3,
                        capsize=2, color=colors[config], label=str(config))
        ax.set_yscale("log")
        ax.set_xlabel("layer (1 = first hidden, last = output)")
        ax.set_ylabel(f"{label}, mean over epochs")
        ax.grid(alpha=0.3)

    for ax, config in zip(axes[1], configs):
        rows = history[history["config"] == str(config)]
        layers = kernels(set(rows["metric"].unique()))
        cmap = plt.get_cmap("viridis")
        for i, layer in enumerate(layers):
            band = curve_band(rows, config, f"grad_mean_abs/{layer}")
            tag = "output" if layer == layers[-1] else f"layer {layer}"
            ax.plot(band.index, band["mean"], linewidth=1, color=cmap(i / max(1, len(layers) - 1)),
                    label=tag if len(layers) <= 8 or i in (0, len(layers) - 1) else None)
        ax.set_yscale("log")
        ax.set_title(str(config), fontsize="medium")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean |gradient| of the kernel")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", ncol=2)
    seeds = seed_count(history, configs)
    fig.suptitle(f"{title}\nmean over {seeds} seeds, band/bars = ±1 std (bars stop at the lowest seed); gradients "
                 f"are per-epoch means over the epoch's updates")
    fig.tight_layout()
    return fig


def depth_configs(cfg: dict, trained: set[str]) -> list[ConfigId]:
    """The depth study, led by any named model with the same architecture (relu_5 is depth 5)."""
    arch = {k: v for k, v in cfg["depth"].items() if k != "layers"}
    depths = {c: spec["layers"] for c, spec in architectures(cfg).items() if str(c) in trained}
    same = [c for c in depths if c.study == MODEL.name and {k: cfg["models"][c.value][k] for k in arch} == arch]
    sweep = [c for c in depths if c.study == DEPTH.name]
    return sorted(same + sweep, key=lambda c: depths[c]) if sweep else []


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    trained = set(history["config"].unique())
    models = [c for c in architectures(cfg) if c.study == MODEL.name and str(c) in trained]
    out = {}
    if models:
        out[MODEL.name] = gradient_figure(history, models, "Vanishing gradients: tanh + RandomUniform(0, 1) vs "
                                                           "relu + he_uniform (circles in [-1, 1])")
    deep = depth_configs(cfg, trained)
    if deep:
        out[DEPTH.name] = gradient_figure(history, deep, f"Vanishing gradients: depth of {architecture(cfg)} "
                                                         f"networks ({cfg['width']} nodes per layer)")
    return out
