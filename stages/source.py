"""DVC stage ``source@<name>``: train one model once and save it for other families to start from.

Reads ``sources.<name>`` (data variant, hidden layers, optimizer, epochs, seed, models) and
``runtime``, trains ``models`` models with the seeds ``seed``, ``seed + 1``, ... (one population:
the first is the book's single source), and writes:

- ``data/models/<name>.keras``: the first model in Keras format (uncompiled: whoever
  starts from it compiles it with its own optimizer, as the book does);
- ``data/models/<name>/seed-<seed>.keras``: the further models (none when ``models`` is 1), so a
  family that starts from them is judged over several sources, not one;
- ``reports/results/sources/<name>.json``: their final train/test loss and accuracy over the models (the
  headline, the test accuracy, in ``reports/metrics/sources/<name>.json``).

The training is logged to MLflow (experiment ``sources``, run ``source=<name>``, a child per model) with
each model file attached as an artifact. The model file is byte-identical for identical
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
    from stages.data import load_prepared
    from stages.engine.trial import Trial

    data = load_prepared(cfg["data"]).split("onehot")
    return Trial(config=ConfigId("source", name), seed=cfg["seed"] if seed is None else seed, data=data,
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

    trials = source_trials(name, cfg)
    results_ = execute(trials)
    diverged = [r for r in results_ if r.diverged]
    if diverged:
        print(f"error: source model {name} (seed {diverged[0].seed}) diverged at epoch {diverged[0].diverged_epoch}; "
              f"nothing saved (lower sources.{name}.optimizer.learning_rate?)", file=sys.stderr)
        return 1
    runtime.load_tensorflow()  # the models are saved from here
    summary = results.summarize(results_)

    root = P.project_root()
    paths = [model_path(name, root, None if i == 0 else r.seed) for i, r in enumerate(results_)]
    with tempfile.TemporaryDirectory() as tmp:
        saved = []
        for trial, result, path in zip(trials, results_, paths):
            model = trial.build_model()
            model.set_weights(result.weights)
            saved.append(Path(tmp) / path.name)
            save_model(model, saved[-1])
        run_ids = tracking.log_family("sources", results_, summary, stage=f"source@{name}",
                                      section={"runtime": flags, name: cfg}, params=runtime.describe(flags),
                                      tags=tracking.owner_tags())
        for file in saved:
            tracking.log_artifact(run_ids[str(trials[0].config)], file, "model")
        paths[0].parent.joinpath(name).mkdir(parents=True, exist_ok=True)  # the DVC output, empty for one model
        for file, path in zip(saved, paths):
            write_with(path, lambda out, file=file: out.write_bytes(file.read_bytes()))
    write_json(root / "reports" / "results" / "sources" / f"{name}.json", summary)
    write_json(root / "reports" / "metrics" / "sources" / f"{name}.json", results.headline(summary))
    final = summary[str(trials[0].config)]
    print(f"[source@{name}] {len(trials)} models: train accuracy {final['accuracy']['mean']:.3f}, "
          f"test accuracy {final['val_accuracy']['mean']:.3f} ± {final['val_accuracy']['std'] or 0:.3f}; "
          f"saved {paths[0]}" + (f" and {len(paths) - 1} in {paths[1].parent}" if len(paths) > 1 else ""),
          file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    name = parser.parse_args(argv).name
    return stage.run(lambda: train_source(name))


if __name__ == "__main__":
    sys.exit(main())
