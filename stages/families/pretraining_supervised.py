"""Greedy layer-wise supervised pretraining (book chapter 9a) on blobs-3.

A base model with one hidden layer of 10 relu nodes learns the problem. Then, until
the model has ``depth`` hidden layers, every hidden layer is frozen, a new 10-relu
hidden layer goes in under the same output layer, and the model trains again: only
the new layer and the output layer learn. Each phase starts from the weights the
previous one ended with and compiles a fresh optimizer (the book's code forgets to
recompile; this is what it means). SGD(0.01, momentum 0.9), categorical
cross-entropy, 100 epochs per phase, batch 32, unscaled inputs.

Configuration ``layers=k`` is the model with k hidden layers after its training
phase; the book prints k + 1 (it counts the output layer too).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from stages import params as P
from stages.data import load_prepared
from stages.engine.trial import Trial
from stages.families import common
from stages.figures import plot_against_depth, plot_phases
from stages.findings import Finding, final, increasing, similar

DEPTH = P.Field(int, minimum=1, allowed="an integer ≥ 1 (hidden layers of the deepest model; 1 = the base model only)")
FIELDS = common.training_fields(depth=DEPTH, width=P.Field(int, minimum=1))


def check(section: dict, key: str, params: dict) -> dict:
    return common.check_training(section, key, params, FIELDS)


def deepen(model, previous: list[np.ndarray]):
    """Start ``model`` from ``previous``, the weights of the same stack one hidden layer shallower.

    Its older hidden layers take the previous hidden weights and are frozen; its newest
    hidden layer keeps its fresh initial weights; its output layer continues from the
    previous output layer. Only the newest hidden layer and the output layer learn.
    """
    pairs = [previous[i:i + 2] for i in range(0, len(previous), 2)]  # (kernel, bias) per Dense layer
    *hidden, output = pairs
    if len(model.layers) != len(pairs) + 1:
        raise ValueError(f"cannot deepen a {len(pairs)}-layer stack into a {len(model.layers)}-layer model")
    for layer, weights in zip(model.layers, hidden):
        layer.set_weights(weights)
        layer.trainable = False
    model.layers[-1].set_weights(output)
    return model


def model(n_inputs: int, n_classes: int, width: int, depth: int, previous: list[np.ndarray] | None = None):
    """``depth`` hidden relu layers and a softmax output; grown from ``previous`` when given."""
    net = common.mlp(n_inputs, [width] * depth, n_classes, activation="relu", hidden_init="he_uniform")
    return net if previous is None else deepen(net, previous)


def run(cfg: dict, seeds: list[int], execute) -> list:
    data = load_prepared(cfg["data"]).split("onehot")
    n_inputs, n_classes = data.x_train.shape[1], data.y_train.shape[1]
    previous: dict[int, list[np.ndarray] | None] = {seed: None for seed in seeds}
    results = []
    for depth in range(1, cfg["depth"] + 1):  # one phase per depth, each from the last one's weights
        phase = execute([
            Trial(config=f"layers={depth}", seed=seed, data=data,
                  build_model=partial(model, n_inputs, n_classes, cfg["width"], depth, previous[seed]),
                  build_optimizer=common.optimizer_factory(cfg["optimizer"]),
                  loss=cfg["loss"], metric="categorical_accuracy",
                  batch_size=cfg["batch_size"], epochs=cfg["epochs"], grad_stats=cfg["grad_stats"],
                  tags={"hidden_layers": depth, "frozen_layers": depth - 1})
            for seed in seeds
        ])
        previous = {r.seed: r.weights for r in phase}
        results += phase
    return results


# The book's single run; it prints layers = hidden layers + 1 (our layers=k is its layers=k+1).
BOOK = {f"layers={k}": {"accuracy": train, "val_accuracy": test} for k, (train, test) in enumerate([
    (0.816, 0.830), (0.834, 0.830), (0.836, 0.824), (0.830, 0.824), (0.848, 0.820), (0.830, 0.826),
    (0.850, 0.824), (0.840, 0.838), (0.842, 0.830), (0.850, 0.830), (0.850, 0.826)], start=1)}

# What the book concludes. "About flat" is read as: the deepest model's mean test accuracy is within
# 0.02 of the base model's (the book's eleven test accuracies span 0.820-0.838).
FINDINGS = [
    Finding("test_accuracy_flat_with_depth",
            "Test accuracy stays about flat as layers are added: the deepest model is within ±0.02 of the base "
            "model (book 0.830 -> 0.826)",
            similar(final("layers=11", "val_accuracy"), final("layers=1", "val_accuracy"), 0.02)),
    Finding("train_accuracy_drifts_up", "Training accuracy drifts up as layers are added (book 0.816 -> 0.850)",
            increasing("layers", "accuracy")),
]


# -- figures: final metrics against depth, and the curves of all phases end to end ------------


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    plot_against_depth(left, history, "layers", {"train": "accuracy", "test": "val_accuracy"}, "accuracy")
    plot_phases(right, history, "layers", "val_accuracy", "test accuracy")
    seeds = history["seed"].nunique()
    fig.suptitle(f"Supervised greedy layer-wise pretraining (blobs-3): a hidden layer of {cfg['width']} "
                 f"added per phase\nmean over {seeds} seeds, ±1 std")
    fig.tight_layout()
    return {"layers": fig}
