"""Model capacity (book chapter 1): how many nodes, and how many layers, the blobs-20 problem needs.

Nodes study: one hidden layer of 1..7 relu nodes. Layers study: 1..5 hidden layers
of 10 relu nodes. Both: softmax output over the 20 classes, SGD(0.01, momentum 0.9),
categorical cross-entropy, 100 epochs, batch 32, on the unscaled blobs-20 data.
"""

from __future__ import annotations

from functools import partial

from stages import params as P
from stages.data import load_prepared
from stages.engine.trial import Trial
from stages.families import common
from stages.figures import learning_curves

FIELDS = common.training_fields(
    nodes=P.Field(list, item=P.Field(int, minimum=1), allowed="a non-empty list of integers ≥ 1 (hidden nodes)"),
    layers=P.Field(list, item=P.Field(int, minimum=1), allowed="a non-empty list of integers ≥ 1 (hidden layers)"),
    layer_width=P.Field(int, minimum=1),
)


def check(section: dict, key: str, params: dict) -> dict:
    return common.check_training(section, key, params, FIELDS)


def model(n_inputs: int, n_classes: int, hidden: list[int]):
    return common.mlp(n_inputs, hidden, n_classes, activation="relu", hidden_init="he_uniform")


def trials(cfg: dict, seeds: list[int]) -> list[Trial]:
    data = load_prepared(cfg["data"]).split("onehot")
    n_inputs, n_classes = data.x_train.shape[1], data.y_train.shape[1]
    hidden = {f"nodes={n}": [n] for n in cfg["nodes"]}
    hidden |= {f"layers={n}": [cfg["layer_width"]] * n for n in cfg["layers"]}
    return [
        Trial(config=config, seed=seed, data=data,
              build_model=partial(model, n_inputs, n_classes, layers),
              build_optimizer=common.optimizer_factory(cfg["optimizer"]),
              loss=cfg["loss"], metric="categorical_accuracy",
              batch_size=cfg["batch_size"], epochs=cfg["epochs"], grad_stats=cfg["grad_stats"],
              tags={"hidden_layers": len(layers), "hidden_nodes": layers[0]})
        for config, layers in hidden.items() for seed in seeds
    ]


def figures(history, cfg: dict) -> dict:
    return {
        "nodes": learning_curves(history, "nodes", "Capacity: nodes in one hidden layer (blobs-20)"),
        "layers": learning_curves(history, "layers", f"Capacity: hidden layers of {cfg['layer_width']} nodes"),
    }
