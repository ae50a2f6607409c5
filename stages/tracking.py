"""The only module that talks to MLflow.

Store: ``MLFLOW_TRACKING_URI`` when set (a team server), else the SQLite file
``mlflow.db`` at the project root (``DVC_ROOT`` when DVC runs the stage, so runs
made by ``dvc exp run --temp``/``--queue`` land in the repository, not in a
temporary copy). Layout: one experiment per family, one parent run per
configuration, one nested child run per seed. Everything is logged in batches.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from stages.engine.trial import TrialResult
from stages.params import project_root

BATCH = 1000  # MLflow's limit of metrics per log_batch call


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message says which one and what to do."""


def store_root() -> Path:
    """Where the local store lives: DVC points DVC_ROOT at the parent repository even for
    experiments it runs in temporary copies, so their runs are not lost with the copy."""
    return Path(os.environ.get("DVC_ROOT") or project_root())


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(store_root() / 'mlflow.db').resolve()}"


_clients: dict[str, Any] = {}  # per store URI: opening and checking a store costs seconds


def client():
    """A client for the configured store, checked to be reachable (once per process and store)."""
    uri = tracking_uri()
    if uri in _clients:
        return _clients[uri]
    if uri.startswith("http"):
        # Fail in seconds, not after minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from mlflow.tracking import MlflowClient

    mlflow_client = MlflowClient(tracking_uri=uri)
    try:
        mlflow_client.search_experiments(max_results=1)
    except Exception as err:  # any failure here means the store is unusable
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrackingError(
            f"MLflow tracking store {uri} is unreachable ({first_line[:200]}). "
            "Start that server, or unset MLFLOW_TRACKING_URI to use the local mlflow.db."
        ) from None
    _clients[uri] = mlflow_client
    return mlflow_client


def params_hash(section: Mapping) -> str:
    return hashlib.sha256(json.dumps(section, sort_keys=True, default=str).encode()).hexdigest()[:12]


def git_commit(root: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root or project_root(),
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(mapping: Mapping, prefix: str = "") -> dict[str, str]:
    """Nested params as MLflow's flat string params (``optimizer.learning_rate``)."""
    flat: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = json.dumps(value) if isinstance(value, list) else str(value)
    return flat


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _log(mlflow_client, run_id: str, metrics: Sequence = (), params: Mapping[str, str] | None = None,
         tags: Mapping[str, str] | None = None) -> None:
    from mlflow.entities import Param, RunTag

    param_list = [Param(k, v[:6000]) for k, v in (params or {}).items()]
    tag_list = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    for chunk in _chunks(param_list, 100):
        mlflow_client.log_batch(run_id, params=chunk)
    for chunk in _chunks(tag_list, 100):
        mlflow_client.log_batch(run_id, tags=chunk)
    for chunk in _chunks(list(metrics), BATCH):
        mlflow_client.log_batch(run_id, metrics=chunk)


def _experiment_id(mlflow_client, name: str) -> str:
    """The experiment called ``name``, created on first use."""
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment:
        return experiment.experiment_id
    # With the local SQLite store, artifacts go beside it (not into whichever folder DVC ran in).
    local = tracking_uri().startswith("sqlite:")
    location = (store_root() / "mlartifacts" / name).resolve().as_uri() if local else None
    return mlflow_client.create_experiment(name, artifact_location=location)


def _curves(history: Mapping[str, Any], stamp: int) -> list:
    """Per-epoch metrics with step = epoch; non-finite values (divergence) are left out."""
    from mlflow.entities import Metric

    return [Metric(name, float(v), stamp, epoch)
            for name, values in history.items()
            for epoch, v in enumerate(values, 1) if math.isfinite(float(v))]


def log_family(family: str, results: Sequence[TrialResult], summary: Mapping[str, Mapping],
               params: Mapping[str, str], tags: Mapping[str, str]) -> dict[str, str]:
    """Log a family's results; return the parent run id of each configuration."""
    import numpy as np
    from mlflow.entities import Metric

    mlflow_client = client()
    experiment_id = _experiment_id(mlflow_client, family)
    stamp = int(time.time() * 1000)
    by_config: dict[str, list[TrialResult]] = {}
    for r in results:
        by_config.setdefault(str(r.config), []).append(r)

    parents, pending = {}, []  # pending: (run id, metrics, params) of every run, written together
    for config, runs in by_config.items():
        parent_id = mlflow_client.create_run(
            experiment_id, run_name=config,
            tags={**tags, "config": config, "diverged": str(summary[config]["diverged"] > 0).lower()},
        ).info.run_id
        finals = [Metric(f"{metric}_{stat}", float(value), stamp, 0)
                  for metric, described in summary[config].items() if isinstance(described, Mapping)
                  for stat, value in described.items() if value is not None]
        finals.append(Metric("diverged_seeds", float(summary[config]["diverged"]), stamp, 0))
        with warnings.catch_warnings():  # an epoch where every seed diverged has no mean
            warnings.simplefilter("ignore", RuntimeWarning)
            mean_curves = {name: np.nanmean(np.stack([r.history[name] for r in runs]), axis=0)
                           for name in runs[0].history}
        config_params = {**params, **{f"config.{k}": str(v) for k, v in runs[0].tags.items()
                                      if k != "population_seconds"},
                         "seeds": str(len(runs))}
        pending.append((parent_id, finals + _curves(mean_curves, stamp), config_params))

        for r in runs:
            child_id = mlflow_client.create_run(
                experiment_id, run_name=f"{config} seed={r.seed}",
                tags={**tags, "config": config, "mlflow.parentRunId": parent_id, "diverged": str(r.diverged).lower()},
            ).info.run_id
            finals = [Metric(f"final_{name}", float(values[-1]), stamp, 0)
                      for name, values in r.history.items() if math.isfinite(float(values[-1]))]
            if r.diverged:
                finals.append(Metric("diverged_epoch", float(r.diverged_epoch), stamp, 0))
            # Per-layer gradient statistics go to the parent's mean curves only: per seed they
            # are hundreds of thousands of rows (they stay per seed in the history table).
            curves = {name: values for name, values in r.history.items() if not name.startswith("grad_")}
            pending.append((child_id, finals + _curves(curves, stamp), {**config_params, "seed": str(r.seed)}))
        parents[config] = parent_id

    if not _insert_new_runs(mlflow_client, pending):
        for run_id, metrics, run_params in pending:
            _log(mlflow_client, run_id, metrics, run_params)
    for run_id, _, _ in pending:
        mlflow_client.set_terminated(run_id, "FINISHED")
    return parents


def _insert_new_runs(mlflow_client, runs: Sequence[tuple[str, Sequence, Mapping[str, str]]]) -> bool:
    """Write the metrics and params of runs just created, in one SQL transaction; False if the store is not SQL.

    MLflow's SQL store adds metrics through its ORM one object at a time (about 0.5 ms per value,
    minutes for a family's per-epoch curves). For runs created a moment ago by this module nothing is
    stored yet, so the rows ``log_batch`` would write (each value, and each key's last value as its
    latest) can go in as one bulk insert: the same tables and rows, read back by the same MLflow API.
    """
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = getattr(getattr(mlflow_client, "_tracking_client", None), "store", None)
    if not isinstance(store, SqlAlchemyStore):
        return False
    metric_rows, latest_rows, param_rows = [], [], []
    for run_id, metrics, params in runs:
        latest: dict[str, Any] = {}
        for m in metrics:
            is_nan, value = store.sanitize_metric_value(float(m.value))  # as log_batch stores NaN and inf
            metric_rows.append({"key": m.key, "value": value, "timestamp": m.timestamp, "step": m.step,
                                "is_nan": is_nan, "run_uuid": run_id})
            if m.key not in latest or (m.step, m.timestamp, m.value) > (latest[m.key]["step"],
                                                                         latest[m.key]["timestamp"],
                                                                         latest[m.key]["value"]):
                latest[m.key] = metric_rows[-1]
        latest_rows += latest.values()
        param_rows += [{"key": k, "value": v[:6000], "run_uuid": run_id} for k, v in params.items()]
    with store.engine.begin() as connection:
        for table, rows in ((SqlMetric, metric_rows), (SqlLatestMetric, latest_rows), (SqlParam, param_rows)):
            if rows:
                connection.execute(table.__table__.insert(), rows)
    return True


def log_artifact(run_id: str, path: Path, artifact_path: str) -> None:
    """Attach one file (e.g. a saved model) to a run, under ``artifact_path``."""
    client().log_artifact(run_id, str(path), artifact_path=artifact_path)


def log_figures(run_ids: Mapping[str, str], figure_of: Mapping[str, Path]) -> int:
    """Attach each configuration's figure to its parent run; return how many were attached.

    Runs missing from the store (e.g. a fresh clone whose mlflow.db is new) are skipped.
    """
    mlflow_client = client()
    attached = 0
    for config, run_id in run_ids.items():
        if config not in figure_of:
            continue
        try:
            mlflow_client.log_artifact(run_id, str(figure_of[config]), artifact_path="figures")
            attached += 1
        except Exception as err:  # a run from another store is not fatal for the report
            print(f"warning: could not attach {figure_of[config].name} to run {run_id}: {err}")
    return attached


def log_evaluation(family: str, findings: Sequence[Mapping], files: Sequence[Path], params: Mapping[str, str],
                   tags: Mapping[str, str]) -> str:
    """One ``evaluate`` run in the family's experiment: each finding's verdict and p-value, and the report files.

    Metrics ``finding.<id>.verdict`` (1 holds or equivalent, 0 undecided, -1 does not hold), ``finding.<id>.p_value``,
    ``.round`` and ``.seeds`` (where the sequential design stopped it);
    tags ``finding.<id>`` with the verdict in words; the figures and the findings JSON as artifacts.
    """
    from mlflow.entities import Metric

    mlflow_client = client()
    experiment_id = _experiment_id(mlflow_client, family)
    stamp = int(time.time() * 1000)
    run_id = mlflow_client.create_run(experiment_id, run_name="evaluate",
                                      tags={**tags, "run.kind": "evaluate"}).info.run_id
    counts = {verdict: sum(f["verdict"] == verdict for f in findings)
              for verdict in ("holds", "equivalent", "does not hold", "undecided at the cap")}
    metrics = [Metric(f"findings_{verdict.replace(' ', '_')}", float(n), stamp, 0) for verdict, n in counts.items()]
    for f in findings:
        metrics.append(Metric(f"finding.{f['id']}.verdict", float(f["code"]), stamp, 0))
        if f.get("p_value") is not None:
            metrics.append(Metric(f"finding.{f['id']}.p_value", float(f["p_value"]), stamp, 0))
        for key in ("round", "seeds"):  # where the sequential design stopped it (stages.sequential)
            if (f.get("sequential") or {}).get(key) is not None:
                metrics.append(Metric(f"finding.{f['id']}.{key}", float(f["sequential"][key]), stamp, 0))
    _log(mlflow_client, run_id, metrics, params, {f"finding.{f['id']}": f["verdict"] for f in findings})
    for path in files:
        artifact_dir = "figures" if path.suffix == ".png" else None
        mlflow_client.log_artifact(run_id, str(path), artifact_path=artifact_dir)
    mlflow_client.set_terminated(run_id, "FINISHED")
    return run_id
