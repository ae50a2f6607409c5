"""DVC stage ``source@<name>``: train one model once and save it for other families to start from.

Reads ``sources.<name>`` (data variant, hidden layers, optimizer, epochs, seed) and
``runtime``, trains the model with the population trainer (a population of one), and
writes:

- ``data/models/<name>.keras``: the trained model in Keras format (uncompiled: whoever
  starts from it compiles it with its own optimizer, as the book does);
- ``reports/metrics/sources/<name>.json``: its final train/test loss and accuracy.

The training is logged to MLflow (experiment ``sources``, run ``source=<name>``) with the
model file attached as an artifact. The model file is byte-identical for identical
weights (no save date inside), so DVC sees no change when nothing changed.

Usage: ``python -m stages.source <name>``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import zipfile
from functools import partial
from pathlib import Path

from stages import params as P
from stages import runtime, tracking
from stages.families import common

FIELDS = {
    **{k: f for k, f in common.training_fields().items() if k != "seeds"},  # one model, one seed
    "hidden": P.Field(list, item=P.Field(int, minimum=1),
                      allowed="a non-empty list of integers ≥ 1 (nodes per hidden layer)"),
    "activation": P.Field(str, default="relu", choices=common.ACTIVATIONS),
    "hidden_init": P.Field(str, default="he_uniform", choices=common.INITIALIZERS),
    "seed": P.Field(int, minimum=0),
}


def model_path(name: str, root: Path | None = None) -> Path:
    return (root or P.project_root()) / "data" / "models" / f"{name}.keras"


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
    return Trial(config=f"source={name}", seed=cfg["seed"], data=data,
                 build_model=partial(source_model, data.x_train.shape[1], data.y_train.shape[1],
                                     cfg["hidden"], cfg["activation"], cfg["hidden_init"]),
                 build_optimizer=common.optimizer_factory(cfg["optimizer"]),
                 loss=cfg["loss"], metric="categorical_accuracy",
                 batch_size=cfg["batch_size"], epochs=cfg["epochs"], grad_stats=cfg["grad_stats"],
                 tags={"hidden": json.dumps(cfg["hidden"]), "data": cfg["data"]})


def _stable_ids(node, ids: dict) -> None:
    """Renumber Keras's ``shared_object_id`` (a Python ``id()``) 1, 2, ... in order of appearance."""
    if isinstance(node, dict):
        if "shared_object_id" in node:
            node["shared_object_id"] = ids.setdefault(node["shared_object_id"], len(ids) + 1)
        for value in node.values():
            _stable_ids(value, ids)
    elif isinstance(node, list):
        for value in node:
            _stable_ids(value, ids)


def save_model(model, path: Path) -> None:
    """``model.save``, made byte-identical for identical models: no save date, no
    memory addresses, fixed zip timestamps (so DVC sees no change when nothing changed)."""
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / path.name
        model.save(saved)
        with zipfile.ZipFile(saved) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                data = src.read(info.filename)
                if info.filename == "metadata.json":
                    metadata = json.loads(data)
                    metadata.pop("date_saved", None)
                    data = json.dumps(metadata).encode()
                elif info.filename == "config.json":
                    config = json.loads(data)
                    _stable_ids(config, {})
                    data = json.dumps(config).encode()
                dst.writestr(zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0)), data,
                             compress_type=zipfile.ZIP_DEFLATED)


def load_model(name: str, root: Path | None = None):
    """The saved source model ``name``; a missing or unreadable file raises with what to run.

    FileNotFoundError when it is missing, ValueError when it is not a Keras model.
    """
    path = model_path(name, root)
    if not path.is_file():
        raise FileNotFoundError(f"source model {path} does not exist: run `dvc repro source@{name}` first")
    import keras

    try:
        with zipfile.ZipFile(path) as archive:  # a truncated or altered file fails its CRC check here
            broken = archive.testzip()
        if broken is not None:
            raise ValueError(f"{broken} fails its CRC check")
        return keras.models.load_model(path, compile=False)
    except Exception as err:  # whatever Keras or zipfile raise, the message says what to do
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise ValueError(f"source model {path} is not a readable Keras model ({type(err).__name__}: {reason}); "
                         f"rebuild it with `dvc repro source@{name}`") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    name = parser.parse_args(argv).name

    # Everything is checked before TensorFlow loads or anything is written.
    try:
        params = P.load(P.project_root() / P.PARAMS_FILE)
        settings = P.check_common(params)
        cfg = check_source(params, name)
        runtime.placement()  # where to train (environment): a bad value stops here too
        tracking.client()
    except (P.ParamsError, tracking.TrackingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if cfg["xla"] is not None:
        settings["runtime"]["xla"] = cfg["xla"]
    runtime.apply(settings["runtime"])
    from stages import results
    from stages.engine.executor import run_trials
    from stages.io import write_json, write_with

    try:
        trial = source_trial(name, cfg)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    [result] = run_trials([trial], settings["runtime"], label=f"source@{name}")
    if result.diverged:
        print(f"error: source model {name} diverged at epoch {result.diverged_epoch}; "
              f"nothing saved (lower sources.{name}.optimizer.learning_rate?)", file=sys.stderr)
        return 1
    model = trial.build_model()
    model.set_weights(result.weights)
    summary = results.summarize([result])

    root = P.project_root()
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / f"{name}.keras"
        save_model(model, saved)
        run_ids = tracking.log_family(
            "sources", [result], summary,
            params=tracking.flatten(cfg) | runtime.describe(settings["runtime"]),
            tags={"dvc.stage": f"source@{name}", "git.commit": tracking.git_commit(),
                  "mlflow.source.git.commit": tracking.git_commit(),
                  "params.hash": tracking.params_hash({"runtime": settings["runtime"], name: cfg})},
        )
        tracking.log_artifact(run_ids[trial.config], saved, "model")
        write_with(model_path(name, root), lambda out: out.write_bytes(saved.read_bytes()))
    write_json(root / "reports" / "metrics" / "sources" / f"{name}.json", summary)
    final = summary[trial.config]
    print(f"[source@{name}] train accuracy {final['accuracy']['mean']:.3f}, "
          f"test accuracy {final['val_accuracy']['mean']:.3f}; saved {model_path(name, root)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
