"""Exploding gradients (book chapter 7): gradient clipping on the unscaled regression problem.

The target spans about -400..400, so SGD(0.01, momentum 0.9) on the mean squared error
overflows the weights: the unclipped baseline diverges, and that divergence is a result
(its epoch is in the history, the figure and the metrics JSON). Clipping by norm or by
value keeps the same model stable. Model: Dense(25, relu, he_uniform) -> Dense(1, linear),
MSE, 100 epochs, batch 32, raw X and y.

Keras 3 ``clipnorm`` rescales each variable's gradient by its own norm; the book's standalone
Keras used one norm over all gradients, which is Keras 3's ``global_clipnorm`` (its own study).
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd

from stages import params as P
from stages.data import load_prepared
from stages.engine.trial import Trial, TrialResult
from stages.families import common
from stages.figures import configs_of, diverged_epochs, final_values, plot_curves
from stages.findings import Finding, above, all_of, below, diverged, epochs_to, final

CLIPS = ("clipnorm", "clipvalue", "global_clipnorm")
SWEEP = P.Field(list, item=P.Field(float, **common.POSITIVE), nonempty=False,
                allowed="a list of numbers > 0 (clip thresholds; [] skips the study)")

FIELDS = common.training_fields(
    hidden=P.Field(int, minimum=1),
    clipnorm=SWEEP,
    clipvalue=SWEEP,
    global_clipnorm=SWEEP,
    book=P.Field(dict, fields={"clipnorm": P.Field(float, **common.POSITIVE),
                               "clipvalue": P.Field(float, **common.POSITIVE)}),
    mse_threshold=P.Field(float, default=100.0, **common.POSITIVE),
)


def check(section: dict, key: str, params: dict) -> dict:
    cfg = common.check_training(section, key, params, FIELDS)
    for clip in CLIPS:  # the baseline is unclipped; every clipped run is a configuration
        if cfg["optimizer"][clip] is not None:
            raise P.ParamsError(f"{key}.optimizer.{clip}: leave the baseline unclipped; list thresholds in "
                                f"{key}.{clip} instead")
    for clip, value in cfg["book"].items():
        if value not in cfg[clip]:
            raise P.ParamsError(f"{key}.book.{clip}: {value:g} must be one of {key}.{clip} {cfg[clip]}")
    return cfg


def config_id(clip: str, value: float) -> str:
    return f"{clip}={value:g}"


def model(n_inputs: int, hidden: int):
    return common.mlp(n_inputs, [hidden], 1, activation="relu", hidden_init="he_uniform",
                      output_activation="linear")


def trials(cfg: dict, seeds: list[int]) -> list[Trial]:
    data = load_prepared(cfg["data"]).split("raw")
    optimizers = {"clipping=none": (cfg["optimizer"], {"clip": "none"})}
    for clip in CLIPS:
        for value in cfg[clip]:
            optimizers[config_id(clip, value)] = ({**cfg["optimizer"], clip: value}, {"clip": clip, "threshold": value})
    return [
        Trial(config=config, seed=seed, data=data,
              build_model=partial(model, data.x_train.shape[1], cfg["hidden"]),
              build_optimizer=common.optimizer_factory(optimizer),
              loss=cfg["loss"], metric="mse", batch_size=cfg["batch_size"], epochs=cfg["epochs"],
              grad_stats=cfg["grad_stats"], tags=tags)
        for config, (optimizer, tags) in optimizers.items() for seed in seeds
    ]


def first_epoch_at_or_below(values: np.ndarray, threshold: float) -> float:
    """1-based first epoch whose value is ≤ threshold; NaN if none (summaries count only those that got there)."""
    hits = np.flatnonzero(np.nan_to_num(values, nan=np.inf) <= threshold)
    return float(hits[0] + 1) if len(hits) else math.nan


def trial_metrics(result: TrialResult, cfg: dict) -> dict[str, float]:
    """The divergence epoch (NaN when the trial stayed finite) and how fast the test MSE fell."""
    return {
        "diverged_epoch": float(result.diverged_epoch) if result.diverged else math.nan,
        f"epochs_to_val_mse_{cfg['mse_threshold']:g}": first_epoch_at_or_below(result.history["val_mse"],
                                                                                cfg["mse_threshold"]),
    }


# -- figures: curves that show where seeds diverged ---------------------------------------------


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    import matplotlib.pyplot as plt

    seeds = history["seed"].nunique()
    out = {}
    book = ["clipping=none", config_id("clipnorm", cfg["book"]["clipnorm"]),
            config_id("global_clipnorm", cfg["book"]["clipnorm"]), config_id("clipvalue", cfg["book"]["clipvalue"])]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, metric in zip(axes, ("loss", "val_mse")):
        plot_curves(ax, history, [c for c in book if c in set(history["config"])], metric)
    axes[1].legend(fontsize="small")
    fig.suptitle(f"Exploding gradients: unscaled regression, no clipping vs the book's thresholds "
                 f"(its clipnorm was one global norm)\n"
                 f"mean over the seeds still finite ({seeds} seeds), band = ±1 std, x = divergence epoch")
    fig.tight_layout()
    out["clipping"] = fig

    for clip in CLIPS:
        configs = configs_of(history, clip)
        if not configs:
            continue
        fig, axes = plt.subplots(1, 3, figsize=(17, 4.2))
        plot_curves(axes[0], history, configs, "loss")
        plot_curves(axes[1], history, configs, "val_mse")
        axes[1].legend(fontsize="small")
        thresholds = [float(c.split("=", 1)[1]) for c in configs]
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
                     f"mean over the seeds still finite ({seeds} seeds), band = ±1 std, x = divergence epoch")
        fig.tight_layout()
        out[clip] = fig
    return out


# The book's single runs. Its clipnorm was one global norm, so its number sits beside both ours.
BOOK = {
    "clipnorm=1": {"val_mse": 27.433},
    "global_clipnorm=1": {"val_mse": 27.433},
    "clipvalue=5": {"val_mse": 9.985},
}


def mse_below_100(config: str):
    return epochs_to(config, "val_mse", 100.0, below=True)


FINDINGS = [
    Finding("unclipped_diverges", "Without clipping the unscaled target makes the weights overflow: the loss "
            "becomes NaN/inf (book: Train nan, Test nan)", above(diverged("clipping=none"), 0.5)),
    Finding("clipnorm_prevents_divergence", "clipnorm=1.0 keeps training finite, with Keras 3's per-variable norm "
            "and with the book's one global norm",
            all_of(below(diverged("clipnorm=1"), 0.5), below(diverged("global_clipnorm=1"), 0.5))),
    Finding("clipvalue_prevents_divergence", "clipvalue=5.0 keeps training finite",
            below(diverged("clipvalue=5"), 0.5)),
    Finding("global_clipnorm_fast", "With the book's clipnorm (one global norm of 1.0) the test MSE falls below 100 "
            "within about 20 epochs (read as: fewer than 30)", below(mse_below_100("global_clipnorm=1"), 30)),
    Finding("clipnorm_fast", "With Keras 3's per-variable clipnorm=1.0 the test MSE falls below 100 within about "
            "20 epochs (read as: fewer than 30)", below(mse_below_100("clipnorm=1"), 30)),
    Finding("clipvalue_below_10", "With clipvalue=5.0 the final test MSE is below 10 (book 9.985)",
            below(final("clipvalue=5", "val_mse"), 10.0)),
]
