"""Benchmark: logging a family's runs to the local SQLite store, MLflow's public log_batch vs one bulk insert.

The same synthetic family (configurations x seeds, per-epoch curves of five metrics, the
learning_rate family's shape by default, with each trial's params, dataset and model summary)
is logged through ``stages.tracking.log_family`` side by side in this process, each time
into a fresh store in a temporary folder, with the metrics and params written:
(a) ``log_batch``: through ``MlflowClient.log_batch`` (MLflow's public API; what a team server gets);
(b) ``log_batch_async``: the same calls with ``synchronous=False``, waited for at the end;
(c) ``bulk_insert_core``: one SQL transaction, its rows inserted with SQLAlchemy Core's ``insert()``
    and one dict per row (how ``stages.tracking._insert`` inserted them before);
(d) ``bulk_insert``: one SQL transaction (``stages.tracking._insert_new_runs``, the default on the
    checked MLflow versions), its rows inserted with the driver's ``executemany``.
All four create, describe (artifacts, dataset inputs) and finish the same runs.
``--against REV`` adds (e) ``bulk_insert@REV``: ``stages/tracking.py`` as of that git revision, loaded beside
the current one, so a change to the bulk path is measured side by side in one process.
Prints seconds for each and the ratios to the bulk insert, and for the bulk paths the seconds that
``mark_superseded`` then takes to tag every run just logged (what a rerun of the stage does).

Usage: ``python -m benchmarks.mlflow_logging [--configs 25] [--seeds 5] [--epochs 200] [--against REV]
[--ways bulk_insert ...]``
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
    parser.add_argument("--against", metavar="REV", help="also time stages/tracking.py as of this git revision")
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS), help="which ways (default: all)")
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

    seconds, superseded = {}, {}
    modules = {label: tracking for label in args.ways}
    if args.against:
        modules[f"bulk_insert@{args.against}"] = _tracking_at(args.against)
    for label, module in modules.items():
        with tempfile.TemporaryDirectory() as folder:
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
            module.client()  # creates the store's tables outside the timing
            original = tracking.bulk_insert_supported, tracking._log, tracking._insert
            if label.startswith("log_batch"):
                tracking.bulk_insert_supported = lambda client: False
            if label == "log_batch_async":
                tracking._log = _async_log
            if label == "bulk_insert_core":
                tracking._insert = _core_insert
            started_at = time.perf_counter()
            try:
                module.log_family("bench", results, summary, stage="bench", section=section, params=runtime_params)
                _wait_async()
            finally:
                tracking.bulk_insert_supported, tracking._log, tracking._insert = original
            seconds[label] = round(time.perf_counter() - started_at, 2)
            if label.startswith("bulk_insert"):
                started_at = time.perf_counter()
                module.mark_superseded("bench", "bench", set())
                superseded[label] = round(time.perf_counter() - started_at, 2)
    rows = sum(len(v) for r in results for v in r.history.values())
    base = seconds.get("bulk_insert")
    print(json.dumps({"runs": len(results) + args.configs, "per_epoch_values": rows, "seconds": seconds,
                      "ratio_to_bulk_insert": {k: round(v / base, 2) for k, v in seconds.items()} if base else None,
                      "mark_superseded_seconds": superseded},
                     indent=2))
    return 0


WAYS = ("log_batch", "log_batch_async", "bulk_insert_core", "bulk_insert")


def _tracking_at(revision: str):
    """``stages/tracking.py`` as of a git revision, as a module of its own beside the current one."""
    import importlib.util
    import subprocess
    import sys

    from stages.params import project_root

    source = subprocess.run(["git", "show", f"{revision}:stages/tracking.py"], cwd=project_root(), check=True,
                            capture_output=True, text=True).stdout
    name = f"tracking_at_{revision.replace('~', '_').replace('^', '_')}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, f"{revision}:stages/tracking.py", "exec"), module.__dict__)
    return module


def _core_insert(connection, model, columns, rows) -> None:
    """tracking._insert through SQLAlchemy Core: ``insert()`` with one dict per row."""
    if rows:
        connection.execute(model.__table__.insert(), [dict(zip(columns, row)) for row in rows])


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
