"""Benchmark: logging a family's runs to the local SQLite store, MLflow's public log_batch vs one bulk insert.

The same synthetic family (configurations x seeds, per-epoch curves of five metrics, the
learning_rate family's shape by default, with each trial's params, dataset and model summary)
is logged through ``stages.tracking.log_family`` side by side in this process, each time
into a fresh store in a temporary folder, with the metrics and params written:
(a) ``log_batch``: through ``MlflowClient.log_batch`` (MLflow's public API; what a team server gets);
(b) ``log_batch_async``: the same calls with ``synchronous=False``, waited for at the end;
(c) ``bulk_insert``: one SQL transaction (``stages.tracking._insert_new_runs``, the default on the
    checked MLflow versions).
All three create, describe (artifacts, dataset inputs) and finish the same runs. Prints seconds
for each and the ratios to the bulk insert.

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
    started = time.time() - 60
    ends = list(np.linspace(started + 1, started + 50, args.epochs))
    results = [TrialResult(config=f"config={c}", seed=s, diverged_epoch=None, weights=[], tags={"config": c},
                           history={k: rng.random(args.epochs)
                                    for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr")},
                           params={"optimizer": "sgd", "learning_rate": 0.01 * (c + 1), "momentum": 0.0,
                                   "nesterov": False, "batch_size": 32, "epochs": args.epochs, "loss": "mse",
                                   "data": "blobs3", "hidden_layers": 1, "hidden_units": [50]},
                           dataset={"name": "blobs3", "source": "data/prepared/blobs3.npz", "digest": "0123abcd",
                                    "n_train": 500, "n_val": 500, "features": 2},
                           model={"summary": "Model: sequential\n(50 lines of text)", "parameters": 303},
                           started=started, epoch_ends=ends)
               for c in range(args.configs) for s in range(args.seeds)]
    summary = summarize(results)
    runtime_params = {f"runtime.flag_{i}": str(i) for i in range(8)}
    section = {"bench": {"epochs": args.epochs, "optimizer": {"name": "sgd", "learning_rate": 0.01}}}

    seconds = {}
    for label in ("log_batch", "log_batch_async", "bulk_insert"):
        with tempfile.TemporaryDirectory() as folder:
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
            tracking.client()  # creates the store's tables outside the timing
            original = tracking.bulk_insert_supported, tracking._log
            if label != "bulk_insert":
                tracking.bulk_insert_supported = lambda client: False
            if label == "log_batch_async":
                tracking._log = _async_log
            started_at = time.perf_counter()
            try:
                tracking.log_family("bench", results, summary, stage="bench", section=section, params=runtime_params)
                _wait_async()
            finally:
                tracking.bulk_insert_supported, tracking._log = original
            seconds[label] = round(time.perf_counter() - started_at, 2)
    rows = sum(len(v) for r in results for v in r.history.values())
    print(json.dumps({"runs": len(results) + args.configs, "per_epoch_values": rows, "seconds": seconds,
                      "ratio_to_bulk_insert": {k: round(v / seconds["bulk_insert"], 2) for k, v in seconds.items()}},
                     indent=2))
    return 0


_futures: list = []


def _async_log(mlflow_client, run_id, metrics=(), params=None, tags=None) -> None:
    """tracking._log with ``log_batch(synchronous=False)``: MLflow queues the rows and writes them in a thread."""
    from mlflow.entities import Metric, Param

    metric_list = [m for m in metrics if isinstance(m, Metric)]
    param_list = [Param(k, v) for k, v in (params or {}).items()]
    for start in range(0, max(len(metric_list), 1), 900):
        _futures.append(mlflow_client.log_batch(run_id, metrics=metric_list[start:start + 900],
                                                params=param_list if start == 0 else [], synchronous=False))


def _wait_async() -> None:
    while _futures:
        _futures.pop().wait()


if __name__ == "__main__":
    raise SystemExit(main())
