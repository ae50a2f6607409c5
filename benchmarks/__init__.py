"""Benchmarks: each compares ways of doing one thing side by side in one process (``make bench``)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator


def family_parser(doc: str, families: list[str]) -> argparse.ArgumentParser:
    """The options every family benchmark takes: which families, and their epochs shortened."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=families)
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the family's)")
    return parser


def families_at(args: argparse.Namespace) -> Iterator[tuple[str, object, dict, dict]]:
    """(name, family, cfg, settings) of each family asked for, at the repo's params, epochs shortened."""
    from trainlab import families, stage

    params, settings = stage.load_params()
    for name in args.families:
        family, cfg = families.check_family(params, name)
        if args.epochs:
            cfg["epochs"] = args.epochs
        yield name, family, cfg, settings
