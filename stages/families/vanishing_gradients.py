"""Vanishing gradients (book chapter 6): deep tanh networks stall, relu + He initialisation learns.

Data: circles, inputs min-max scaled to [-1, 1] on all rows (as the book does). Every model
has hidden layers of 5 nodes and a sigmoid output; binary cross-entropy, SGD(0.01, momentum
0.9), 500 epochs, batch 32. Model study: the book's one tanh layer and five tanh layers with
RandomUniform(0, 1) weights (output layer included), and five relu layers with he_uniform
(glorot output). Depth study: relu + he_uniform with more and more layers. Every trial records,
per epoch, the mean |gradient| and the gradient norm of each layer's kernel (``grad_stats``).
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
from stages.figures import configs_of, curve_band
from stages.findings import Finding, above, below, custom, epochs_to, final, greater, increasing

ARCHITECTURE = {
    "activation": P.Field(str, choices=common.ACTIVATIONS),
    "init": P.Field(str, choices=common.INITIALIZERS),
    "output_init": P.Field(str, default="glorot_uniform", choices=common.INITIALIZERS),
}
MODEL_FIELDS = {"layers": P.Field(int, minimum=1), **ARCHITECTURE}
DEPTH_FIELDS = {"layers": P.Field(list, item=P.Field(int, minimum=1), nonempty=False,
                                  allowed="a list of integers ≥ 1 (hidden layers; [] skips the study)"),
                **ARCHITECTURE}

FIELDS = common.training_fields(
    width=P.Field(int, minimum=1),
    models=P.Field(dict, allowed="a mapping {name: {layers, activation, init, output_init}}"),
    depth=P.Field(dict, fields=DEPTH_FIELDS),
    threshold=P.Field(float, default=0.8, minimum=0, maximum=1),
)


def check(section: dict, key: str, params: dict) -> dict:
    cfg = common.check_training(section, key, params, FIELDS)
    models = {}
    for name, spec in cfg["models"].items():
        if not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise P.ParamsError(f"{key}.models.{name}: model names are letters, digits and '_'")
        models[name] = P.check(spec, f"{key}.models.{name}", MODEL_FIELDS)
    cfg["models"] = models
    return cfg


def architectures(cfg: dict) -> dict[str, dict]:
    """Configuration id -> {layers, activation, init, output_init}."""
    found = {f"model={name}": spec for name, spec in cfg["models"].items()}
    depth = {k: v for k, v in cfg["depth"].items() if k != "layers"}
    found |= {f"depth={n}": {"layers": n, **depth} for n in cfg["depth"]["layers"]}
    return found


def model(n_inputs: int, width: int, layers: int, activation: str, init: str, output_init: str):
    return common.mlp(n_inputs, [width] * layers, 1, activation=activation, hidden_init=init,
                      output_activation="sigmoid", output_init=output_init)


def trials(cfg: dict, seeds: list[int]) -> list[Trial]:
    data = load_prepared(cfg["data"]).split("raw")
    return [
        Trial(config=config, seed=seed, data=data,
              build_model=partial(model, data.x_train.shape[1], cfg["width"], **spec),
              build_optimizer=common.optimizer_factory(cfg["optimizer"]),
              loss=cfg["loss"], metric="binary_accuracy", batch_size=cfg["batch_size"], epochs=cfg["epochs"],
              grad_stats=cfg["grad_stats"], tags={**spec, "width": cfg["width"]})
        for config, spec in architectures(cfg).items() for seed in seeds
    ]


def kernels(history_names) -> list[int]:
    """Layer numbers (1 = first hidden layer, last = output) that have gradient statistics."""
    return sorted(int(n.split("/", 1)[1]) for n in history_names if n.startswith("grad_mean_abs/"))


def trial_metrics(result: TrialResult, cfg: dict) -> dict[str, float]:
    """Mean over epochs of the first and the output layer's mean |gradient|; epochs to the accuracy threshold."""
    hits = np.flatnonzero(np.nan_to_num(result.history["val_accuracy"], nan=-1.0) >= cfg["threshold"])
    metrics = {f"epochs_to_val_accuracy_{cfg['threshold']:g}": float(hits[0] + 1) if len(hits) else math.nan}
    layers = kernels(result.history)
    if layers:
        metrics["grad_mean_abs_first_layer"] = float(np.nanmean(result.history[f"grad_mean_abs/{layers[0]}"]))
        metrics["grad_mean_abs_output_layer"] = float(np.nanmean(result.history[f"grad_mean_abs/{layers[-1]}"]))
    return metrics


def gradient_figure(history: pd.DataFrame, configs: list[str], title: str):
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
            line, = ax.plot(band.index, band["mean"], label=config, linewidth=1.2, color=colors.get(config))
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
        for config in configs:
            rows = history[(history["config"] == config) & history["metric"].str.startswith(f"{stat}/")]
            if rows.empty:
                continue
            per_seed = rows.assign(layer=rows["metric"].str.split("/").str[1].astype(int)) \
                .groupby(["layer", "seed"])["value"].mean().groupby("layer").agg(["mean", "std", "min"]).fillna(0.0)
            low = np.minimum(per_seed["std"], per_seed["mean"] - per_seed["min"])  # log axis: stop at the lowest seed
            ax.errorbar(per_seed.index, per_seed["mean"], yerr=[low, per_seed["std"]], marker="o", markersize=3,
                        capsize=2, color=colors[config], label=config)
        ax.set_yscale("log")
        ax.set_xlabel("layer (1 = first hidden, last = output)")
        ax.set_ylabel(f"{label}, mean over epochs")
        ax.grid(alpha=0.3)

    for ax, config in zip(axes[1], configs):
        rows = history[history["config"] == config]
        layers = kernels(set(rows["metric"]))
        cmap = plt.get_cmap("viridis")
        for i, layer in enumerate(layers):
            band = curve_band(rows, config, f"grad_mean_abs/{layer}")
            tag = "output" if layer == layers[-1] else f"layer {layer}"
            ax.plot(band.index, band["mean"], linewidth=1, color=cmap(i / max(1, len(layers) - 1)),
                    label=tag if len(layers) <= 8 or i in (0, len(layers) - 1) else None)
        ax.set_yscale("log")
        ax.set_title(config, fontsize="medium")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean |gradient| of the kernel")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", ncol=2)
    seeds = history["seed"].nunique()
    fig.suptitle(f"{title}\nmean over {seeds} seeds, band/bars = ±1 std (bars stop at the lowest seed); gradients "
                 f"are per-epoch means over the epoch's updates")
    fig.tight_layout()
    return fig


def depth_configs(history: pd.DataFrame, cfg: dict) -> list[str]:
    """The depth study, led by any named model with the same architecture (relu_5 is depth 5)."""
    arch = {k: v for k, v in cfg["depth"].items() if k != "layers"}
    same = [(spec["layers"], f"model={name}") for name, spec in cfg["models"].items()
            if {k: spec[k] for k in arch} == arch and f"model={name}" in set(history["config"])]
    sweep = [(int(c.split("=", 1)[1]), c) for c in configs_of(history, "depth")]
    return [c for _, c in sorted(same + sweep)] if sweep else []


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    out = {}
    if configs_of(history, "model"):
        out["model"] = gradient_figure(history, configs_of(history, "model"),
                                       "Vanishing gradients: tanh + RandomUniform(0, 1) vs relu + he_uniform "
                                       "(circles in [-1, 1])")
    if depth_configs(history, cfg):
        out["depth"] = gradient_figure(history, depth_configs(history, cfg),
                                       f"Vanishing gradients: depth of relu + he_uniform networks "
                                       f"({cfg['width']} nodes per layer)")
    return out


# The book's single runs (test accuracy).
BOOK = {"model=tanh_1": {"val_accuracy": 0.816}, "model=tanh_5": {"val_accuracy": 0.468},
        "model=relu_5": {"val_accuracy": 0.840}}


def accuracy(config: str):
    return final(config, "val_accuracy")


def first_layer_gradient(config: str):
    """Mean over epochs of the first hidden layer's mean |gradient|, per seed."""
    return custom(f"mean |gradient| of the first layer of {config} (mean over epochs)",
                  lambda results: results.curves(config, "grad_mean_abs/1").mean(axis=1))


FINDINGS = [
    Finding("shallow_tanh_learns", "One tanh layer with RandomUniform(0, 1) weights learns the circles: test "
            "accuracy above 0.75 (book 0.816)", above(accuracy("model=tanh_1"), 0.75)),
    Finding("deep_tanh_fails_near_chance", "Five such tanh layers fail near chance: test accuracy below 0.6 "
            "(book 0.468)", below(accuracy("model=tanh_5"), 0.6)),
    Finding("deep_relu_learns", "Five relu + he_uniform layers learn: test accuracy above 0.75 (book 0.840)",
            above(accuracy("model=relu_5"), 0.75)),
    Finding("deep_relu_beats_deep_tanh", "Five relu + he_uniform layers beat five tanh layers",
            greater(accuracy("model=relu_5"), accuracy("model=tanh_5"))),
    Finding("deep_relu_beats_shallow_tanh", "Five relu + he_uniform layers beat one tanh layer (book 0.840 vs 0.816)",
            greater(accuracy("model=relu_5"), accuracy("model=tanh_1"))),
    Finding("relu_first_layer_gradients_larger", "The first hidden layer gets larger gradients with relu + "
            "he_uniform than with tanh + RandomUniform(0, 1), five layers each (book ≈0.2-0.4 vs less)",
            greater(first_layer_gradient("model=relu_5"), first_layer_gradient("model=tanh_5"))),
    Finding("deep_relu_converges_within_100_epochs", "Five relu layers reach 80% test accuracy within about 100 "
            "epochs", below(epochs_to("model=relu_5", "val_accuracy", 0.8), 100)),
    Finding("fifteen_relu_layers_still_learn", "With 15 relu + he_uniform layers the model still learns: test "
            "accuracy above 0.75", above(accuracy("depth=15"), 0.75)),
    Finding("twenty_relu_layers_fail", "With 20 relu + he_uniform layers it no longer learns: test accuracy "
            "below 0.6", below(accuracy("depth=20"), 0.6)),
    Finding("more_layers_learn_slower", "More layers slow learning: epochs to 80% test accuracy rise with depth "
            "(10, 15, 20 layers)", increasing("depth", "val_accuracy",
                                               measure=lambda config, metric: epochs_to(config, metric, 0.8))),
]
