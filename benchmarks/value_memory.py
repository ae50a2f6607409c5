"""Measure: the peak memory a train stage holds per recorded value (one metric, one trial, one epoch).

A synthetic family (configurations x seeds, five metrics per epoch) goes through what ``train`` does
after training: the history table, the summary, the parquet file and ``tracking.log_family`` into a
fresh SQLite store. Prints the growth of the peak resident set per value; ``trainlab.params.BYTES_PER_VALUE``
(the memory check that refuses too many epochs before training) is set from it.

Usage: ``python -m benchmarks.value_memory [--configs 10] [--seeds 5] [--epochs 2000]``
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile

import numpy as np


def peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2000)
    args = parser.parse_args(argv)

    from trainlab import tracking
    from trainlab.engine.trial import TrialResult
    from trainlab.stats import results as R

    with tempfile.TemporaryDirectory() as folder:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
        tracking.client()  # the store's own setup is not per value
        before = peak()
        rng = np.random.default_rng(0)
        trials = [TrialResult(config=f"config={c}", seed=s, diverged_epoch=None, weights=[], tags={},
                              history={k: rng.random(args.epochs)
                                       for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr")})
                  for c in range(args.configs) for s in range(args.seeds)]
        history = R.history_frame(trials)
        summary = R.summarize(trials)
        history.to_parquet(f"{folder}/history.parquet", index=False)
        tracking.log_family("memory", trials, summary, params={}, tags={})
        values = len(trials) * args.epochs * 5
        grown = peak() - before
    print(f"{values} values: peak grew {grown / 2**20:.0f} MiB, {grown / values:.0f} bytes per value")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
