"""Activation functions (book chapter 6, the rectified linear unit): sigmoid and tanh saturate, ReLU does not.

Data: circles, inputs min-max scaled to [-1, 1] on all rows, 500/500 split (as the vanishing
gradients family). Every model has hidden layers of 5 nodes, at two depths, and a sigmoid
output (glorot_uniform); binary cross-entropy, SGD(0.01, momentum 0.9), batch 32. Hidden
activations: sigmoid and tanh with glorot_uniform against relu, leaky_relu (slope 0.2, Keras's
default) and elu with he_uniform. One study per depth: depth15=relu is relu with 15 hidden layers.

Dead units: at the end of training, per hidden layer of a rectifier network, the share of units
whose pre-activation is ≤ 0 for every training input. A relu unit then outputs exactly 0 and gets
no gradient; a leaky_relu or elu unit sits on its negative branch but still gets one. Measured by
a numpy forward pass of the final weights, recorded as one-point curves ``dead_units/<layer>`` and
``dead_units`` (all hidden layers), so the summary, the findings and the figures all read them.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import numpy as np

from trainlab import params as P
from trainlab.configs import ConfigId, Study
from trainlab.data.prepared import load_prepared
from trainlab.engine.trial import Trial, TrialResult
from trainlab.families import common
from trainlab.family import Family
from trainlab.stats.findings import Finding, above, all_of, final, less

FIELDS = common.training_fields(
    width=P.Field(int, minimum=1),
    depths=P.Field(list, item=P.Field(int, minimum=1), allowed="a non-empty list of integers ≥ 1 (hidden layers)"),
    activations=P.Field(dict, allowed="a mapping {activation: initializer of its hidden layers}"),
)


def check(section: dict, key: str, params: dict) -> dict:
    cfg = common.check_training(section, key, params, FIELDS)
    for name, init in cfg["activations"].items():
        if name not in common.ACTIVATIONS:
            raise P.ParamsError(f"{key}.activations.{name}: expected one of {', '.join(common.ACTIVATIONS)}")
        P.check_value(f"{key}.activations.{name}", P.Field(str, choices=common.INITIALIZERS), init)
    return cfg


# The rectifiers, as numpy computes them (Keras's defaults): only their units can be dead.
RECTIFIERS = {"relu": lambda z: np.maximum(z, 0), "leaky_relu": lambda z: np.where(z > 0, z, 0.2 * z),
              "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0)))}


def dead_units(weights: list[np.ndarray], x: np.ndarray, activation: str) -> list[float]:
    """Per hidden layer, the share of units with pre-activation ≤ 0 for every row of ``x``.

    ``weights`` are a Dense model's in Keras order (kernel, bias per layer; the last pair is the output layer).
    """
    shares = []
    for kernel, bias in zip(weights[:-2:2], weights[1:-2:2]):
        z = x @ kernel + bias
        shares.append(float(np.mean(np.all(z <= 0, axis=0))))
        x = RECTIFIERS[activation](z)
    return shares


def study(depth: int) -> Study:
    return Study(f"depth{depth}", param="activations")


def architectures(cfg: dict) -> dict[ConfigId, tuple[int, str, str]]:
    """Each configuration's (hidden layers, activation, initializer)."""
    return {study(n)(act): (n, act, init) for n in cfg["depths"] for act, init in cfg["activations"].items()}


def trials(cfg: dict, seeds: list[int]) -> list[Trial]:
    data = load_prepared(cfg["data"]).split("raw")
    return [
        Trial(config=config, seed=seed, data=data,
              build_model=partial(common.mlp, data.x_train.shape[1], [cfg["width"]] * layers, 1, activation=act,
                                  hidden_init=init, output_activation="sigmoid"),
              build_optimizer=common.optimizer_factory(cfg["optimizer"]),
              loss=cfg["loss"], metric="binary_accuracy", batch_size=cfg["batch_size"], epochs=cfg["epochs"],
              grad_stats=cfg["grad_stats"], tags={"layers": layers, "activation": act, "init": init})
        for config, (layers, act, init) in architectures(cfg).items() for seed in seeds
    ]


def measure(results: list[TrialResult], cfg: dict) -> list[TrialResult]:
    """After training: each rectifier network's dead units on the training inputs."""
    x = load_prepared(cfg["data"]).split("raw").x_train
    out = []
    for result in results:
        if result.tags["activation"] in RECTIFIERS and not result.diverged:
            shares = dead_units(result.weights, x, result.tags["activation"])
            dead = {f"dead_units/{k}": np.array([s]) for k, s in enumerate(shares, 1)}
            result = dataclasses.replace(result, history={**result.history, **dead,
                                                          "dead_units": np.array([np.mean(shares)])})
        out.append(result)
    return out


def findings(cfg: dict) -> list[Finding]:
    """Judged at the deepest depth the params list."""
    deep = study(max(cfg["depths"]))
    layers = f"{max(cfg['depths'])} layers of {cfg['width']} nodes"

    def accuracy(act: str):  # final test accuracy, per seed
        return final(deep(act), "val_accuracy")

    def dead(act: str):  # share of dead hidden units at the end, per seed
        return final(deep(act), "dead_units")

    return [
        Finding("deep_saturating_learn_worse", f"With {layers}, sigmoid and tanh reach a lower test accuracy than "
                "each of relu, leaky_relu and elu",
                all_of(*(less(accuracy(s), accuracy(r)) for s in ("sigmoid", "tanh") for r in RECTIFIERS))),
        Finding("relu_leaves_dead_units", f"With {layers}, relu leaves some units dead: mean share above 0",
                above(dead("relu"), 0.0)),
        Finding("leaky_elu_fewer_dead_units", f"With {layers}, leaky_relu and elu leave fewer dead units than relu",
                all_of(less(dead("leaky_relu"), dead("relu")), less(dead("elu"), dead("relu")))),
    ]


FAMILY = Family(
    name="activations", doc=__doc__, fields=FIELDS, check=check, configs=lambda cfg: list(architectures(cfg)),
    trials=trials, measure=measure, findings=findings,
    needs_book_data=("it is the vanishing-gradients setup (circles scaled to [-1, 1], deep narrow networks); its "
                     "findings are about that problem"),
)
