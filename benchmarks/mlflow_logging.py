"""Benchmark: logging a family's runs to the local SQLite store, MLflow's log_batch vs one bulk insert.

The same synthetic family (configurations x seeds, per-epoch curves of five metrics, the
learning_rate family's shape by default) is logged twice, side by side in this process,
each time into a fresh store in a temporary folder:
(a) every run's params and metrics through ``MlflowClient.log_batch`` (the path a team
    server gets);
(b) ``stages.tracking.log_family``, which writes new runs' rows in one SQL transaction.
Both create and finish the same runs. Prints seconds for each and the ratio.

Usage: ``python -m benchmarks.mlflow_logging [--configs 25] [--seeds 5] [--epochs 200]``
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=int, default=25)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=200)
    args = parser.parse_args(argv)

    from stages import tracking
    from stages.engine.trial import TrialResult
    from stages.results import summarize

    rng = np.random.default_rng(0)
    results = [TrialResult(config=f"config={c}", seed=s, diverged_epoch=None, weights=[], tags={"config": c},
                           history={k: rng.random(args.epochs)
                                    for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr")})
               for c in range(args.configs) for s in range(args.seeds)]
    summary = summarize(results)
    params = {f"param_{i}": str(i) for i in range(30)}

    seconds = {}
    for label in ("log_batch", "bulk_insert"):
        with tempfile.TemporaryDirectory() as folder:
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
            tracking.client()  # creates the store's tables outside the timing
            started = time.perf_counter()
            if label == "bulk_insert":
                tracking.log_family("bench", results, summary, params, {"bench": "1"})
            else:
                _log_each_run_with_log_batch(tracking, results, summary, params)
            seconds[label] = round(time.perf_counter() - started, 2)
    rows = sum(len(v) for r in results for v in r.history.values())
    print(json.dumps({"runs": len(results) + args.configs, "per_epoch_values": rows, "seconds": seconds,
                      "ratio": round(seconds["log_batch"] / seconds["bulk_insert"], 1)}, indent=2))
    return 0


def _log_each_run_with_log_batch(tracking, results, summary, params) -> None:
    """What log_family wrote before the bulk path: the same runs, rows through log_batch."""
    original = tracking._insert_new_runs
    tracking._insert_new_runs = lambda client, runs: False  # the store then gets log_batch calls
    try:
        tracking.log_family("bench", results, summary, params, {"bench": "1"})
    finally:
        tracking._insert_new_runs = original


if __name__ == "__main__":
    raise SystemExit(main())
