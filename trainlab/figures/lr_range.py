"""LR range test's figure (``optimizer``): the smoothed loss against the rate per optimizer, with the spread of
the valley and steep suggestions over seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from trainlab.families.lr_range import OPTIMIZER, suggest
from trainlab.figures.common import seed_count


def figure(history: pd.DataFrame, cfg: dict):
    """Smoothed loss against the rate (log x): mean over seeds with a ±1 std band, the suggestions' spread."""
    import matplotlib.pyplot as plt

    trained = set(history["config"].unique())
    configs = [c for c in OPTIMIZER.of(list(cfg["optimizers"])) if str(c) in trained]
    fig, axes = plt.subplots(1, len(configs), figsize=(5.5 * len(configs), 4.2), squeeze=False)
    for ax, config in zip(axes[0], configs):
        rows = history[history["config"] == str(config)]
        table = rows.pivot_table(index="epoch", columns=["metric", "seed"], values="value", dropna=False)
        lrs, smoothed = table["lr"].mean(axis=1).to_numpy(), table["smoothed_loss"]
        mean, std = smoothed.mean(axis=1).to_numpy(), smoothed.std(axis=1).fillna(0).to_numpy()
        ax.plot(lrs, mean, color="C0", linewidth=1.2, label="smoothed loss (mean)")
        ax.fill_between(lrs, mean - std, mean + std, color="C0", alpha=0.2, linewidth=0)
        for i, rule in enumerate(("valley", "steep")):
            picks = [suggest(table["lr"][s].to_numpy(), smoothed[s].to_numpy(), cfg["updates"])[rule]
                     for s in smoothed.columns]
            logs = np.log10([p for p in picks if math.isfinite(p)])
            if len(logs):
                centre, spread = 10 ** logs.mean(), logs.std(ddof=1) if len(logs) > 1 else 0.0
                ax.axvspan(10 ** (logs.mean() - spread), 10 ** (logs.mean() + spread), color=f"C{i + 1}", alpha=0.15)
                ax.axvline(centre, color=f"C{i + 1}", linestyle="--", linewidth=1,
                           label=f"{rule}: {centre:.2g} (±{spread:.2f} decades)")
        ax.set(xscale="log", xlabel="learning rate", ylabel="smoothed batch loss", title=str(config))
        finite = mean[np.isfinite(mean)]
        if len(finite):
            ax.set_ylim(0, min(float(np.nanmax(mean + std)), 3 * float(finite[0])) * 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(f"LR range test, {cfg['start']:g} → {cfg['end']:g} over {cfg['updates']} updates "
                 f"(batch {cfg['batch_size']}, {cfg['data']})\nmean over {seed_count(history, configs)} seeds, "
                 "band = ±1 std; suggestion lines at the geometric mean, shade ±1 std in log10")
    fig.tight_layout()
    return fig


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    return {OPTIMIZER.name: figure(history, cfg)}
