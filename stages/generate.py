"""DVC stages ``generate@<dataset>`` and ``generate_from_file@<dataset>``: a data set, split into train and test.

Reads ``datasets.<name>`` (or ``datasets_from_files.<name>``) from params.yaml and writes
``data/raw/<name>.npz`` with ``x_train, y_train, x_test, y_test``. The book's generators: the first
``n_train`` generated rows train, the rest test, with no shuffle beyond the generator's own (as in the
book). scikit-learn's bundled data sets and files: a random split, stratified for a classification
(``stages.datasets``). The stage says the task it found and how (given, or inferred from the target).
"""

from __future__ import annotations

import argparse
import sys

from stages import datasets
from stages import params as P
from stages.io import InputError, write_npz

# Kept for the modules and tests that name them here.
GENERATORS = datasets.GENERATORS
check_dataset = datasets.check_dataset
make = datasets.make


def generate(name: str) -> int:
    params = P.load(P.project_root() / P.PARAMS_FILE)
    loaded = datasets.load(params, name)  # a bad value or a bad file stops here: nothing written
    write_npz(P.project_root() / "data" / "raw" / f"{name}.npz",
              x_train=loaded.x_train, y_train=loaded.y_train, x_test=loaded.x_test, y_test=loaded.y_test)
    print(f"{name}: {loaded.said}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    args = parser.parse_args(argv)
    try:  # as stages.stage.run, without loading MLflow into a data stage
        return generate(args.dataset)
    except (P.ParamsError, InputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
