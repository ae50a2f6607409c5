"""A data set, split into train and test; and the DVC stage ``generate_from_file@<dataset>``.

Reads ``datasets.<name>`` (or ``datasets_from_files.<name>``) from params.yaml and makes the arrays
``x_train, y_train, x_test, y_test``. The book's generators: the first ``n_train`` generated rows train,
the rest test, with no shuffle beyond the generator's own (as in the book). scikit-learn's bundled data
sets and files: a random split, stratified for a classification (``stages.datasets``). The stage says the
task it found and how (given, or inferred from the target).

The ``data`` stage (``stages.data_stage``) makes every data set of ``datasets`` with ``raw`` in one
process. ``python -m stages.generate <name>`` writes one data set to ``datasets.raw_path``: the
``generate_from_file@<name>`` stages run it, one per file, so each file stays a DVC dependency.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import numpy as np

from stages import datasets
from stages import params as P
from stages.io import InputError, write_npz

# Kept for the modules and tests that name them here.
GENERATORS = datasets.GENERATORS
check_dataset = datasets.check_dataset
make = datasets.make
BAD_INPUT = 2


def raw(params: dict, name: str) -> tuple[dict[str, np.ndarray], str]:
    """Data set ``name``'s split arrays and the line that says what they are (a bad value or file raises)."""
    loaded = datasets.load(params, name)
    arrays = {"x_train": loaded.x_train, "y_train": loaded.y_train, "x_test": loaded.x_test, "y_test": loaded.y_test}
    return arrays, f"{name}: {loaded.said}"


def generate(name: str) -> int:
    params = P.load(P.project_root() / P.PARAMS_FILE)
    arrays, said = raw(params, name)  # a bad value or a bad file stops here: nothing written
    write_npz(datasets.raw_path(params, name), **arrays)
    print(said)
    return 0


def run(body: Callable[[], int]) -> int:
    """As ``stages.stage.run``, without loading MLflow into a data stage: bad input is one line, exit 2."""
    try:
        return body()
    except (P.ParamsError, InputError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    args = parser.parse_args(argv)
    return run(lambda: generate(args.dataset))


if __name__ == "__main__":
    sys.exit(main())
