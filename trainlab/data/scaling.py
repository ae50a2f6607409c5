"""Scaling one data set the way a family needs it (params ``prepare.<variant>``), for the ``data`` stage.

A variant names a data set, the input and target scalers, and whether they are fit on the train split
or, where the book does so, on all rows. The ``scale`` stage writes
``data/prepared/<variant>.npz`` with the scaled splits plus what it takes to put targets back into
their original units (``y_scale``, ``y_offset``: ``original = scaled * y_scale + y_offset``).
"""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import MinMaxScaler, StandardScaler


def make_scaler(kind: str, feature_range: list[float]):
    if kind == "standard":
        return StandardScaler()
    if kind == "minmax":
        return MinMaxScaler(feature_range=tuple(feature_range))
    return None


def scale(train: np.ndarray, test: np.ndarray, kind: str, feature_range: list[float], fit_on: str):
    """Fit a scaler on the train rows (or all rows) and apply it to both splits."""
    scaler = make_scaler(kind, feature_range)
    if scaler is None:
        return train, test, None
    column = train.ndim == 1  # sklearn scalers want 2-D input
    tr, te = (train.reshape(-1, 1), test.reshape(-1, 1)) if column else (train, test)
    scaler.fit(tr if fit_on == "train" else np.concatenate([tr, te]))
    tr, te = scaler.transform(tr), scaler.transform(te)
    return (tr[:, 0], te[:, 0], scaler) if column else (tr, te, scaler)


def prepare(raw: dict[str, np.ndarray], cfg: dict) -> dict[str, np.ndarray]:
    x_train, x_test, _ = scale(raw["x_train"], raw["x_test"], cfg["x"], cfg["x_range"], cfg["fit_on"])
    y_train, y_test, y_scaler = scale(raw["y_train"], raw["y_test"], cfg["y"], cfg["y_range"], cfg["fit_on"])
    if isinstance(y_scaler, StandardScaler):
        y_scale, y_offset = y_scaler.scale_[0], y_scaler.mean_[0]
    elif isinstance(y_scaler, MinMaxScaler):
        y_scale, y_offset = 1.0 / y_scaler.scale_[0], -y_scaler.min_[0] / y_scaler.scale_[0]
    else:
        y_scale, y_offset = 1.0, 0.0
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "y_scale": np.float64(y_scale), "y_offset": np.float64(y_offset)}


def said(name: str, cfg: dict) -> str:
    return f"{name}: {cfg['dataset']} with x={cfg['x']}, y={cfg['y']} (fit on {cfg['fit_on']})"
