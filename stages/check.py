"""DVC stage ``check``: every section of params.yaml checked before a stage that writes results runs.

DVC deletes a stage's outputs before it runs the stage, so a bad value found by the stage itself
would already have cost the last good results (and ``dvc checkout`` cannot restore the committed
``cache: false`` reports). The training and evaluation stages depend on this stage's output, so
``dvc repro`` stops here, with the one-line message, and touches nothing else. Its output holds no
params, so a rerun after a good change leaves the stages after it as they are.

Usage: ``python -m stages.check``
"""

from __future__ import annotations

if __name__ == "__main__":  # run in the warm stage server when one is up (stages.warm): it exits there
    from stages import warm

    warm.hand_over("stages.check")

import sys

from stages import datasets, families, source, stage
from stages import params as P
from stages.engine import pool
from stages.io import write_with
from stages.variants import check_variant

OUTPUT = "data/checked.txt"


def check() -> int:
    params, settings = stage.load_params()
    for name in datasets.names(params):  # the params, and a file's contents (one message naming key and file)
        datasets.info(params, name)
    for name in params.get("prepare") or {}:
        check_variant(params, name)
    for name in params.get("sources") or {}:
        source.check_source(params, name)
    checked = [name for top in families.SECTIONS for name in (params.get(top) or {})]
    for name in checked:
        families.check_family(params, name)
    write_with(P.project_root() / OUTPUT, lambda tmp: tmp.write_text("params.yaml checked\n"))
    print(f"params.yaml checked: {len(checked)} families", file=sys.stderr)
    if checked and pool.keep_seconds() > 0:
        # The training stages come next: their worker pool's TensorFlow loads while DVC runs the data stage.
        pool.start_workers(settings, {})
    return 0


def main(argv: list[str] | None = None) -> int:
    return stage.run(check)


if __name__ == "__main__":
    sys.exit(main())
