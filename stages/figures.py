"""The book's figures from a tidy history: learning curves per configuration, with a band over seeds."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from stages.families import study  # noqa: E402


def configs_of(history: pd.DataFrame, name: str) -> list[str]:
    """The configurations of one study, in the order the family listed them."""
    return [c for c in history["config"].unique() if study(c) == name]


def curve_band(history: pd.DataFrame, config: str, metric: str) -> pd.DataFrame:
    """Mean and standard deviation over seeds of one metric, per epoch."""
    rows = history[(history["config"] == config) & (history["metric"] == metric)]
    return rows.groupby("epoch")["value"].agg(["mean", "std"]).fillna({"std": 0.0})


def learning_curves(history: pd.DataFrame, name: str, title: str,
                    metrics: tuple[str, ...] | None = None) -> plt.Figure:
    """One panel per metric (default: train loss and the validation metric), one line per configuration."""
    if metrics is None:
        val = [m for m in history["metric"].unique() if m.startswith("val_") and m != "val_loss"]
        metrics = ("loss", *val[:1])
    configs = configs_of(history, name)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for config in configs:
            band = curve_band(history, config, metric)
            line, = ax.plot(band.index, band["mean"], label=config, linewidth=1.2)
            ax.fill_between(band.index, band["mean"] - band["std"], band["mean"] + band["std"],
                            color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric.replace("val_", "test ") if metric.startswith("val_") else f"train {metric}")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize="small", ncol=2)
    seeds = history["seed"].nunique()
    fig.suptitle(f"{title}\nmean over {seeds} seeds, band = ±1 std")
    fig.tight_layout()
    return fig
