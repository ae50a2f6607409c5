"""Loading what ``prepare`` wrote, in the shapes the families' models want."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.engine.trial import Split
from stages.io import read_npz
from stages.params import project_root


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

    def split(self, target: str = "raw") -> Split:
        """Float32 inputs and the targets as a model wants them.

        ``raw`` keeps them as they are, ``onehot`` one-hot encodes class labels,
        ``sparse`` keeps integer labels, ``signed`` maps {0, 1} to {-1, 1}.
        """
        key = (self.name, target)
        if key not in _splits:  # one Split per encoding, so a population shares its arrays
            y_train, y_test = encode(self.y_train, self.y_test, target)
            _splits[key] = Split(self.x_train.astype(np.float32), y_train, self.x_test.astype(np.float32), y_test,
                                 name=self.name if target == "raw" else f"{self.name}:{target}",
                                 source=f"data/prepared/{self.name}.npz")
        return _splits[key]

    def to_original_units(self, scaled: np.ndarray) -> np.ndarray:
        return scaled * self.y_scale + self.y_offset


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
_splits: dict[tuple[str, str], Split] = {}


def load_prepared(variant: str, root: Path | None = None) -> Prepared:
    """``data/prepared/<variant>.npz``; loaded once per process so trials share the arrays."""
    path = (root or project_root()) / "data" / "prepared" / f"{variant}.npz"
    key = str(path)
    if key not in _cache:
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: run `dvc repro prepare@{variant}` first")
        arrays = read_npz(path)
        _cache[key] = Prepared(variant, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                               float(arrays["y_scale"]), float(arrays["y_offset"]))
    return _cache[key]
