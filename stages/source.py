"""DVC stage ``source@<name>``: train one model once and save it for other families to start from.

Reads ``sources.<name>`` (data variant, hidden layers, optimizer, epochs, seed) and
``runtime``, trains the model with the population trainer (a population of one), and
writes:

- ``data/models/<name>.keras``: the trained model in Keras format (uncompiled: whoever
  starts from it compiles it with its own optimizer, as the book does);
- ``reports/results/sources/<name>.json``: its final train/test loss and accuracy (the headline,
  its test accuracy, in ``reports/metrics/sources/<name>.json``).

The training is logged to MLflow (experiment ``sources``, run ``source=<name>``) with the
model file attached as an artifact. The model file is byte-identical for identical
weights (no save date inside), so DVC sees no change when nothing changed.

Usage: ``python -m stages.source <name>``
"""

from __future__ import annotations

if __name__ == "__main__":  # run in the warm stage server when one is up (stages.warm): it exits there
    from stages import warm

    warm.hand_over("stages.source")

import argparse
import json
import sys
import tempfile
from functools import partial
from pathlib import Path

from stages import params as P
from stages import results, runtime, stage, tracking
from stages.configs import ConfigId
from stages.families import common
from stages.io import write_json, write_with
from stages.models import model_path, save_model

FIELDS = {
    **{k: f for k, f in common.training_fields().items() if k != "seeds"},  # one model, one seed
    "hidden": P.Field(list, item=P.Field(int, minimum=1),
                      allowed="a non-empty list of integers ≥ 1 (nodes per hidden layer)"),
    "activation": P.Field(str, default="relu", choices=common.ACTIVATIONS),
    "hidden_init": P.Field(str, default="he_uniform", choices=common.INITIALIZERS),
    "seed": P.Field(int, minimum=0),
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


def source_trial(name: str, cfg: dict):
    """The source model's training as one trial (classification on one-hot labels)."""
    from stages.data import load_prepared
    from stages.engine.trial import Trial

    data = load_prepared(cfg["data"]).split("onehot")
    return Trial(config=ConfigId("source", name), seed=cfg["seed"], data=data,
                 build_model=partial(source_model, data.x_train.shape[1], data.y_train.shape[1],
                                     cfg["hidden"], cfg["activation"], cfg["hidden_init"]),
                 build_optimizer=common.optimizer_factory(cfg["optimizer"]),
                 loss=cfg["loss"], metric="categorical_accuracy",
                 batch_size=cfg["batch_size"], epochs=cfg["epochs"], grad_stats=cfg["grad_stats"],
                 tags={"hidden": json.dumps(cfg["hidden"]), "data": cfg["data"]})


def train_source(name: str) -> int:
    # Everything is checked before TensorFlow loads or anything is written.
    params, settings = stage.load_params()
    cfg = check_source(params, name)
    tracking.client()
    execute, flags = runtime.start_training(settings, cfg, f"source@{name}")

    trial = source_trial(name, cfg)
    [result] = execute([trial])
    if result.diverged:
        print(f"error: source model {name} diverged at epoch {result.diverged_epoch}; "
              f"nothing saved (lower sources.{name}.optimizer.learning_rate?)", file=sys.stderr)
        return 1
    runtime.load_tensorflow()  # the model is saved from here
    model = trial.build_model()
    model.set_weights(result.weights)
    summary = results.summarize([result])

    root = P.project_root()
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / f"{name}.keras"
        save_model(model, saved)
        run_ids = tracking.log_family("sources", [result], summary, stage=f"source@{name}",
                                      section={"runtime": flags, name: cfg}, params=runtime.describe(flags),
                                      tags=tracking.owner_tags())
        tracking.log_artifact(run_ids[str(trial.config)], saved, "model")
        write_with(model_path(name, root), lambda out: out.write_bytes(saved.read_bytes()))
    write_json(root / "reports" / "results" / "sources" / f"{name}.json", summary)
    write_json(root / "reports" / "metrics" / "sources" / f"{name}.json", results.headline(summary))
    final = summary[str(trial.config)]
    print(f"[source@{name}] train accuracy {final['accuracy']['mean']:.3f}, "
          f"test accuracy {final['val_accuracy']['mean']:.3f}; saved {model_path(name, root)}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    name = parser.parse_args(argv).name
    return stage.run(lambda: train_source(name))


if __name__ == "__main__":
    sys.exit(main())
