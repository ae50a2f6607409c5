"""Benchmark: what a round of seeds costs as the round grows (the sequential design's block size).

The population trainer stacks a configuration's seeds into one model, so a round of 10 seeds should
cost far less than two rounds of 5. For each family given, its configurations are trained once per
round size, in one process, and the script prints the seconds and seconds per seed for each size.

Usage: ``python -m benchmarks.round_size [--families vanishing_gradients] [--sizes 5 10 15 30] [--epochs N]``
"""

from __future__ import annotations

import time

from benchmarks import families_at, family_parser
from trainlab.engine import executor


def main(argv: list[str] | None = None) -> int:
    parser = family_parser(__doc__, ["vanishing_gradients", "capacity"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[5, 10, 15, 30])
    args = parser.parse_args(argv)

    for name, family, cfg, settings in families_at(args):
        with executor.training(settings, cfg, name) as execute:
            for size in args.sizes:
                seeds = [settings["seed"] + i for i in range(size)]
                started = time.perf_counter()
                family.run(cfg, seeds, execute)
                seconds = time.perf_counter() - started
                print(f"{name}: {size} seeds, {cfg['epochs']} epochs: {seconds:.1f} s "
                      f"({seconds / size:.2f} s per seed)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
