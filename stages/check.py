"""DVC stage ``check``: every section of params.yaml checked before any stage that holds results runs.

DVC deletes a stage's outputs before it runs the stage, so a bad value found by the stage itself would
already have cost the last good results (and ``dvc checkout`` cannot restore the committed ``cache:
false`` reports). Every other stage depends on this stage's output, so ``dvc repro`` stops here with
one line naming the key and what is allowed, and touches nothing else. Beyond types and ranges it
refuses what cannot run: a family whose curves (configurations × the seeds' cap × epochs) would not fit
in memory. Its output holds no params, so a rerun after a good change leaves the later stages alone.

Usage: ``python -m stages.check``
"""

from __future__ import annotations

import argparse
import sys

from trainlab import families, sources, stage
from trainlab import params as P
from trainlab.data import datasets
from trainlab.data.variants import check_variant
from trainlab.io import write_with
from trainlab.stats import sequential

OUTPUT = "data/checked.txt"


def check() -> int:
    params, settings = stage.load_params()
    for name in datasets.names(params):  # the params, and a file's contents (one message naming key and file)
        datasets.info(params, name)
    for name in params.get("prepare") or {}:
        check_variant(params, name)
    for name in params.get("sources") or {}:
        sources.check_source(params, name)
    checked = [name for top in families.SECTIONS for name in (params.get(top) or {})]
    for name in checked:
        family, cfg = families.check_family(params, name)
        key = families.section_key(params, name)
        design = sequential.design_for(settings, cfg, key)
        if "epochs" in cfg:  # the most the sequential design may train: every configuration at the cap
            P.check_memory(f"{key}.epochs", [cfg["epochs"]] * len(family.configs(cfg)) * design.cap)
    write_with(P.project_root() / OUTPUT, lambda tmp: tmp.write_text("params.yaml checked\n"))
    print(f"params.yaml checked: {len(checked)} families", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    return stage.run(check)


if __name__ == "__main__":
    sys.exit(main())
