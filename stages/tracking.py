"""The only module that talks to MLflow.

Store: ``MLFLOW_TRACKING_URI`` when set (a team server), else the SQLite file
``mlflow.db`` at the project root (``DVC_ROOT`` when DVC runs the stage, so runs
made by ``dvc exp run --temp``/``--queue`` land in the repository, not in a
temporary copy). Layout: one experiment per family, one parent run per
configuration, one nested child run per seed. Everything is logged in batches.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import getpass
import hashlib
import json
import math
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stages.engine.trial import TrialResult
from stages.params import project_root
from stages.warm import process_alive

BATCH = 1000  # MLflow's limit of metrics per log_batch call


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message says which one and what to do."""


_writing = {"depth": 0}  # this process's hold on the SQLite writer lock (re-entered by nested calls)


@contextlib.contextmanager
def one_writer() -> Iterator[None]:
    """For a SQLite store, one writing process at a time: an exclusive lock on ``<store>.lock`` beside it.

    Concurrent stages (``dvc queue start -j 4``) otherwise race: two creating a new store both run its
    migrations ("table _alembic_tmp_tags already exists"), and long bulk inserts outlast SQLite's busy
    timeout ("database is locked"). A server (PostgreSQL behind ``mlflow server``) needs no such lock.
    """
    uri = tracking_uri()
    if not uri.startswith("sqlite:///") or _writing["depth"]:
        _writing["depth"] += 1
        try:
            yield
        finally:
            _writing["depth"] -= 1
        return
    store = Path(uri.removeprefix("sqlite:///"))
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(store.with_name(store.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        _writing["depth"] += 1
        try:
            yield
        except Exception as err:
            if "database is locked" in str(err):  # another program (not a stage) holds the file
                raise TrackingError(f"MLflow tracking store {store} stayed locked by another writer "
                                    f"({first_line(err)}); for concurrent stages use a server: "
                                    "`make mlflow-server` and MLFLOW_TRACKING_URI=http://127.0.0.1:PORT"
                                    " (README)") from None
            raise
        finally:
            _writing["depth"] -= 1


def writes(function: Callable) -> Callable:
    """Mark a function that writes the store: it runs under ``one_writer``."""
    @functools.wraps(function)
    def locked(*args, **kwargs):
        with one_writer():
            return function(*args, **kwargs)
    return locked


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
    if uri.startswith("file:") or "://" not in uri:
        raise TrackingError(f"MLflow tracking URI {uri}: a file store (mlruns folder) is not supported (MLflow 3 "
                            "keeps it in maintenance mode); use sqlite:///<path>/mlflow.db, a server "
                            "(http://host:5000), or unset MLFLOW_TRACKING_URI to use the local mlflow.db")
    if uri.startswith("http"):
        # Fail in seconds, not after minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from mlflow.tracking import MlflowClient

    try:  # building the client opens (and for SQL stores migrates) the store: it fails here too
        with one_writer():
            mlflow_client = MlflowClient(tracking_uri=uri)
            mlflow_client.search_experiments(max_results=1)
    except Exception as err:  # any failure here means the store is unusable
        raise TrackingError(store_problem(uri, err)) from None
    _clients[uri] = mlflow_client
    return mlflow_client


DRIVERS = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pymysql": "pymysql", "MySQLdb": "mysqlclient"}


def store_problem(uri: str, err: Exception) -> str:
    """One line for a store that cannot be opened: which store, what is wrong, what to do."""
    first_line = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
    module = getattr(err, "name", None) if isinstance(err, ModuleNotFoundError) else None
    if module:
        scheme = uri.split("://", 1)[0]
        return (f"MLflow tracking store {uri.split('@')[-1]}: the database driver {module!r} that {scheme}:// "
                f"uses is not installed; install {DRIVERS.get(module, module)} (or name an installed driver, "
                f"e.g. postgresql+psycopg2:// with psycopg2-binary)")
    if uri.startswith("sqlite:") and type(err).__name__ in ("DatabaseError", "OperationalError", "MlflowException"):
        path = uri.removeprefix("sqlite:///")
        return (f"MLflow tracking store {path} is not a usable SQLite database ({first_line[:120]}); move it "
                f"aside (mv {path} {path}.broken) to start a new store, or restore it from a backup")
    return (f"MLflow tracking store {uri} is unreachable ({first_line}). "
            "Start that server, or unset MLFLOW_TRACKING_URI to use the local mlflow.db.")


def params_hash(section: Mapping) -> str:
    return hashlib.sha256(json.dumps(section, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=project_root(), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit(root: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root or project_root(),
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _source_command(stage: str) -> str:
    """The command this process runs (``python -m stages.train capacity``), else the stage's name."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name.startswith("stages."):
        return shlex.join(["python", "-m", spec.name, *sys.argv[1:]])
    return stage


def provenance(stage: str, section: Mapping | None = None) -> dict[str, str]:
    """The tags that say where a run comes from: the DVC stage and its command, the git commit and whether
    the tree had uncommitted changes, the DVC experiment (``dvc exp run`` sets DVC_EXP_NAME), the params
    hash, the user; ``run.batch`` names this stage execution (the DVC experiment, else the UTC time)."""
    commit = git_commit()
    status = _git("status", "--porcelain", "--untracked-files=no")
    exp = os.environ.get("DVC_EXP_NAME", "")
    tags = {
        "dvc.stage": stage,
        "git.commit": commit,
        "git.dirty": "unknown" if status is None else str(bool(status)).lower(),
        "mlflow.source.git.commit": commit,
        "mlflow.source.name": _source_command(stage),
        "mlflow.source.type": "LOCAL",
        "mlflow.user": os.environ.get("USER") or getpass.getuser(),
        "run.batch": exp or time.strftime("%Y%m%d-%H%M%S", time.gmtime()),
    }
    branch = _git("rev-parse", "--abbrev-ref", "HEAD")
    if branch and branch != "HEAD":
        tags["mlflow.source.git.branch"] = branch
    if exp:
        tags["dvc.experiment"] = exp
        if os.environ.get("DVC_EXP_BASELINE_REV"):
            tags["dvc.baseline"] = os.environ["DVC_EXP_BASELINE_REV"]
    if section is not None:
        tags["params.hash"] = params_hash(section)
    return tags


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
    """Public API: params, tags and metrics in as few ``log_batch`` calls as MLflow's limits allow."""
    from mlflow.entities import Param, RunTag

    param_list = [Param(k, v[:6000]) for k, v in (params or {}).items()]
    tag_list = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    metric_list = list(metrics)
    while param_list or tag_list or metric_list:  # at most 100 params, 100 tags, 1000 entries in one call
        p, t = param_list[:100], tag_list[:100]
        m = metric_list[:BATCH - len(p) - len(t)]
        mlflow_client.log_batch(run_id, metrics=m, params=p, tags=t)
        param_list, tag_list, metric_list = param_list[len(p):], tag_list[len(t):], metric_list[len(m):]


# The experiment tag MLflow 3's UI reads to open the classic runs table and charts (model training)
# instead of the GenAI pages; its values are in the UI bundle (ExperimentKind in mlflow/server/js).
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def _experiment_id(mlflow_client, name: str) -> str:
    """The experiment called ``name``, created on first use, marked as a model-training experiment."""
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment:
        if experiment.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:  # stores made before the tag
            mlflow_client.set_experiment_tag(experiment.experiment_id, *EXPERIMENT_KIND)
        return experiment.experiment_id
    # With a SQLite store, artifacts go beside it (not into whichever folder DVC ran in).
    uri = tracking_uri()
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts" / name).resolve().as_uri()
    return mlflow_client.create_experiment(name, artifact_location=location, tags=dict([EXPERIMENT_KIND]))


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


@dataclass
class MetricRows:
    """Metric values as columns: key, value, timestamp (ms) and step of each.

    A family logs ~200,000 per-epoch values: one mlflow ``Metric`` object per value cost seconds to build
    and read back. The bulk insert writes these columns as they are; iterating yields ``Metric`` objects
    for MLflow's public ``log_batch``.
    """

    keys: np.ndarray  # object (str)
    values: np.ndarray  # float64
    timestamps: np.ndarray  # int64
    steps: np.ndarray  # int64

    @classmethod
    def of(cls, *parts: MetricRows | Iterable) -> MetricRows:
        """One table from MetricRows and sequences of ``Metric`` objects, in their order."""
        tables = [part if isinstance(part, MetricRows) else cls._from_metrics(list(part)) for part in parts]
        return cls(*(np.concatenate([getattr(t, column) for t in tables]) if tables else np.empty(0, dtype)
                     for column, dtype in (("keys", object), ("values", float), ("timestamps", np.int64),
                                           ("steps", np.int64))))

    @classmethod
    def _from_metrics(cls, metrics: list) -> MetricRows:
        return cls(np.array([m.key for m in metrics], dtype=object), np.array([m.value for m in metrics], dtype=float),
                   np.array([m.timestamp for m in metrics], dtype=np.int64),
                   np.array([m.step for m in metrics], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator:
        from mlflow.entities import Metric

        for key, value, timestamp, step in zip(self.keys.tolist(), self.values.tolist(), self.timestamps.tolist(),
                                               self.steps.tolist()):
            yield Metric(key, value, timestamp, step)


def _curves(history: Mapping[str, Any], stamps: Sequence[int]) -> MetricRows:
    """Per-epoch metrics, step = epoch and timestamp = when that epoch ended; non-finite values are left out."""
    stamps = np.asarray(stamps, dtype=np.int64)
    parts = []
    for name, values in history.items():
        values = np.asarray(values, dtype=float)
        finite = np.isfinite(values)
        epochs = np.arange(1, len(values) + 1, dtype=np.int64)[finite]
        parts.append(MetricRows(np.full(len(epochs), name, dtype=object), values[finite],
                                stamps[np.minimum(epochs, len(stamps)) - 1], epochs))
    return MetricRows.of(*parts)


def _param_values(params: Mapping[str, Any]) -> dict[str, str]:
    return {k: json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v) for k, v in params.items()}


def _dataset_input(dataset: Mapping[str, Any]):
    """A trial's rows as an MLflow dataset input (the UI's Datasets column): name, digest, source, row counts."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    source = json.dumps({"uri": dataset.get("source") or "in-memory arrays"})
    profile = json.dumps({k: dataset[k] for k in ("n_train", "n_val", "features") if k in dataset})
    return DatasetInput(Dataset(name=str(dataset.get("name") or "arrays"), digest=str(dataset.get("digest", "")),
                                source_type="local", source=source, profile=profile),
                        tags=[InputTag("mlflow.data.context", "training")])


def _times(runs: Sequence[TrialResult], fallback: float) -> tuple[float, float, list[int]]:
    """Start, end and per-epoch stamps (ms) of the trials' own training; ``fallback`` where they carry none."""
    starts = [r.started for r in runs if r.started is not None]
    ends = [r.epoch_ends[-1] for r in runs if r.epoch_ends]
    start = min(starts) if starts else fallback
    end = max(ends) if ends else fallback
    longest = max(runs, key=lambda r: len(r.epoch_ends))
    return start, end, [_ms(t) for t in longest.epoch_ends] or [_ms(end)]


def _mean_curves(runs: Sequence[TrialResult]) -> dict[str, Any]:
    """Mean over the seeds that did not diverge (all seeds when every one did), so that each curve's
    last value is the summary's mean; per-layer gradient statistics included."""
    import numpy as np

    healthy = [r for r in runs if not r.diverged] or list(runs)
    with warnings.catch_warnings():  # an epoch where every seed diverged has no mean
        warnings.simplefilter("ignore", RuntimeWarning)
        return {name: np.nanmean(np.stack([r.history[name] for r in healthy]), axis=0) for name in runs[0].history}


@writes
def log_family(family: str, results: Sequence[TrialResult], summary: Mapping[str, Mapping], *,
               stage: str | None = None, section: Mapping | None = None,
               params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None,
               trial_metrics: Callable[[TrialResult], Mapping[str, float]] | None = None) -> dict[str, str]:
    """Log a family's results; return the parent run id of each configuration.

    One parent run per configuration, one nested child run per seed, in the family's experiment.
    Params: each trial's own effective values (``TrialResult.params``: learning_rate, batch_size,
    hidden_layers, ...) plus ``params`` (e.g. the runtime flags); the whole params ``section`` is the
    parent's ``params.yaml`` artifact. Metrics have one name per quantity: a child logs its curves
    (``val_accuracy`` per epoch, step = epoch) and ``trial_metrics``; the parent logs the same names as
    the mean over its seeds that did not diverge, and its spread (std, n, 95 % interval) as the
    ``summary.json`` artifact. Tag ``run.kind`` is ``configuration`` or ``seed``; child runs also carry
    ``seed_of`` (their configuration), the key to group seeds by in the UI. Times are the training's
    own. Provenance tags come from ``provenance(stage, section)``; ``tags`` are added as given.
    """
    from mlflow.entities import Metric

    mlflow_client = client()
    experiment_id = _experiment_id(mlflow_client, family)
    now = time.time()
    context = {**(provenance(stage, section) if stage else {}), **(tags or {})}
    batch = context.get("run.batch") or time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    common_params = _param_values(params or {})
    by_config: dict[str, list[TrialResult]] = {}
    for r in results:
        by_config.setdefault(str(r.config), []).append(r)

    parents, pending, finished = {}, [], []  # pending: (run id, metrics, params) of every run, written together
    # Where the version was checked, seed runs are created in the same SQL transaction as their rows:
    # MLflow's create_run, log_inputs and set_terminated cost ~0.1 s per run (a family has hundreds).
    bulk, created = bulk_insert_supported(mlflow_client), []
    for config, runs in by_config.items():
        start, end, stamps = _times(runs, now)
        parent_id = mlflow_client.create_run(
            experiment_id, run_name=f"{config} @ {batch}", start_time=_ms(start),
            tags={**context, "run.kind": "configuration", "config": config,
                  "diverged": str(summary[config]["diverged"] > 0).lower()},
        ).info.run_id
        config_params = {**_param_values(runs[0].params), **common_params}
        finals = [Metric(name, float(described["mean"]), _ms(end), 0)
                  for name, described in summary[config].items()
                  if isinstance(described, Mapping) and name not in runs[0].history
                  and described.get("mean") is not None]
        finals.append(Metric("diverged_seeds", float(summary[config]["diverged"]), _ms(end), 0))
        pending.append((parent_id, MetricRows.of(finals, _curves(_mean_curves(runs), stamps)),
                        {**config_params, "seeds": str(len(runs))}))
        finished.append((parent_id, _ms(end)))
        _log_parent_files(mlflow_client, parent_id, config, runs[0], summary[config], section)

        for r in runs:
            start, end, stamps = _times([r], now)
            child = NewRun(run_name=f"{config} seed={r.seed} @ {batch}", start_time=_ms(start), end_time=_ms(end),
                           tags={**context, "run.kind": "seed", "config": config, "seed_of": config,
                                 "seed": str(r.seed), "mlflow.parentRunId": parent_id,
                                 "diverged": str(r.diverged).lower()},
                           dataset=_dataset_input(r.dataset) if r.dataset else None)
            if bulk:  # created with its rows in write_runs' one transaction, already finished
                child_id = child.run_id
                created.append(child)
            else:
                child_id = mlflow_client.create_run(experiment_id, run_name=child.run_name,
                                                    start_time=child.start_time, tags=child.tags).info.run_id
            extra = {name: float(v) for name, v in (trial_metrics(r) if trial_metrics else {}).items()}
            finals = [Metric(name, v, _ms(end), 0) for name, v in extra.items() if math.isfinite(v)]
            if r.diverged and "diverged_epoch" not in extra:
                finals.append(Metric("diverged_epoch", float(r.diverged_epoch), _ms(end), 0))
            # Per-layer gradient statistics go to the parent's mean curves only: per seed they
            # are hundreds of thousands of rows (they stay per seed in the history table).
            curves = {name: values for name, values in r.history.items() if not name.startswith("grad_")}
            pending.append((child_id, MetricRows.of(finals, _curves(curves, stamps)),
                            {**config_params, "seed": str(r.seed)}))
            if not bulk:
                finished.append((child_id, _ms(end)))
        parents[config] = parent_id

    already = {c.run_id for c in created}
    datasets = {run_id: _dataset_input(r.dataset)
                for (run_id, _, _), r in zip(pending, _run_order(by_config)) if r.dataset and run_id not in already}
    write_runs(mlflow_client, pending, created, experiment_id, inputs=datasets, finished=finished)
    return parents


def _run_order(by_config: Mapping[str, list[TrialResult]]) -> Iterable[TrialResult]:
    """The result behind each pending run, in log_family's order (parent = its first seed, then each seed)."""
    for runs in by_config.values():
        yield runs[0]
        yield from runs


def _log_parent_files(mlflow_client, run_id: str, config: str, first: TrialResult, summary: Mapping,
                      section: Mapping | None) -> None:
    """The parent's artifacts: the params section as YAML, the spread over seeds, the Keras model summary."""
    import yaml

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        (out / "summary.json").write_text(json.dumps({config: summary}, indent=2))
        if section is not None:
            (out / "params.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(section, default=str)),
                                                             sort_keys=False))
        if first.model.get("summary"):
            (out / "model_summary.txt").write_text(first.model["summary"] + "\n")
        mlflow_client.log_artifacts(run_id, folder)


# MLflow versions whose SQL schema the bulk insert below was checked against (tests/test_tracking.py
# compares its rows with log_batch's on the installed version). Outside them, log_batch is used.
BULK_INSERT_VERSIONS = ((3, 0), (3, 17))


def bulk_insert_supported(mlflow_client) -> bool:
    """Whether ``_insert_new_runs`` may write this store: a local SQL store of a checked MLflow version."""
    import mlflow

    try:
        version = tuple(int(part) for part in mlflow.__version__.split(".")[:2])
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    except (ValueError, ImportError):
        return False
    store = getattr(getattr(mlflow_client, "_tracking_client", None), "store", None)
    low, high = BULK_INSERT_VERSIONS
    return low <= version <= high and isinstance(store, SqlAlchemyStore)


@dataclass
class NewRun:
    """A finished run to create in the bulk insert: what ``create_run``, ``log_inputs`` and ``set_terminated``
    would have written for it."""

    run_name: str
    start_time: int
    end_time: int
    tags: Mapping[str, str]
    dataset: Any = None  # an mlflow DatasetInput
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def write_runs(mlflow_client, runs: Sequence[tuple[str, Sequence, Mapping[str, str]]],
               created: Sequence[NewRun] = (), experiment_id: str | None = None, *,
               inputs: Mapping[str, Any] | None = None, finished: Sequence[tuple[str, int]] = ()) -> str:
    """Metrics and params of runs just created: one bulk insert where supported, else ``log_batch``.
    ``created``: runs that do not exist yet, inserted (finished) in the same transaction (bulk only).
    ``inputs``: a dataset input (mlflow DatasetInput) per existing run; ``finished``: (run id, end time in ms)
    of existing runs to finish once their rows are written (``log_inputs`` and ``set_terminated``; in the
    same transaction where bulk). Returns which path wrote them (``bulk`` or ``log_batch``)."""
    if bulk_insert_supported(mlflow_client) and _insert_new_runs(mlflow_client, runs, created, experiment_id,
                                                                 inputs=inputs, finished=finished):
        return "bulk"
    if created:
        raise RuntimeError("runs to create in bulk need the bulk insert; create them with create_run instead")
    for run_id, metrics, run_params in runs:
        _log(mlflow_client, run_id, metrics, run_params)
    for run_id, dataset in (inputs or {}).items():
        mlflow_client.log_inputs(run_id, datasets=[dataset])
    for run_id, end in finished:
        mlflow_client.set_terminated(run_id, "FINISHED", end_time=end)
    return "log_batch"


def _insert_new_runs(mlflow_client, runs: Sequence[tuple[str, Sequence, Mapping[str, str]]],
                     created: Sequence[NewRun] = (), experiment_id: str | None = None, *,
                     inputs: Mapping[str, Any] | None = None, finished: Sequence[tuple[str, int]] = ()) -> bool:
    """Write the metrics and params of runs just created, in one SQL transaction; False if the store is not SQL.
    ``created`` runs are inserted first in the same transaction, finished, with their tags and dataset inputs
    (the rows MLflow's ``create_run``, ``log_inputs`` and ``set_terminated`` write): all of them exist, or none.
    Existing runs get their ``inputs`` and are ``finished`` in the same transaction, after their rows.

    MLflow's SQL store adds metrics through its ORM one object at a time (about 0.1-0.3 ms per value,
    a minute for a family's per-epoch curves). For runs created a moment ago by this module nothing is
    stored yet, so the rows ``log_batch`` would write (each value, and each key's last value as its
    latest) can go in as one bulk insert: the same tables and rows, read back by the same MLflow API.
    Private MLflow internals: only called where ``bulk_insert_supported`` says the version was checked.
    """
    from mlflow.entities import RunStatus
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = getattr(getattr(mlflow_client, "_tracking_client", None), "store", None)
    if not isinstance(store, SqlAlchemyStore):
        return False
    tables = [MetricRows.of(metrics) for _, metrics, _ in runs]
    metrics = MetricRows.of(*tables)
    run_ids = np.repeat(np.array([run_id for run_id, _, _ in runs], dtype=object), [len(t) for t in tables])
    # As log_batch stores NaN and inf (SqlAlchemyStore.sanitize_metric_value): NaN as 0 with is_nan, inf as +-max.
    is_nan = np.isnan(metrics.values)
    values = np.clip(np.where(is_nan, 0.0, metrics.values), -1.7976931348623157e308, 1.7976931348623157e308)
    columns = ("key", "value", "timestamp", "step", "is_nan", "run_uuid")
    metric_rows = list(zip(metrics.keys.tolist(), values.tolist(), metrics.timestamps.tolist(),
                           metrics.steps.tolist(), is_nan.tolist(), run_ids.tolist()))
    latest_rows = [metric_rows[i] for i in _latest(run_ids, metrics.keys, metrics.steps, metrics.timestamps, values)]
    param_rows = [(k, v[:6000], run_id) for run_id, _, params in runs for k, v in params.items()]
    with store.engine.begin() as connection:
        if created:
            _insert_created_runs(store, connection, created, experiment_id)
        _insert(connection, SqlMetric, columns, metric_rows)
        _insert(connection, SqlLatestMetric, columns, latest_rows)
        _insert(connection, SqlParam, ("key", "value", "run_uuid"), param_rows)
        if inputs:
            _insert_inputs(connection, list(inputs.items()), experiment_id)
        if finished:  # as set_terminated (SqlAlchemyStore.update_run_info) does
            _update_runs(connection, [(RunStatus.to_string(RunStatus.FINISHED), end, run_id)
                                      for run_id, end in finished])
    return True


def _latest(run_ids: np.ndarray, keys: np.ndarray, steps: np.ndarray, timestamps: np.ndarray,
            values: np.ndarray) -> np.ndarray:
    """Per run and key, the row MLflow keeps as the latest value: the greatest (step, timestamp, value), the
    first of equal ones (log_batch replaces the latest only by a strictly greater one); in run order, then
    in each key's first appearance."""
    import pandas as pd

    if not len(keys):
        return np.empty(0, dtype=np.int64)
    run_codes = pd.factorize(run_ids)[0].astype(np.int64)
    key_codes = pd.factorize(keys)[0].astype(np.int64)
    group = run_codes * (int(key_codes.max()) + 1) + key_codes
    # lexsort's last key sorts first: by group, then step, timestamp, value; of equal ones the first row last
    order = np.lexsort((-np.arange(len(keys)), values, timestamps, steps, group))
    latest = order[np.append(group[order][1:] != group[order][:-1], True)]  # one per group, in group order
    first_row = np.unique(group, return_index=True)[1]
    return latest[np.argsort(first_row, kind="stable")]


def _insert(connection, model, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    """Insert rows (tuples in ``columns`` order) into a model's table with the driver's own ``executemany``,
    in ``connection``'s transaction: SQLAlchemy's ``insert()`` with one dict per row costs ~30 us a row.
    psycopg2 inserts pages of rows with one statement each (its ``executemany`` is a round trip per row)."""
    if not rows:
        return
    table = model.__table__
    quote = connection.dialect.identifier_preparer.quote
    into = f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) VALUES "
    if connection.dialect.driver == "psycopg2":
        from psycopg2.extras import execute_values

        with connection.connection.cursor() as cursor:
            execute_values(cursor, into + "%s", rows, page_size=1000)
        return
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(connection.dialect.paramstyle)
    if mark is None:  # a driver taking named parameters only
        connection.execute(table.insert(), [dict(zip(columns, row)) for row in rows])
        return
    connection.exec_driver_sql(into + f"({', '.join([mark] * len(columns))})", list(rows))


def _insert_created_runs(store, connection, created: Sequence[NewRun], experiment_id: str) -> None:
    """The rows of ``created`` runs, as SqlAlchemyStore.create_run / log_inputs / set_terminated write them."""
    from mlflow.entities import LifecycleStage, RunStatus, SourceType
    from mlflow.store.tracking.dbmodels.models import SqlRun, SqlTag
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME, MLFLOW_USER
    from mlflow.utils.uri import append_to_uri_path

    location = store.get_experiment(experiment_id).artifact_location
    run_rows, tag_rows = [], []
    for run in created:
        run_rows.append({"run_uuid": run.run_id, "name": run.run_name, "experiment_id": int(experiment_id),
                         "artifact_uri": append_to_uri_path(location, run.run_id, "artifacts"),
                         "source_type": SourceType.to_string(SourceType.UNKNOWN), "source_name": "",
                         "entry_point_name": "", "user_id": run.tags.get(MLFLOW_USER, "unknown"),
                         "status": RunStatus.to_string(RunStatus.FINISHED), "start_time": run.start_time,
                         "end_time": run.end_time, "deleted_time": None, "source_version": "",
                         "lifecycle_stage": LifecycleStage.ACTIVE})
        tags = {**run.tags, MLFLOW_RUN_NAME: run.tags.get(MLFLOW_RUN_NAME, run.run_name)}
        tag_rows += [(k, str(v), run.run_id) for k, v in tags.items()]
    connection.execute(SqlRun.__table__.insert(), run_rows)
    _insert(connection, SqlTag, ("key", "value", "run_uuid"), tag_rows)
    _insert_inputs(connection, [(run.run_id, run.dataset) for run in created if run.dataset is not None],
                   experiment_id)


def _insert_inputs(connection, inputs: Sequence[tuple[str, Any]], experiment_id: str) -> None:
    """Each (run id, mlflow DatasetInput) as SqlAlchemyStore.log_inputs writes it: the experiment's dataset
    (one per name and digest, reused when it exists), an input linking it to the run, the input's tags."""
    from mlflow.store.tracking.dbmodels.models import SqlDataset, SqlInput, SqlInputTag

    input_rows, input_tag_rows, dataset_rows = [], [], []
    datasets: dict[tuple[str, str], str] = {}  # (name, digest) -> dataset_uuid, as log_inputs dedupes them
    for name, digest in {(d.dataset.name, d.dataset.digest) for _, d in inputs}:
        found = connection.execute(SqlDataset.__table__.select().where(
            SqlDataset.experiment_id == int(experiment_id), SqlDataset.name == name,
            SqlDataset.digest == digest)).first()
        if found is not None:
            datasets[name, digest] = found.dataset_uuid
    for run_id, dataset in inputs:
        d = dataset.dataset
        if (d.name, d.digest) not in datasets:
            datasets[d.name, d.digest] = uuid.uuid4().hex
            dataset_rows.append({"dataset_uuid": datasets[d.name, d.digest], "experiment_id": int(experiment_id),
                                 "name": d.name, "digest": d.digest, "dataset_source_type": d.source_type,
                                 "dataset_source": d.source, "dataset_schema": d.schema,
                                 "dataset_profile": d.profile})
        input_id = uuid.uuid4().hex
        input_rows.append({"input_uuid": input_id, "source_type": "DATASET", "source_id": datasets[d.name, d.digest],
                           "destination_type": "RUN", "destination_id": run_id})
        input_tag_rows += [{"input_uuid": input_id, "name": t.key, "value": t.value} for t in dataset.tags]
    for table, rows in ((SqlDataset, dataset_rows), (SqlInput, input_rows), (SqlInputTag, input_tag_rows)):
        if rows:
            connection.execute(table.__table__.insert(), rows)


def _update_runs(connection, rows: Sequence[tuple[str, int, str]]) -> None:
    """Set (status, end_time) of runs by id, one statement for all."""
    from mlflow.store.tracking.dbmodels.models import SqlRun
    from sqlalchemy import bindparam

    table = SqlRun.__table__
    connection.execute(table.update().where(table.c.run_uuid == bindparam("id")).values(
        status=bindparam("new_status"), end_time=bindparam("new_end")),
        [{"new_status": status, "new_end": end, "id": run_id} for status, end, run_id in rows])


@writes
def log_artifact(run_id: str, path: Path, artifact_path: str) -> None:
    """Attach one file (e.g. a saved model) to a run, under ``artifact_path``."""
    client().log_artifact(run_id, str(path), artifact_path=artifact_path)


@writes
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


@writes
def log_evaluation(family: str, findings: Sequence[Mapping], files: Sequence[Path], params: Mapping[str, str],
                   tags: Mapping[str, str] | None = None, *, stage: str | None = None,
                   section: Mapping | None = None) -> str:
    """One ``evaluate`` run in the family's experiment: each finding's verdict and p-value, and the report files.

    Metrics ``finding.<id>.verdict`` (1 holds or equivalent, 0 undecided, -1 does not hold), ``finding.<id>.p_value``,
    ``.round`` and ``.seeds`` (where the sequential design stopped it);
    tags ``finding.<id>`` with the verdict in words; the figures and the findings JSON as artifacts.
    """
    from mlflow.entities import Metric

    mlflow_client = client()
    experiment_id = _experiment_id(mlflow_client, family)
    stamp = int(time.time() * 1000)
    context = {**(provenance(stage, section) if stage else {}), **(tags or {})}
    batch = context.get("run.batch") or time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    run_id = mlflow_client.create_run(experiment_id, run_name=f"evaluate @ {batch}",
                                      tags={**context, "run.kind": "evaluate"}).info.run_id
    counts = {verdict: sum(f["verdict"] == verdict for f in findings)
              for verdict in ("holds", "equivalent", "does not hold", "undecided at the cap", "not judged",
                              "book data only")}
    metrics = [Metric(f"findings_{verdict.replace(' ', '_')}", float(n), stamp, 0) for verdict, n in counts.items()]
    for f in findings:
        if f["code"] is not None:  # a finding not judged has no verdict code (its tag says "not judged")
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


# -- runs an interrupted stage left behind, and runs a rerun replaced ----------------------------
# Kept apart from the logging above: they only read and tag runs through the public client.

OWNER_HOST, OWNER_PID = "trainlab.host", "trainlab.pid"  # which process is logging a run
SUPERSEDED = "trainlab.superseded"  # "true" on a stage's runs once a rerun of that stage has logged


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def owner_tags() -> dict[str, str]:
    """Tags naming this process, so a later run can tell a run still being logged from an orphan."""
    return {OWNER_HOST: socket.gethostname(), OWNER_PID: str(os.getpid())}


def _stage_runs(mlflow_client, family: str, stage: str, status: str, condition: str = "") -> list:
    """The stage's runs of that status (and search ``condition``) in the family's experiment."""
    experiment = mlflow_client.get_experiment_by_name(family)
    if experiment is None:
        return []
    runs, token = [], None
    where = f"attributes.status = '{status}' and tags.`dvc.stage` = '{stage}'"
    if condition:
        where += f" and {condition}"
    while True:
        page = mlflow_client.search_runs([experiment.experiment_id], where, max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


@writes
def fail_unfinished(family: str, stage: str, mine: bool = False) -> int:
    """Mark FAILED the stage's runs left RUNNING by a process that no longer logs them; return how many.

    An orphan is a RUNNING run whose logging process (``owner_tags``) is gone on this host, or that names
    none. With ``mine`` it is this process's own runs (its logging failed half-way): all or nothing.
    Never raises: a store that cannot be reached now is cleaned up by the next run.
    """
    host, pid = socket.gethostname(), str(os.getpid())
    try:
        mlflow_client = client()
        failed = 0
        for run in _stage_runs(mlflow_client, family, stage, "RUNNING"):
            tags = run.data.tags
            if mine:
                orphan = tags.get(OWNER_HOST) == host and tags.get(OWNER_PID) == pid
            else:
                owner = tags.get(OWNER_PID)
                orphan = owner is None or (tags.get(OWNER_HOST) == host and owner != pid
                                           and not (owner.isdigit() and process_alive(int(owner))))
            if orphan:
                mlflow_client.set_terminated(run.info.run_id, "FAILED")
                failed += 1
        return failed
    except Exception as err:  # cleanup is best effort; the stage's own error (if any) is what matters
        print(f"warning: could not mark unfinished MLflow runs of {stage} as FAILED: {first_line(err)}",
              file=sys.stderr)
        return 0


@writes
def mark_superseded(family: str, stage: str, current_parents: set[str]) -> int:
    """Tag ``trainlab.superseded=true`` on the stage's finished runs other than the ones just logged."""
    mlflow_client = client()
    stale = []
    # Only the runs not tagged yet are read: every rerun adds a family's runs, and reading them all back
    # (params, metrics, tags) grew by a second or so per rerun.
    for condition in (f"tags.`{SUPERSEDED}` IS NULL", f"tags.`{SUPERSEDED}` != 'true'"):
        for run in _stage_runs(mlflow_client, family, stage, "FINISHED", condition):
            parent = run.data.tags.get("mlflow.parentRunId")
            if run.info.run_id not in current_parents and parent not in current_parents:
                stale.append(run.info.run_id)
    tag_runs(mlflow_client, stale, SUPERSEDED, "true")
    return len(stale)


def tag_runs(mlflow_client, run_ids: Sequence[str], key: str, value: str) -> None:
    """Set one tag on many runs: in one SQL transaction where the bulk insert is supported (``set_tag`` is a
    transaction per run, ~10 ms each, and a rerun supersedes hundreds), else with ``set_tag``."""
    if not run_ids:
        return
    if not bulk_insert_supported(mlflow_client):
        for run_id in run_ids:
            mlflow_client.set_tag(run_id, key, value)
        return
    from mlflow.store.tracking.dbmodels.models import SqlTag

    store = mlflow_client._tracking_client.store
    with store.engine.begin() as connection:  # set_tag replaces the run's tag of that key: delete, then insert
        for chunk in _chunks(list(run_ids), 500):
            connection.execute(SqlTag.__table__.delete().where(SqlTag.key == key, SqlTag.run_uuid.in_(chunk)))
        _insert(connection, SqlTag, ("key", "value", "run_uuid"), [(key, value, run_id) for run_id in run_ids])


def relocate(root: Path | None = None) -> int:
    """Point the local store's experiments and runs at ``<root>/mlartifacts`` (after the repository, with
    its ``mlflow.db`` and ``mlartifacts/``, was moved or copied); return how many rows changed.

    MLflow stores each experiment's and run's artifact location as an absolute URI, so a moved store
    would look for its figures in the old place. Only locations of the form ``.../mlartifacts/<rest>``
    (the ones this module creates) are rewritten; the SQL is the store's own schema (sqlite3, no MLflow).
    """
    import sqlite3

    root = Path(root or store_root()).resolve()
    database = root / "mlflow.db"
    if not database.is_file():
        raise TrackingError(f"{database} does not exist: nothing to relocate")
    target = (root / "mlartifacts").as_uri()
    changed = 0
    with sqlite3.connect(database) as connection:
        for table, column, key in (("experiments", "artifact_location", "experiment_id"),
                                   ("runs", "artifact_uri", "run_uuid")):
            for row_id, location in connection.execute(f"SELECT {key}, {column} FROM {table}").fetchall():
                if not location or "/mlartifacts/" not in location:
                    continue
                moved = target + "/" + location.split("/mlartifacts/", 1)[1]
                if moved != location:
                    connection.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (moved, row_id))
                    changed += 1
    return changed


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="python -m stages.tracking relocate: after moving or copying "
                                     "the repository with its mlflow.db and mlartifacts/, point the runs' "
                                     "artifacts at the new place.")
    parser.add_argument("command", choices=["relocate"])
    parser.add_argument("root", nargs="?", type=Path, default=None,
                        help="the folder holding mlflow.db and mlartifacts/ (default: the repository)")
    arguments = parser.parse_args()
    try:
        print(f"relocated {relocate(arguments.root)} artifact locations to "
              f"{Path(arguments.root or store_root()).resolve() / 'mlartifacts'}")
    except TrackingError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
