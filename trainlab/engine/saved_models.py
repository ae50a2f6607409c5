"""Saved Keras models: where a source model lives, saving it byte-identically, loading it back.

Shared by the ``source@`` stage that saves a model and the families that start from one.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

from trainlab import params as P


def model_path(name: str, root: Path | None = None, seed: int | None = None) -> Path:
    """The source model ``name`` (the first, the book's), or the further one trained with ``seed``."""
    models = (root or P.project_root()) / "data" / "models"
    return models / f"{name}.keras" if seed is None else models / name / f"seed-{seed}.keras"


def more_models(name: str, root: Path | None = None) -> list[int]:
    """The seeds of the further source models ``name`` has (``sources.<name>.models`` > 1), in order."""
    folder = (root or P.project_root()) / "data" / "models" / name
    return sorted(int(p.stem.removeprefix("seed-")) for p in folder.glob("seed-*.keras")) if folder.is_dir() else []


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


def load_model(name: str, root: Path | None = None, seed: int | None = None):
    """The saved source model ``name`` (``seed``: a further one); a missing or unreadable file raises with
    what to run.

    FileNotFoundError when it is missing, ValueError when it is not a Keras model.
    """
    path = model_path(name, root, seed)
    if not path.is_file():
        raise FileNotFoundError(f"source model {path} does not exist: run `dvc repro source@{name}` first")
    from trainlab.engine.runtime import load_tensorflow

    load_tensorflow()  # a stage that trains in workers loads TensorFlow only here, with its flags
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
