"""Source models: trained once, saved, and started from by other families (params ``sources.<name>``).

A source names a data variant, hidden layers, optimizer, epochs, a seed and how many models: models
``seed``, ``seed + 1``, ... are trained as one population (the first is the book's single source). The
``source@<name>`` stage saves them as ``data/models/<name>.keras`` (the first, uncompiled: whoever starts
from it compiles it with its own optimizer, as the book does) and ``data/models/<name>/seed-<seed>.keras``
(the others), so a family that starts from them is judged over several sources, not one.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from trainlab import params as P
from trainlab.configs import ConfigId
from trainlab.engine import runtime
from trainlab.engine.saved_models import model_path, save_model
from trainlab.families import common
from trainlab.io import write_with

FIELDS = {
    **{k: f for k, f in common.training_fields().items() if k != "seeds"},  # one model, one seed
    "hidden": P.Field(list, item=P.Field(int, minimum=1),
                      allowed="a non-empty list of integers ≥ 1 (nodes per hidden layer)"),
    "activation": P.Field(str, default="relu", choices=common.ACTIVATIONS),
    "hidden_init": P.Field(str, default="he_uniform", choices=common.INITIALIZERS),
    "seed": P.Field(int, minimum=0),
    "models": P.Field(int, default=1, minimum=1, maximum=100,
                      allowed="an integer from 1 to 100: source models trained, with seeds seed, seed + 1, ..."),
}


def check_source(params: dict, name: str) -> dict:
    """Validate ``sources.<name>``."""
    key = f"sources.{name}"
    return common.check_training(P.section(params, key), key, params, FIELDS)


def source_model(n_inputs: int, n_classes: int, hidden: list[int], activation: str, hidden_init: str):
    """The book's MLP with fixed layer names (hidden_1, ..., output): readable, and the same in every run."""
    import keras

    layers: list = [keras.Input((n_inputs,), name="inputs")]
    layers += [keras.layers.Dense(width, activation=activation, kernel_initializer=common.initializer(hidden_init),
                                  name=f"hidden_{i}") for i, width in enumerate(hidden, 1)]
    layers.append(keras.layers.Dense(n_classes, activation="softmax", name="output"))
    return keras.Sequential(layers, name="source")


def source_trials(name: str, cfg: dict) -> list:
    """Each source model's training as a trial (classification on one-hot labels), seeds seed, seed + 1, ..."""
    return [source_trial(name, cfg, cfg["seed"] + i) for i in range(cfg["models"])]


def source_trial(name: str, cfg: dict, seed: int | None = None):
    """One source model's training as a trial (``seed``: the section's own by default)."""
    from trainlab.data.prepared import load_prepared
    from trainlab.engine.trial import Trial

    data = load_prepared(cfg["data"]).split("onehot")
    return Trial(config=ConfigId("source", name), seed=cfg["seed"] if seed is None else seed, data=data,
                 build_model=partial(source_model, data.x_train.shape[1], data.y_train.shape[1],
                                     cfg["hidden"], cfg["activation"], cfg["hidden_init"]),
                 build_optimizer=common.optimizer_factory(cfg["optimizer"]),
                 loss=cfg["loss"], metric="categorical_accuracy",
                 batch_size=cfg["batch_size"], epochs=cfg["epochs"], grad_stats=cfg["grad_stats"],
                 tags={"hidden": json.dumps(cfg["hidden"]), "data": cfg["data"]})


def model_paths(name: str, results_: list, root: Path) -> list[Path]:
    """Where each trained source model goes: the first at ``data/models/<name>.keras``, the others by seed."""
    return [model_path(name, root, None if i == 0 else r.seed) for i, r in enumerate(results_)]


def save_models(trials: list, results_: list, paths: list[Path]) -> None:
    """Each trained model's weights in Keras format, each file written atomically."""
    runtime.load_tensorflow()  # the models are built and saved in this process
    paths[0].parent.joinpath(paths[0].stem).mkdir(parents=True, exist_ok=True)  # the DVC output, empty for one model
    for trial, result, path in zip(trials, results_, paths):
        model = trial.build_model()
        model.set_weights(result.weights)
        write_with(path, lambda tmp, model=model: save_model(model, tmp))
