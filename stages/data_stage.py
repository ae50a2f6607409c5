"""DVC stage ``data``: every data set of ``datasets`` and every ``prepare`` variant, in one process.

Writes ``data/raw/<name>.npz`` for each ``datasets.<name>`` (``stages.generate``) and
``data/prepared/<variant>.npz`` for each ``prepare.<variant>`` (``stages.prepare``). One stage instead
of one per data set and variant: each of those paid a Python start, the scikit-learn import and DVC's
bookkeeping (about 6.5 s each, 27 of them) for a few milliseconds of work.

A data set read from a file (``datasets_from_files.<name>``) is made by its own light stage,
``generate_from_file@<name>``, which depends on the file and writes ``data/raw_files/<name>.npz``; this
stage depends on that directory and only reads from it, so editing a file reruns the data stage too.

Every params value is checked and every array made before the first file is written, so bad input
writes nothing. Each file is written atomically, and files no longer in params are removed: the output
directories hold exactly the params' set, under ``dvc repro`` and ``python -m stages.data_stage`` alike.

Usage: ``python -m stages.data_stage``
"""

from __future__ import annotations

if __name__ == "__main__":  # run in the warm stage server when one is up (stages.warm): it exits there
    from stages import warm

    warm.hand_over("stages.data_stage")

import shutil
import sys
from pathlib import Path

import numpy as np

from stages import datasets, generate, prepare
from stages import params as P
from stages.io import read_npz, write_npz
from stages.variants import check_variant

RAW = datasets.RAW_DIRS["datasets"]  # data/raw
PREPARED = "data/prepared"


def read_file_dataset(params: dict, name: str, root: Path) -> dict[str, np.ndarray]:
    """What ``generate_from_file@<name>`` wrote (this stage depends on the directory, not each file)."""
    path = datasets.raw_path(params, name, root)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run `dvc repro generate_from_file@{name}` first "
                                f"(datasets_from_files.{name})")
    return read_npz(path, f"rerun `dvc repro -f generate_from_file@{name}`")


def build(params: dict, root: Path) -> tuple[dict[Path, dict[str, np.ndarray]], list[str]]:
    """Every output file and its arrays, and a line on each; raises on the first bad value or file, before
    anything is written."""
    made = list(params.get("datasets") or {})
    for name in datasets.names(params):  # both sections: a name in both is refused here
        datasets.check_dataset(params, name)
    variants = {name: check_variant(params, name) for name in params.get("prepare") or {}}
    raw: dict[str, dict[str, np.ndarray]] = {}
    said: list[str] = []
    for name in made:
        raw[name], line = generate.raw(params, name)
        said.append(line)
    outputs = {root / RAW / f"{name}.npz": arrays for name, arrays in raw.items()}
    for variant, cfg in variants.items():
        dataset = cfg["dataset"]
        if dataset not in raw:  # a file's data set, read once however many variants use it
            raw[dataset] = read_file_dataset(params, dataset, root)
        outputs[root / PREPARED / f"{variant}.npz"] = prepare.prepare(raw[dataset], cfg)
        said.append(prepare.said(variant, cfg))
    return outputs, said


def remove_others(directory: Path, keep: set[Path]) -> list[str]:
    """Delete what ``directory`` holds besides ``keep`` (data sets and variants gone from params)."""
    removed = []
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        if path not in keep:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            removed.append(path.name)
    return removed


def data() -> int:
    root = P.project_root()
    outputs, said = build(P.load(root / P.PARAMS_FILE), root)
    for path, arrays in outputs.items():
        write_npz(path, **arrays)
    print("\n".join(said))
    for directory in (root / RAW, root / PREPARED):
        directory.mkdir(parents=True, exist_ok=True)  # a directory out, even with nothing in params
        removed = remove_others(directory, set(outputs))
        if removed:
            print(f"{directory.relative_to(root)}: removed {', '.join(removed)} (no longer in params.yaml)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return generate.run(data)


if __name__ == "__main__":
    sys.exit(main())
