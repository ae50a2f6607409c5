"""Loss functions' figures, one per task (``regression``, ``binary``, ``multiclass``): per loss, the loss and
the reported metric, train and test."""

from __future__ import annotations

import pandas as pd

from trainlab.families.loss_functions import STUDIES, TASKS
from trainlab.figures.common import config_seeds, curve_band, seed_count


def study_figure(history: pd.DataFrame, task: str, study: dict):
    """The book's figure per loss: the loss on top, the reported metric below, train and test."""
    import matplotlib.pyplot as plt

    configs = STUDIES[task].of(study["losses"])
    metric = "mse" if task == "regression" else "accuracy"
    fig, axes = plt.subplots(2, len(configs), figsize=(4.2 * len(configs), 6), squeeze=False)
    for col, config in enumerate(configs):
        for row, name in enumerate(("loss", metric)):
            ax = axes[row][col]
            for prefix, label in (("", "train"), ("val_", "test")):
                band = curve_band(history, config, prefix + name)
                line, = ax.plot(band.index, band["mean"], label=label, linewidth=1)
                ax.fill_between(band.index, band["mean"] - band["std"], band["mean"] + band["std"],
                                color=line.get_color(), alpha=0.2, linewidth=0)
            ax.set(xlabel="epoch", ylabel=config.value if row == 0 else metric)
            ax.grid(alpha=0.3)
        axes[0][col].set_title(f"{config} ({config_seeds(history, config)} seeds)", fontsize="small")
    if task == "regression":
        for ax in axes[1]:
            ax.set_yscale("log")
    axes[0][0].legend(fontsize="small")
    accuracy = " (tanh: sign agreement with ±1 labels)" if task == "binary" else ""
    fig.suptitle(f"Loss functions, {task} ({study['data']}){accuracy}\n"
                 f"mean over {seed_count(history, configs)} seeds, band = ±1 std")
    fig.tight_layout()
    return fig


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    trained = set(history["study"].unique())
    return {task: study_figure(history, task, cfg[task]) for task in TASKS if cfg[task] is not None and task in trained}
