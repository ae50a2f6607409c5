"""DVC stage ``generate@<dataset>``: the book's scikit-learn data sets, split head/tail.

Reads ``datasets.<name>`` from params.yaml and writes ``data/raw/<name>.npz`` with
``x_train, y_train, x_test, y_test``: the first ``n_train`` generated rows train,
the rest test, with no shuffle beyond the generator's own (as in the book).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from sklearn import datasets as sk

from stages import params as P
from stages.io import write_npz

GENERATORS = ("blobs", "circles", "regression")

COMMON = {
    "generator": P.Field(str, choices=GENERATORS),
    "n_samples": P.Field(int, minimum=2),
    "n_train": P.Field(int, minimum=1),
    "random_state": P.Field(int, minimum=0),
}
FIELDS = {
    "blobs": {**COMMON, "centers": P.Field(int, minimum=1), "n_features": P.Field(int, minimum=1),
              "cluster_std": P.Field(float, minimum=0, exclusive_minimum=True)},
    "circles": {**COMMON, "noise": P.Field(float, minimum=0),
                "factor": P.Field(float, default=0.8, minimum=0, exclusive_minimum=True, maximum=1)},
    "regression": {**COMMON, "n_features": P.Field(int, minimum=1),
                   "n_informative": P.Field(int, default=10, minimum=1), "noise": P.Field(float, minimum=0)},
}


def check_dataset(params: dict, name: str) -> dict:
    """Validate ``datasets.<name>``."""
    key = f"datasets.{name}"
    spec = P.section(params, key)
    generator = spec.get("generator") if isinstance(spec, dict) else None
    if generator not in GENERATORS:
        raise P.ParamsError(f"{key}.generator: expected one of {', '.join(GENERATORS)}, got {generator!r}")
    cfg = P.check(spec, key, FIELDS[generator])
    if cfg["n_train"] >= cfg["n_samples"]:
        raise P.ParamsError(f"{key}.n_train: expected fewer than n_samples={cfg['n_samples']}, got {cfg['n_train']}")
    return cfg


def make(cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """The generator call exactly as the book makes it."""
    args = {k: v for k, v in cfg.items() if k not in ("generator", "n_train")}
    if cfg["generator"] == "blobs":
        return sk.make_blobs(**args)
    if cfg["generator"] == "circles":
        return sk.make_circles(**args)
    return sk.make_regression(**args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    args = parser.parse_args(argv)
    try:
        cfg = check_dataset(P.load(), args.dataset)
    except P.ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    x, y = make(cfg)
    n = cfg["n_train"]
    write_npz(P.project_root() / "data" / "raw" / f"{args.dataset}.npz",
              x_train=x[:n], y_train=y[:n], x_test=x[n:], y_test=y[n:])
    print(f"{args.dataset}: {len(x)} rows ({n} train), {x.shape[1]} features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
