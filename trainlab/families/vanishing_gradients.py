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

from trainlab import curves
from trainlab import params as P
from trainlab.configs import ConfigId, Study
from trainlab.data.prepared import load_prepared
from trainlab.engine.trial import Trial, TrialResult
from trainlab.families import common
from trainlab.family import Family
from trainlab.stats.findings import Finding, above, below, custom, epochs_to, final, greater, increasing

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
    trials=trials, findings=findings, book=BOOK, trial_metrics=trial_metrics,
    needs_book_data=("its lesson is the two-circles problem a deep tanh network cannot learn from RandomUniform(0, 1) "
                     "weights; another data set need not show it"),
)
