"""The prepare variants' params (``prepare.<variant>``): which data set, which scalers, fit on what.

Checked by the ``prepare`` stage and by the families that train on several variants.
"""

from __future__ import annotations

from trainlab import params as P
from trainlab.data import datasets

SCALERS = ("none", "standard", "minmax")


def _is_range(value: list) -> bool:
    return len(value) == 2 and value[0] < value[1]


RANGE = P.Field(list, default=[0.0, 1.0], item=P.Field(float), check=_is_range,
                allowed="a list [low, high] with low < high")
FIELDS = {
    "dataset": P.Field(str),
    "x": P.Field(str, default="none", choices=SCALERS),
    "x_range": RANGE,
    "y": P.Field(str, default="none", choices=SCALERS),
    "y_range": RANGE,
    "fit_on": P.Field(str, default="train", choices=("train", "all")),
}


def check_variant(params: dict, name: str) -> dict:
    """Validate ``prepare.<name>``, including that its data set exists."""
    key = f"prepare.{name}"
    cfg = P.check(P.section(params, key), key, FIELDS)
    known = datasets.names(params)  # datasets: and datasets_from_files:
    if cfg["dataset"] not in known:
        raise P.ParamsError(f"{key}.dataset: expected one of {', '.join(known)}, got {cfg['dataset']!r}")
    return cfg
