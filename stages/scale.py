"""DVC stage ``scale``: every scaling variant of ``prepare`` in params.yaml, from the generated data sets.

A variant names a data set, the input and target scalers (``none``, ``standard``, ``minmax``) and
whether they are fit on the train split or, where the book does so, on all rows. Writes
``data/prepared/<variant>.npz``: the scaled splits plus what puts targets back into their units
(``y_scale``, ``y_offset``); variants no longer in params are removed. Every variant is checked and
made before the first file is written.

Usage: ``python -m stages.scale``
"""

from __future__ import annotations

import argparse
import sys

from trainlab import params as P
from trainlab import stage
from trainlab.data import datasets, scaling
from trainlab.data.variants import check_variant
from trainlab.io import read_npz, remove_except, write_npz


def scale() -> int:
    root = P.project_root()
    params, prepared = P.load(root / P.PARAMS_FILE), root / "data" / "prepared"
    variants = {name: check_variant(params, name) for name in params.get("prepare") or {}}
    raw: dict[str, dict] = {}
    outputs = {}
    for variant, cfg in variants.items():
        name = cfg["dataset"]
        if name not in raw:  # read once however many variants use it
            path, made_by = datasets.raw_path(params, name), datasets.made_by(params, name)
            if not path.is_file():
                raise FileNotFoundError(f"{path} does not exist: run `dvc repro {made_by}` first "
                                        f"({datasets.section_key(params, name)})")
            raw[name] = read_npz(path, f"rerun `dvc repro -f {made_by}`")
        outputs[prepared / f"{variant}.npz"] = scaling.prepare(raw[name], cfg)
    for path, arrays in outputs.items():
        write_npz(path, **arrays)
    print("\n".join(scaling.said(variant, cfg) for variant, cfg in variants.items()))
    prepared.mkdir(parents=True, exist_ok=True)
    removed = remove_except(prepared, set(outputs))
    if removed:
        print(f"data/prepared: removed {', '.join(removed)} (no longer in params.yaml)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    return stage.run(scale)


if __name__ == "__main__":
    sys.exit(main())
