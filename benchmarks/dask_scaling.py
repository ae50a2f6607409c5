"""Scaling of one family over executors, side by side in one run: in-process, 1 and 2 local Dask workers.

The capacity family (12 configurations x ``--seeds`` seeds, ``--epochs`` epochs, blobs20) trains
three times from the same trials; each result must equal the in-process one bit for bit, and the
script prints model-epochs per second and the ratios. Dask times include starting the LocalCluster
(each worker process imports TensorFlow): that is what a stage pays.

Usage: ``python -m benchmarks.dask_scaling [--seeds 5] [--epochs 100]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from trainlab import params as P
from trainlab.engine import runtime
from trainlab.engine.placement import Placement as placement_of


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads per process (all three runs)")
    args = parser.parse_args(argv)

    params = P.load()
    common = P.check_common(params)
    settings = common["runtime"]
    runtime.apply(settings, args.threads)
    from trainlab.data import datasets
    from trainlab.data import scaling as prepare
    from trainlab.data.variants import check_variant
    from trainlab.engine.executor import run_trials
    from trainlab.families import capacity, check_family
    from trainlab.io import write_npz

    params["families"]["capacity"]["epochs"] = args.epochs
    _, cfg = check_family(params, "capacity")
    root = Path(tempfile.mkdtemp(prefix="dask-scaling-"))
    spec = check_variant(params, cfg["data"])
    data = datasets.check_dataset(params, spec["dataset"])
    x, y = datasets.make(data)
    n = data["n_train"]
    raw = {"x_train": x[:n], "y_train": y[:n], "x_test": x[n:], "y_test": y[n:]}
    write_npz(root / "data" / "prepared" / f"{cfg['data']}.npz", **prepare.prepare(raw, spec))
    os.chdir(root)
    trials = capacity.trials(cfg, [common["seed"] + i for i in range(args.seeds)])
    model_epochs = len(trials) * args.epochs

    rows = []
    reference = None
    for name, placement in [("in-process", placement_of("local", threads=args.threads)),
                            ("Dask, 1 worker", placement_of("dask", workers=1, threads=args.threads)),
                            ("Dask, 2 workers", placement_of("dask", workers=2, threads=args.threads))]:
        started = time.perf_counter()
        results = run_trials(trials, settings, label=name, placement=placement)
        seconds = time.perf_counter() - started
        if reference is None:
            reference = results
        same = all(np.array_equal(a, b) for r, s in zip(results, reference) for a, b in zip(r.weights, s.weights))
        rows.append((name, seconds, model_epochs / seconds, same))

    print(f"capacity family: {len(trials)} models x {args.epochs} epochs, {args.threads} TensorFlow thread(s) "
          f"per process, {os.cpu_count()} cores")
    print(f"{'executor':<18}{'seconds':>9}{'model-epochs/s':>16}{'vs in-process':>15}  identical")
    for name, seconds, rate, same in rows:
        print(f"{name:<18}{seconds:>9.1f}{rate:>16.0f}{rate / rows[0][2]:>14.2f}x  {same}")
    return 0 if all(row[3] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
