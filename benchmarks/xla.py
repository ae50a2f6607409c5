"""Benchmark: a family's populations with and without XLA (``jit_compile``), side by side in one process.

XLA compiles for the host CPU, so its numbers differ from the plain graph's (and from another CPU's);
this measures what it buys. For each family given, its trials at the repo's params (``--epochs`` to
shorten) are trained twice, compile time included, and the script prints the seconds, the ratio and
the largest difference in a final metric between the two runs.

Usage: ``python -m benchmarks.xla [--families vanishing_gradients batch_size] [--epochs N] [--seeds N]``
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import families_at, family_parser
from trainlab.engine import executor


def main(argv: list[str] | None = None) -> int:
    parser = family_parser(__doc__, ["vanishing_gradients", "batch_size"])
    parser.add_argument("--seeds", type=int, default=None, help="seeds (default: the family's)")
    args = parser.parse_args(argv)

    for name, family, cfg, settings in families_at(args):
        seeds = [settings["seed"] + i for i in range(args.seeds or cfg.get("seeds") or 5)]
        timings, finals = {}, {}
        for xla in (False, True):
            with executor.training(settings, {"xla": xla}, f"{name} xla={xla}") as execute:
                started = time.perf_counter()
                results = family.run(cfg, seeds, execute)
                timings[xla] = time.perf_counter() - started
            finals[xla] = {(str(r.config), r.seed, m): float(v[-1]) for r in results for m, v in r.history.items()
                           if not m.startswith("grad_")}
        shared = [k for k in finals[False]
                  if np.isfinite(finals[False][k]) and np.isfinite(finals[True].get(k, np.nan))]
        drift = max((abs(finals[False][k] - finals[True][k]) for k in shared), default=float("nan"))
        print(f"{name}: {len(seeds)} seeds, {cfg['epochs']} epochs: without XLA {timings[False]:.1f} s, "
              f"with XLA {timings[True]:.1f} s ({timings[False] / timings[True]:.2f}x); "
              f"largest difference in a final metric {drift:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
