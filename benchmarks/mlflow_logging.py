"""Benchmark: logging families to a fresh SQLite MLflow store with ``trainlab.tracking.log_family``.

Input: the families' per-epoch histories. ``--history FILE`` replays one ``history.parquet`` (e.g.
``data/runs/learning_rate/history.parquet``: 410 seeds x 200 epochs x 5 metrics), ``--runs DIR`` every
``DIR/<family>/history.parquet`` (what a whole ``dvc repro`` logs), each family into its own experiment;
without either, a synthetic family of the learning_rate family's shape (``--configs``, ``--seeds``,
``--epochs``). Each trial gets params, a dataset and a model summary like the train stage's.

Ways, each into a fresh store in a temporary folder, all on the same trial results in this process:
``public``: this module (MLflow's public API: create_run, log_batch, log_inputs, log_artifacts,
set_terminated); ``public_async``: the same with ``log_batch(synchronous=False)``, waited for before
the runs are finished; ``--against REV``: ``tracking.py`` as of that git revision (e.g. the private
bulk insert into MLflow's SQL schema that it replaced), loaded beside the current one.

Prints per way the seconds that ``log_family`` took, the metric values it wrote, the store's size
(``mlflow.db``; the artifacts folder apart) and the seconds ``mark_superseded`` then takes to tag every
run just logged (what a rerun of the stage does), and the ratios of seconds and size to the first way.

Usage: ``python -m benchmarks.mlflow_logging [--history FILE | --runs DIR] [--against REV]
[--ways public public_async] [--seed-points N] [--parent-points N]``
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

WAYS = ("public", "public_async")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--history", type=Path, help="replay this history.parquet (one family)")
    source.add_argument("--runs", type=Path, help="replay DIR/<family>/history.parquet of every family in DIR")
    parser.add_argument("--configs", type=int, default=25, help="synthetic family: configurations")
    parser.add_argument("--seeds", type=int, default=16, help="synthetic family: seeds per configuration")
    parser.add_argument("--epochs", type=int, default=200, help="synthetic family: epochs")
    parser.add_argument("--against", metavar="REV", help="also time tracking.py as of this git revision")
    parser.add_argument("--ways", nargs="*", choices=WAYS, default=["public"], help="which ways (default: public)")
    parser.add_argument("--seed-points", type=int, help="override tracking.SEED_CURVE_POINTS")
    parser.add_argument("--parent-points", type=int, help="override tracking.PARENT_CURVE_POINTS")
    args = parser.parse_args(argv)

    from trainlab import tracking

    if args.seed_points:
        tracking.SEED_CURVE_POINTS = args.seed_points
    if args.parent_points:
        tracking.PARENT_CURVE_POINTS = args.parent_points
    if args.runs:
        families = {p.parent.name: _replay(p) for p in sorted(args.runs.glob("*/history.parquet"))}
    elif args.history:
        families = {args.history.parent.name: _replay(args.history)}
    else:
        families = {"synthetic": _synthetic(args.configs, args.seeds, args.epochs)}
    modules = {way: tracking for way in args.ways}
    if args.against:
        modules[f"tracking.py@{args.against}"] = _tracking_at(args.against)

    report = {"families": {name: {"trials": len(results), "per_epoch_values": int(sum(
        np.isfinite(np.asarray(v, dtype=float)).sum() for r in results for v in r.history.values()))}
        for name, (results, _) in families.items()},
        "seed_curve_points": tracking.SEED_CURVE_POINTS,
        "parent_curve_points": tracking.PARENT_CURVE_POINTS, "ways": {}}
    for label, module in modules.items():
        report["ways"][label] = _measure(module, label, families, tracking)
        print(f"{label}: {json.dumps(report['ways'][label]['total'])}", flush=True)
    first = next(iter(report["ways"].values()))["total"]
    for way in report["ways"].values():
        way["total"]["ratio_to_first"] = {key: round(way["total"][key] / first[key], 2) if first[key] else None
                                          for key in ("seconds", "store_mb", "metric_values")}
    print(json.dumps(report, indent=2))
    return 0


def _measure(module, label: str, families: dict, tracking) -> dict:
    """Log every family with ``module`` into a fresh store: seconds, values written, store size."""
    section = {"bench": {"optimizer": {"name": "sgd", "learning_rate": 0.01}}}
    runtime_params = {f"runtime.flag_{i}": str(i) for i in range(8)}
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
        module.client()  # creates the store's tables outside the timing
        original = tracking.ASYNC_LOGGING
        tracking.ASYNC_LOGGING = label == "public_async"
        try:
            for name, (results, summary) in families.items():
                started = time.perf_counter()
                module.log_family(name, results, summary, stage=f"train@{name}", section=section,
                                  params=runtime_params, tags=module.owner_tags())
                seconds = time.perf_counter() - started
                started = time.perf_counter()
                superseded = module.mark_superseded(name, f"train@{name}", set())
                out[name] = {"seconds": round(seconds, 2), "runs": superseded,
                             "mark_superseded_seconds": round(time.perf_counter() - started, 2)}
        finally:
            tracking.ASYNC_LOGGING = original
        database = Path(folder) / "mlflow.db"
        with sqlite3.connect(database) as connection:  # a count for the report, read after MLflow wrote
            values = connection.execute("SELECT count(*) FROM metrics").fetchone()[0]
        size = sum(p.stat().st_size for p in Path(folder).glob("mlflow.db*") if p.suffix != ".lock")
        artifacts = sum(p.stat().st_size for p in (Path(folder) / "mlartifacts").rglob("*") if p.is_file())
    out["total"] = {"seconds": round(sum(f["seconds"] for f in out.values()), 2), "metric_values": values,
                    "store_mb": round(size / 1e6, 1), "artifacts_mb": round(artifacts / 1e6, 1),
                    "mark_superseded_seconds": round(sum(f["mark_superseded_seconds"] for f in out.values()), 2)}
    return out


def _trial(config: str, seed: int, history: dict, started: float):
    from trainlab.engine.trial import TrialResult

    epochs = max(len(v) for v in history.values())
    loss = np.asarray(history.get("loss", []), dtype=float)
    bad = np.flatnonzero(~np.isfinite(loss))
    number = sum(ord(c) for c in config) % 7
    return TrialResult(config=config, seed=seed, diverged_epoch=int(bad[0]) + 1 if len(bad) else None, weights=[],
                       tags={"config": config}, history=history,
                       params={"optimizer": "sgd", "learning_rate": 0.01 * (number + 1), "momentum": 0.0,
                               "nesterov": False, "batch_size": 32, "epochs": epochs, "loss": "mse",
                               "data": "blobs3", "hidden_layers": 1, "hidden_units": [50]},
                       dataset={"name": "blobs3", "source": "data/prepared/blobs3.npz", "digest": "0123abcd",
                                "n_train": 500, "n_val": 500, "features": 2},
                       model={"summary": "Model: sequential\n(50 lines of text)", "parameters": 303},
                       started=started, epoch_ends=list(np.linspace(started + 1, started + 50, epochs)))


def _replay(path: Path) -> tuple[list, dict]:
    """A family's trial results rebuilt from its history.parquet (every curve, NaN where it has no value)."""
    import pandas as pd

    from trainlab.stats.results import summarize

    table = pd.read_parquet(path)
    started, results = time.time() - 600, []
    for (config, seed), rows in table.groupby(["config", "seed"], sort=False):
        epochs = int(rows["epoch"].max())
        history = {}
        for metric, curve in rows.groupby("metric", sort=False):
            values = np.full(epochs, np.nan)
            values[curve["epoch"].to_numpy() - 1] = curve["value"].to_numpy()
            history[metric] = values
        results.append(_trial(str(config), int(seed), history, started))
    return results, summarize(results)


def _synthetic(configs: int, seeds: int, epochs: int) -> tuple[list, dict]:
    from trainlab.stats.results import summarize

    rng = np.random.default_rng(0)
    started = time.time() - 600
    results = [_trial(f"config={c}", s, {k: rng.random(epochs) for k in ("loss", "accuracy", "val_loss",
                                                                          "val_accuracy", "lr")}, started)
               for c in range(configs) for s in range(seeds)]
    return results, summarize(results)


def _tracking_at(revision: str):
    """``tracking.py`` as of a git revision (``trainlab/`` or, before the move, ``stages/``), as a module of its
    own beside the current one; its imports of the old ``stages`` package point at ``trainlab``."""
    import importlib.util
    import subprocess
    import sys

    from trainlab.params import project_root

    for path in ("trainlab/tracking.py", "stages/tracking.py"):
        shown = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=project_root(), capture_output=True,
                               text=True)
        if shown.returncode == 0:
            break
    else:
        raise SystemExit(f"no tracking.py at {revision}")
    source = (shown.stdout.replace("from stages.engine.trial import", "from trainlab.engine.trial import")
              .replace("from stages.params import", "from trainlab.params import")
              .replace("from stages.warm import process_alive", "from trainlab.tracking import process_alive"))
    name = f"tracking_at_{revision.replace('~', '_').replace('^', '_')}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, f"{revision}:{path}", "exec"), module.__dict__)
    return module


if __name__ == "__main__":
    raise SystemExit(main())
