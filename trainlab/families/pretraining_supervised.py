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

from trainlab import params as P
from trainlab.configs import ConfigId, Study
from trainlab.data.prepared import Split, load_prepared
from trainlab.engine.trial import Trial, TrialResult
from trainlab.families import common
from trainlab.family import Execute, Family
from trainlab.stats.findings import Finding, final, increasing, similar

DEPTH = P.Field(int, minimum=1, allowed="an integer ≥ 1 (hidden layers of the deepest model; 1 = the base model only)")
FIELDS = common.training_fields(depth=DEPTH, width=P.Field(int, minimum=1))
LAYERS = Study("layers", param="depth")  # layers=k: the model after its phase with k hidden layers


# -- the model, deepened one phase at a time ---------------------------------------------------


def model(n_inputs: int, n_classes: int, width: int, depth: int, previous: list[np.ndarray] | None = None):
    """``depth`` hidden relu layers and a softmax output; grown from ``previous`` when given."""
    net = common.mlp(n_inputs, [width] * depth, n_classes, activation="relu", hidden_init="he_uniform")
    return net if previous is None else common.deepen(net, previous)


def configs(cfg: dict) -> list[ConfigId]:
    """One configuration per phase: 1, 2, ..., ``depth`` hidden layers."""
    return LAYERS.of(list(range(1, cfg["depth"] + 1)))


def phase_trials(cfg: dict, data: Split, config: ConfigId, previous: dict[int, list[np.ndarray] | None]) -> list[Trial]:
    """The trials of one phase: per seed, the model with ``config.value`` hidden layers grown from ``previous``."""
    depth = config.value
    n_inputs, n_classes = data.x_train.shape[1], data.y_train.shape[1]
    return [
        Trial(config=config, seed=seed, data=data,
              build_model=partial(model, n_inputs, n_classes, cfg["width"], depth, start),
              build_optimizer=common.optimizer_factory(cfg["optimizer"]),
              loss=cfg["loss"], metric="categorical_accuracy",
              batch_size=cfg["batch_size"], epochs=cfg["epochs"], grad_stats=cfg["grad_stats"],
              tags={"hidden_layers": depth, "frozen_layers": depth - 1})
        for seed, start in previous.items()
    ]


def trials(cfg: dict, seeds: list[int]) -> list[Trial]:
    """The first phase (the base model): a deeper phase needs the weights the one before ended with (``train``)."""
    return phase_trials(cfg, load_prepared(cfg["data"]).split("onehot"), LAYERS(1), {seed: None for seed in seeds})


def train(cfg: dict, seeds: list[int], execute: Execute) -> list[TrialResult]:
    """One phase per depth, each from the weights the last one ended with."""
    data = load_prepared(cfg["data"]).split("onehot")
    previous: dict[int, list[np.ndarray] | None] = {seed: None for seed in seeds}
    results: list[TrialResult] = []
    for config in configs(cfg):
        phase = execute(phase_trials(cfg, data, config, previous))
        previous = {r.seed: r.weights for r in phase}
        results += phase
    return results


# -- findings --------------------------------------------------------------------------------


def findings(cfg: dict) -> list[Finding]:
    """What the book concludes. "About flat" is read as: the deepest model's mean test accuracy is
    within 0.02 of the base model's (the book's eleven test accuracies span 0.820-0.838)."""
    # With depth 1 there is no deeper model: the finding is then not judged ("depth has no 2").
    deepest = LAYERS(max(cfg["depth"], 2))
    return [
        Finding("test_accuracy_flat_with_depth",
                f"Test accuracy stays about flat as layers are added: the deepest model ({deepest.value} hidden "
                f"layers of {cfg['width']}) is within ±0.02 of the base model (book 0.830 -> 0.826)",
                similar(final(deepest, "val_accuracy"), final(LAYERS(1), "val_accuracy"), 0.02)),
        Finding("train_accuracy_drifts_up", "Training accuracy drifts up as layers are added (book 0.816 -> 0.850)",
                increasing(LAYERS, "accuracy")),
    ]


# The book's single run; it prints layers = hidden layers + 1 (our layers=k is its layers=k+1).
BOOK = {LAYERS(k): {"accuracy": train, "val_accuracy": test} for k, (train, test) in enumerate([
    (0.816, 0.830), (0.834, 0.830), (0.836, 0.824), (0.830, 0.824), (0.848, 0.820), (0.830, 0.826),
    (0.850, 0.824), (0.840, 0.838), (0.842, 0.830), (0.850, 0.830), (0.850, 0.826)], start=1)}

FAMILY = Family(
    name="pretraining_supervised", doc=__doc__, fields=FIELDS,
    check=partial(common.check_training, fields=FIELDS),
    configs=configs, trials=trials, train=train, findings=findings, book=BOOK,
    needs_book_data=("its lesson is layer-wise pretraining on the book's blobs-3 problem, whose findings are its "
                     "printed accuracies"),
)
