"""Loading what the ``scale`` stage wrote, in the shapes the families' models want."""

from __future__ import annotations

import functools
import hashlib
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.io import InputError, read_npz
from trainlab.params import project_root


@dataclass(frozen=True)
class Split:
    """Train and validation arrays; the validation rows are the book's test split.

    ``origin`` says where the arrays come from when they were read from a prepared file
    (``load_prepared``): a pickled Split then carries that reference, not the arrays, and
    is rebuilt from the file (checked against its content hash) where it is unpickled.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    name: str = ""  # where the rows come from (the prepare variant), for MLflow's dataset inputs
    source: str = ""  # the file they were read from, relative to the project root
    # (absolute path, path relative to the project, md5, target encoding): how a worker rebuilds it
    origin: tuple[str, str, str, str] | None = field(default=None, compare=False, repr=False)

    @property
    def n_train(self) -> int:
        return len(self.x_train)

    @functools.cached_property
    def digest(self) -> str:
        """A short content hash of the four arrays (MLflow's dataset digest)."""
        sha = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_val, self.y_val):
            sha.update(str((array.dtype, array.shape)).encode())
            sha.update(np.ascontiguousarray(array).tobytes())
        return sha.hexdigest()[:8]

    def describe(self) -> dict[str, Any]:
        """Name, source, digest and row counts: what the tracking store records as the dataset input."""
        return {"name": self.name or "arrays", "source": self.source, "digest": self.digest,
                "n_train": self.n_train, "n_val": len(self.x_val), "features": int(np.prod(self.x_train.shape[1:]))}

    def __reduce__(self):
        if self.origin is None:
            return (Split, (self.x_train, self.y_train, self.x_val, self.y_val, self.name, self.source))
        return (split_from_source, (self.origin,))


@dataclass(frozen=True)
class Prepared:
    """One prepared variant: scaled splits, and how to undo the target scaling."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    y_scale: float
    y_offset: float
    path: str = ""  # the file it was read from, and the md5 of its bytes (DVC's content hash)
    md5: str = ""

    def split(self, target: str = "raw") -> Split:
        """Float32 inputs and the targets as a model wants them.

        ``raw`` keeps them as they are, ``onehot`` one-hot encodes class labels,
        ``sparse`` keeps integer labels, ``signed`` maps {0, 1} to {-1, 1}.
        """
        key = (self.name, self.md5, target)
        if key not in _splits:  # one Split per encoding, so a population shares its arrays
            y_train, y_test = encode(self.y_train, self.y_test, target)
            origin = (self.path, f"data/prepared/{self.name}.npz", self.md5, target) if self.md5 else None
            _splits[key] = Split(self.x_train.astype(np.float32), y_train, self.x_test.astype(np.float32), y_test,
                                 name=self.name if target == "raw" else f"{self.name}:{target}",
                                 source=f"data/prepared/{self.name}.npz", origin=origin)
        return _splits[key]


def encode(y_train: np.ndarray, y_test: np.ndarray, target: str) -> tuple[np.ndarray, np.ndarray]:
    if target == "onehot":
        classes = int(max(y_train.max(), y_test.max())) + 1
        eye = np.eye(classes, dtype=np.float32)
        return eye[y_train.astype(int)], eye[y_test.astype(int)]
    if target == "sparse":
        return y_train.astype(np.int32), y_test.astype(np.int32)
    if target == "signed":
        return (2.0 * y_train - 1.0).astype(np.float32), (2.0 * y_test - 1.0).astype(np.float32)
    if target == "raw":
        return y_train.astype(np.float32), y_test.astype(np.float32)
    raise ValueError(f"unknown target encoding {target!r}")


_cache: dict[str, Prepared] = {}
_splits: dict[tuple[str, str, str], Split] = {}


PREPARED_ARRAYS = ("x_train", "y_train", "x_test", "y_test", "y_scale", "y_offset")


def check_prepared(path: Path, variant: str, arrays: dict[str, np.ndarray]) -> None:
    """What ``prepare`` writes: 2-D inputs with one feature count, 1-D targets with a row per input row,
    scalar target scaling, all numbers finite. Anything else stops the stage before training."""
    remedy = "rerun `dvc repro -f scale`"

    def broken(why: str) -> InputError:
        return InputError(f"{path}: {why}; {remedy}")

    missing = [name for name in PREPARED_ARRAYS if name not in arrays]
    if missing:
        raise broken(f"array {missing[0]} is missing (expected {', '.join(PREPARED_ARRAYS)})")
    for name in PREPARED_ARRAYS:
        if arrays[name].dtype.kind not in "biuf":
            raise broken(f"{name} holds {arrays[name].dtype} values, expected numbers")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
            raise broken(f"x_{split} has shape {x.shape} and y_{split} {y.shape}, expected (rows, features) "
                         "and (rows,) with the same rows")
    if arrays["x_train"].shape[1] != arrays["x_test"].shape[1]:
        raise broken(f"x_train has {arrays['x_train'].shape[1]} features but x_test {arrays['x_test'].shape[1]}")
    for name in ("y_scale", "y_offset"):
        if arrays[name].ndim != 0:
            raise broken(f"{name} has shape {arrays[name].shape}, expected a number")
    for name in PREPARED_ARRAYS:
        bad = ~np.isfinite(arrays[name])
        if bad.any():
            where = np.argwhere(bad)[0]
            raise broken(f"{name} holds NaN or inf (first at index {tuple(int(i) for i in where)})")


def load_prepared(variant: str, root: Path | None = None) -> Prepared:
    """``data/prepared/<variant>.npz``; loaded once per process so trials share the arrays."""
    path = (root or project_root()) / "data" / "prepared" / f"{variant}.npz"
    key = str(path)
    if key not in _cache:
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: run `dvc repro scale` first")
        _cache[key] = _read(variant, path, hashlib.md5(path.read_bytes()).hexdigest())
    return _cache[key]


def _read(variant: str, path: Path, md5: str) -> Prepared:
    arrays = read_npz(path, "rerun `dvc repro -f scale`")
    check_prepared(path, variant, arrays)
    return Prepared(variant, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                    float(arrays["y_scale"]), float(arrays["y_offset"]), str(path.resolve()), md5)


_by_hash: dict[str, Prepared] = {}  # in a worker: each file read once, whichever shards name it


def split_from_source(source: tuple[str, str, str, str]) -> Split:
    """Rebuild a pickled Split in a worker from its file: the stage's path, the same path under this
    process's working directory (a clone of the repository), or DVC's cache there, whichever has the
    bytes the stage hashed. The arrays are then exactly those the stage would have trained on."""
    path, relative, md5, target = source
    if md5 not in _by_hash:
        cached = Path(".dvc") / "cache" / "files" / "md5" / md5[:2] / md5[2:]
        for candidate in (Path(path), Path.cwd() / relative, Path.cwd() / cached):
            if candidate.is_file() and hashlib.md5(candidate.read_bytes()).hexdigest() == md5:
                _by_hash[md5] = _read(Path(relative).stem, candidate, md5)
                break
        else:
            raise FileNotFoundError(
                f"{relative} (md5 {md5}) is not on worker {socket.gethostname()}: run the workers where the "
                f"repository's data is (a shared filesystem, or a clone after `dvc pull`)")
    return _by_hash[md5].split(target)
