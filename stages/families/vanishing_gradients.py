"""Vanishing gradients (book chapter 6): deep tanh networks stall, relu + He initialisation learns.

Data: circles, inputs min-max scaled to [-1, 1] on all rows (as the book does). Every model
has hidden layers of 5 nodes and a sigmoid output; binary cross-entropy, SGD(0.01, momentum
0.9), 500 epochs, batch 32. Model study: the book's one tanh layer and five tanh layers with
RandomUniform(0, 1) weights (output layer included), and five relu layers with he_uniform
(glorot output). Depth study: relu + he_uniform with more and more layers. Every trial records,
per epoch, the mean |gradient| and the gradient norm of each layer's kernel (``grad_stats``).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from stages import curves
from stages import params as P
from stages.configs import ConfigId, Study
from stages.data import load_prepared
from stages.engine.trial import Trial, TrialResult
from stages.families import common
from stages.family import Family
from stages.figures import curve_band
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
MODEL = Study("model", param="models")  # model=<name under models:>
DEPTH = Study("depth", param="depth.layers")  # depth=<hidden layers of the depth study's architecture>


def check(section: dict, key: str, params: dict) -> dict:
    cfg = common.check_training(section, key, params, FIELDS)
    models = {}
    for name, spec in cfg["models"].items():
        if not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise P.ParamsError(f"{key}.models.{name}: model names are letters, digits and '_'")
        models[name] = P.check(spec, f"{key}.models.{name}", MODEL_FIELDS)
    cfg["models"] = models
    return cfg


def architectures(cfg: dict) -> dict[ConfigId, dict]:
    """Each configuration's {layers, activation, init, output_init}: the named models, then the depth study."""
    found = {MODEL(name): spec for name, spec in cfg["models"].items()}
    depth = {k: v for k, v in cfg["depth"].items() if k != "layers"}
    found |= {DEPTH(n): {"layers": n, **depth} for n in cfg["depth"]["layers"]}
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
    """Epochs to the accuracy threshold (never: epochs + 1); mean over epochs of the first and the output
    layer's mean |gradient|."""
    t = cfg["threshold"]
    metrics = {f"epochs_to_val_accuracy_{t:g}": curves.epochs_to(result.history["val_accuracy"], t)}
    layers = kernels(result.history)
    if layers:
        metrics["grad_mean_abs_first_layer"] = float(np.nanmean(result.history[f"grad_mean_abs/{layers[0]}"]))
        metrics["grad_mean_abs_output_layer"] = float(np.nanmean(result.history[f"grad_mean_abs/{layers[-1]}"]))
    return metrics


# -- figures: learning curves and the per-layer gradient profile ---------------------------------


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
    seeds = history["seed"].nunique()
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


# -- findings ----------------------------------------------------------------------------------------


def architecture(cfg: dict) -> str:
    """The depth study's architecture in words, e.g. "relu + he_uniform"."""
    return f"{cfg['depth']['activation']} + {cfg['depth']['init']}"


def findings(cfg: dict) -> list[Finding]:
    """What the book concludes about its three models (``models``) and the depth study (``depth``)."""
    t = cfg["threshold"]
    share, arch = f"{t:.0%}", architecture(cfg)

    def accuracy(config: ConfigId):
        return final(config, "val_accuracy")

    def first_layer_gradient(config: ConfigId):
        """Mean over epochs of the first hidden layer's mean |gradient|, per seed."""
        return custom(f"mean |gradient| of the first layer of {config} (mean over epochs)", [config],
                      lambda results: results.curves(config, "grad_mean_abs/1").mean(axis=1))

    def to_threshold(config: ConfigId, metric: str = "val_accuracy"):  # never reached: epochs + 1
        return epochs_to(config, metric, t)

    tanh_1, tanh_5, relu_5 = MODEL("tanh_1"), MODEL("tanh_5"), MODEL("relu_5")
    depths = ", ".join(str(n) for n in cfg["depth"]["layers"])
    return [
        Finding("shallow_tanh_learns", "One tanh layer with RandomUniform(0, 1) weights learns the circles: test "
                "accuracy above 0.75 (book 0.816)", above(accuracy(tanh_1), 0.75)),
        Finding("deep_tanh_fails_near_chance", "Five such tanh layers fail near chance: test accuracy below 0.6 "
                "(book 0.468)", below(accuracy(tanh_5), 0.6)),
        Finding("deep_relu_learns", "Five relu + he_uniform layers learn: test accuracy above 0.75 (book 0.840)",
                above(accuracy(relu_5), 0.75)),
        Finding("deep_relu_beats_deep_tanh", "Five relu + he_uniform layers beat five tanh layers",
                greater(accuracy(relu_5), accuracy(tanh_5))),
        Finding("deep_relu_beats_shallow_tanh", "Five relu + he_uniform layers beat one tanh layer "
                "(book 0.840 vs 0.816)", greater(accuracy(relu_5), accuracy(tanh_1))),
        Finding("relu_first_layer_gradients_larger", "The first hidden layer gets larger gradients with relu + "
                "he_uniform than with tanh + RandomUniform(0, 1), five layers each (book ≈0.2-0.4 vs less)",
                greater(first_layer_gradient(relu_5), first_layer_gradient(tanh_5))),
        Finding("deep_relu_converges_within_100_epochs", f"Five relu layers reach {share} test accuracy within "
                "about 100 epochs", below(to_threshold(relu_5), 100)),
        Finding("fifteen_relu_layers_still_learn", f"With 15 {arch} layers the model still learns: test "
                "accuracy above 0.75", above(accuracy(DEPTH(15)), 0.75)),
        Finding("twenty_relu_layers_fail", f"With 20 {arch} layers it no longer learns: test accuracy "
                "below 0.6", below(accuracy(DEPTH(20)), 0.6)),
        Finding("more_layers_learn_slower", f"More layers slow learning: epochs to {share} test accuracy rise with "
                f"depth ({depths} layers)", increasing(DEPTH, "val_accuracy", measure=to_threshold)),
    ]


# The book's single runs (test accuracy).
BOOK = {MODEL("tanh_1"): {"val_accuracy": 0.816}, MODEL("tanh_5"): {"val_accuracy": 0.468},
        MODEL("relu_5"): {"val_accuracy": 0.840}}

FAMILY = Family(
    name="vanishing_gradients", doc=__doc__, fields=FIELDS, check=check,
    configs=lambda cfg: list(architectures(cfg)),
    trials=trials, figures=figures, findings=findings, book=BOOK, trial_metrics=trial_metrics,
    needs_book_data=("its lesson is the two-circles problem a deep tanh network cannot learn from RandomUniform(0, 1) "
                     "weights; another data set need not show it"),
)
