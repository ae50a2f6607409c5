"""The book's figures from a tidy history: learning curves per configuration, with a band over seeds."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from trainlab.configs import ConfigId  # noqa: E402


def configs_of(history: pd.DataFrame, study: str) -> list[str]:
    """The configurations of one study that were trained, in the order the family listed them."""
    return list(history.loc[history["study"] == study, "config"].unique())


def seed_count(history: pd.DataFrame, configs=None) -> str:
    """The seeds behind each drawn configuration, as a title says it: ``"10"``, or ``"10–20"`` when the
    sequential design gave some configurations more seeds than others (a study's seed total would
    overstate the configurations that stopped early)."""
    rows = history if configs is None else history[history["config"].isin([str(c) for c in configs])]
    counts = rows.groupby("config")["seed"].nunique()
    if counts.empty:
        return "0"
    low, high = int(counts.min()), int(counts.max())
    return str(low) if low == high else f"{low}–{high}"


def config_seeds(history: pd.DataFrame, config: ConfigId | str) -> int:
    return int(history.loc[history["config"] == str(config), "seed"].nunique())


def curve_band(history: pd.DataFrame, config: ConfigId | str, metric: str) -> pd.DataFrame:
    """Mean and standard deviation over seeds of one metric, per epoch."""
    rows = history[(history["config"] == str(config)) & (history["metric"] == metric)]
    return rows.groupby("epoch")["value"].agg(["mean", "std"]).fillna({"std": 0.0})


def learning_curves(history: pd.DataFrame, name: str, title: str,
                    metrics: tuple[str, ...] | None = None) -> plt.Figure:
    """One panel per metric (default: train loss and the validation metric), one line per configuration."""
    if metrics is None:
        val = [m for m in history["metric"].unique() if m.startswith("val_") and m != "val_loss"]
        metrics = ("loss", *val[:1])
    configs = configs_of(history, name)
    seeds = seed_count(history, configs)
    mixed = "–" in seeds  # then each line names its own count
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for config in configs:
            band = curve_band(history, config, metric)
            label = f"{config} ({config_seeds(history, config)} seeds)" if mixed else config
            line, = ax.plot(band.index, band["mean"], label=label, linewidth=1.2)
            ax.fill_between(band.index, band["mean"] - band["std"], band["mean"] + band["std"],
                            color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric.replace("val_", "test ") if metric.startswith("val_") else f"train {metric}")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize="small", ncol=2)
    fig.suptitle(f"{title}\nmean over {seeds} seeds, band = ±1 std")
    fig.tight_layout()
    return fig


# -- curves that show where seeds diverged (data_scaling, exploding_gradients) --------------------

def diverged_epochs(history: pd.DataFrame, config: ConfigId | str) -> list[int]:
    """Per diverged seed, the first epoch with a non-finite loss or validation loss (the engine's rule)."""
    rows = history[(history["config"] == str(config)) & history["metric"].isin(["loss", "val_loss"])]
    bad = rows[~np.isfinite(rows["value"].to_numpy(dtype=float))]
    return sorted(bad.groupby("seed")["epoch"].min().tolist())


def divergence_label(history: pd.DataFrame, config: ConfigId | str) -> str:
    epochs = diverged_epochs(history, config)
    if not epochs:
        return str(config)
    seeds = history.loc[history["config"] == str(config), "seed"].nunique()
    where = f"epoch {epochs[0]}" if epochs[0] == epochs[-1] else f"epochs {epochs[0]}-{epochs[-1]}"
    return f"{config} (diverged {len(epochs)}/{seeds}, {where})"


def plot_curves(ax, history: pd.DataFrame, configs: list[ConfigId] | list[str], metric: str, log: bool = True) -> None:
    """Mean ± std over the seeds still finite at each epoch; an x marks where seeds diverged."""
    for i, config in enumerate(configs):
        rows = history[(history["config"] == str(config)) & (history["metric"] == metric)].copy()
        rows.loc[~np.isfinite(rows["value"].to_numpy(dtype=float)), "value"] = np.nan
        band = rows.groupby("epoch")["value"].agg(["mean", "std", "min"])
        line, = ax.plot(band.index, band["mean"], linewidth=1.2, label=divergence_label(history, config),
                        linestyle=("-", "--", "-.", ":")[i % 4])  # near-identical curves stay visible
        low = band["mean"] - band["std"].fillna(0)
        if log:  # a band reaching below zero would fill the whole log axis: stop it at the lowest seed
            low = low.where(low > 0, band["min"])
        ax.fill_between(band.index, low, band["mean"] + band["std"].fillna(0),
                        color=line.get_color(), alpha=0.15, linewidth=0)
        for epoch in sorted(set(diverged_epochs(history, config))):
            ax.axvline(epoch, color=line.get_color(), linestyle=":", linewidth=1)
            ax.plot([epoch], [1], marker="x", markersize=9, color=line.get_color(),
                    transform=ax.get_xaxis_transform(), clip_on=False)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("val_", "test ") if metric.startswith("val_") else f"train {metric}")
    ax.grid(alpha=0.3)


def final_values(history: pd.DataFrame, config: ConfigId | str, metric: str) -> np.ndarray:
    rows = history[(history["config"] == str(config)) & (history["metric"] == metric)]
    last = rows[rows["epoch"] == rows["epoch"].max()]["value"].to_numpy(dtype=float)
    return last[np.isfinite(last)]


# -- models deepened in phases (the pretraining families) --------------------------------------

def finals(history: pd.DataFrame, configs: list[ConfigId], metric: str) -> pd.DataFrame:
    """Per configuration (a numeric setting each): the setting and the mean and std over seeds of the last epoch."""
    rows = history[(history["metric"] == metric) & history["config"].isin([str(c) for c in configs])]
    last = rows[rows["epoch"] == rows.groupby("config")["epoch"].transform("max")]
    table = last.groupby("config")["value"].agg(["mean", "std"]).fillna({"std": 0.0})
    setting = {str(c): c.number for c in configs}
    table["depth"] = [setting[c] for c in table.index]
    return table.sort_values("depth")


def plot_against_depth(ax, history: pd.DataFrame, configs: list[ConfigId], metrics: dict[str, str],
                       ylabel: str) -> None:
    """One line per metric (label -> history name): mean over seeds at the end of each phase, ±1 std."""
    from matplotlib.ticker import MaxNLocator

    for label, metric in metrics.items():
        table = finals(history, configs, metric)
        ax.errorbar(table["depth"], table["mean"], yerr=table["std"], marker="o", capsize=3, label=label)
    ax.set_xlabel("hidden layers")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def plot_phases(ax, history: pd.DataFrame, configs: list[ConfigId], metric: str, ylabel: str) -> None:
    """A metric's mean curve (band ±1 std) through every phase (configuration), one after another."""
    offset = 0
    for config in configs:
        band = curve_band(history, config, metric)
        x = band.index + offset
        line, = ax.plot(x, band["mean"], linewidth=1.0)
        ax.fill_between(x, band["mean"] - band["std"], band["mean"] + band["std"], color=line.get_color(),
                        alpha=0.15, linewidth=0)
        offset += len(band)
        ax.axvline(offset + 0.5, color="grey", linewidth=0.5, alpha=0.5)
    ax.set_xlabel("epoch (phases one after another; a colour per depth)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
