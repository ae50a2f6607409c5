"""DVC stage ``generate`` (and ``generate_file@<name>``): the data sets, split into train and test.

``python -m stages.generate`` makes every data set of ``datasets`` in params.yaml (the book's
scikit-learn generators, or a bundled scikit-learn set) as ``data/raw/<name>.npz`` with the arrays
``x_train, y_train, x_test, y_test``; data sets no longer in params are removed. The book's generators:
the first ``n_train`` rows train, the rest test, as in the book; bundled sets: a random split.

``python -m stages.generate --file <name>`` reads one of ``datasets_from_files`` (a CSV or Parquet
file of yours) into ``data/raw_files/<name>.npz``: a stage of its own per file, so the file is its
dependency in dvc.yaml.

Every value is checked and every array made before the first file is written: bad input writes nothing.
"""

from __future__ import annotations

import argparse
import sys

from trainlab import params as P
from trainlab import stage
from trainlab.data import datasets
from trainlab.io import remove_except, write_npz


def generate_all() -> int:
    root = P.project_root()
    params, raw_dir = P.load(root / P.PARAMS_FILE), root / datasets.RAW_DIRS["datasets"]
    for name in datasets.names(params):  # both sections: a name in both is refused here
        datasets.check_dataset(params, name)
    made = {name: datasets.raw(params, name) for name in params.get("datasets") or {}}
    for name, (arrays, said) in made.items():
        write_npz(raw_dir / f"{name}.npz", **arrays)
        print(said)
    raw_dir.mkdir(parents=True, exist_ok=True)  # the output exists even with no data set in params
    removed = remove_except(raw_dir, {raw_dir / f"{name}.npz" for name in made})
    if removed:
        print(f"data/raw: removed {', '.join(removed)} (no longer in params.yaml)")
    return 0


def generate_file(name: str) -> int:
    params = P.load(P.project_root() / P.PARAMS_FILE)
    arrays, said = datasets.raw(params, name)
    write_npz(datasets.raw_path(params, name), **arrays)
    print(said)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", metavar="NAME", help="one data set of datasets_from_files")
    args = parser.parse_args(argv)
    return stage.run(lambda: generate_file(args.file) if args.file else generate_all())


if __name__ == "__main__":
    sys.exit(main())
