"""The only module that talks to MLflow, through its public client API (``mlflow.MlflowClient``) only.

Store: ``MLFLOW_TRACKING_URI`` when set (a team server), else the SQLite file
``mlflow.db`` at the project root (``DVC_ROOT`` when DVC runs the stage, so runs
made by ``dvc exp run --temp``/``--queue`` land in the repository, not in a
temporary copy).

Layout: one experiment per family, one parent run per configuration, one nested child run per seed
(docs/mlflow-logging.md). A parent holds what a reader of the UI compares: its params, the final
values over seeds, and the mean curve over seeds with a ±1 std band around it (``<metric>_low``,
``<metric>_high``) at up to ``PARENT_CURVE_POINTS`` epochs. A child holds its seed's params, final
values and curves at up to ``SEED_CURVE_POINTS`` epochs each. Curves are thinned evenly, the last epoch
kept: a chart a few hundred pixels wide shows no more, logging costs about 0.1 ms per value, and every
epoch of every seed stays in ``data/runs/<family>/history.parquet``. Parent and children use the same
metric names.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import getpass
import json
import os
import shlex
import socket
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.engine.trial import TrialResult
from trainlab.io import InputError
from trainlab.params import project_root
from trainlab.revision import git, git_commit, git_dirty, params_hash

STD_SUFFIX = "_std"  # a parent's spread over seeds of a final value, beside its mean (best_val_accuracy_std)
SEED_CURVE_POINTS = 20  # epochs logged per curve of a seed (child run) at most
PARENT_CURVE_POINTS = 100  # epochs logged per curve of a configuration (parent run) at most: its mean and band
BAND_SUFFIXES = ("_low", "_high")  # a parent's band curves: <metric>_low = mean - std, <metric>_high = mean + std
MEAN_ONLY_PREFIXES = ("grad_",)  # per-layer gradient statistics: the parent's mean curve only (no band, no
# seed curves: per seed they are hundreds of thousands of values; they stay per seed in history.parquet)

# MLflow's limits of one log_batch call: 1000 entries in all, at most 100 params and 100 tags.
BATCH, BATCH_PARAMS, BATCH_TAGS = 1000, 100, 100
PARAM_CHARS = 6000  # MLflow's limit of a param's value
ASYNC_LOGGING = False  # log_batch(synchronous=False): measured no faster on SQLite (docs/mlflow-logging.md)


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user's counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TrackingError(InputError):
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
                                    " (docs/team-server.md)") from None
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
    from mlflow import MlflowClient

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
    dirty = git_dirty()
    exp = os.environ.get("DVC_EXP_NAME", "")
    tags = {
        "dvc.stage": stage,
        "git.commit": commit,
        "git.dirty": "unknown" if dirty is None else str(dirty).lower(),
        "mlflow.source.git.commit": commit,
        "mlflow.source.name": _source_command(stage),
        "mlflow.source.type": "LOCAL",
        "mlflow.user": os.environ.get("USER") or getpass.getuser(),
        "run.batch": exp or time.strftime("%Y%m%d-%H%M%S", time.gmtime()),
    }
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
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
            flat[name] = param_text(value)
    return flat


def _log(mlflow_client, run_id: str, metrics: Sequence = (), params: Mapping[str, str] | None = None,
         tags: Mapping[str, str] | None = None, *, synchronous: bool = True) -> list:
    """Params, tags and metrics in as few ``log_batch`` calls as MLflow's limits allow. With ``synchronous``
    False, MLflow queues the calls and writes them in a thread: their futures are returned, to ``wait()`` on."""
    from mlflow.entities import Param, RunTag

    param_list = [Param(k, v[:PARAM_CHARS]) for k, v in (params or {}).items()]
    tag_list = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    metric_list = list(metrics)
    futures = []
    while param_list or tag_list or metric_list:
        p, t = param_list[:BATCH_PARAMS], tag_list[:BATCH_TAGS]
        m = metric_list[:BATCH - len(p) - len(t)]
        if synchronous:
            mlflow_client.log_batch(run_id, metrics=m, params=p, tags=t)
        else:
            futures.append(mlflow_client.log_batch(run_id, metrics=m, params=p, tags=t, synchronous=False))
        param_list, tag_list, metric_list = param_list[len(p):], tag_list[len(t):], metric_list[len(m):]
    return futures


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


def param_text(value: Any) -> str:
    """A param as MLflow shows it; a float that is exactly a float32 (a Keras setting read back from the
    model) as the shortest decimal that gives that float32 back: ``0.01``, not ``0.009999999776482582``."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=param_text)
    if isinstance(value, (float, np.floating)) and not isinstance(value, bool):
        number = float(value)
        if np.isfinite(number) and float(np.float32(number)) == number:
            return str(np.float32(number))
        return repr(number)
    return str(value)


def _param_values(params: Mapping[str, Any]) -> dict[str, str]:
    return {k: param_text(v) for k, v in params.items()}


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


def thin(epochs: np.ndarray, points: int | None = None) -> np.ndarray:
    """At most ``points`` (default ``SEED_CURVE_POINTS``) of ``epochs``, evenly spaced, the last one kept."""
    points = SEED_CURVE_POINTS if points is None else points
    if len(epochs) <= points:
        return epochs
    index = np.round(np.linspace(0, len(epochs) - 1, points)).astype(np.int64)
    index[-1] = len(epochs) - 1
    return epochs[np.unique(index)]


def _curve(name: str, values, stamps: np.ndarray, points: int | None = None) -> list:
    """One curve as MLflow metrics, step = epoch and timestamp = when that epoch ended. Non-finite values
    (a diverged seed's epochs) are left out; ``points``: thinned to that many of the finite epochs."""
    from mlflow.entities import Metric

    values = np.asarray(values, dtype=float)
    epochs = np.flatnonzero(np.isfinite(values)) + 1
    if points is not None:
        epochs = thin(epochs, points)
    times = stamps[np.minimum(epochs, len(stamps)) - 1]
    return [Metric(name, value, stamp, epoch)
            for value, stamp, epoch in zip(values[epochs - 1].tolist(), times.tolist(), epochs.tolist())]


def _mean_and_band(runs: Sequence[TrialResult]) -> dict[str, np.ndarray]:
    """Per epoch, over the seeds that did not diverge (all seeds when every one did), each curve's mean (so
    its last value is the summary's mean) and, but for ``MEAN_ONLY_PREFIXES`` and curves that are the same
    for every seed, a band of ±1 sample std (0 where one seed is left): ``<metric>``, ``<metric>_low``,
    ``<metric>_high``."""
    healthy = [r for r in runs if not r.diverged] or list(runs)
    curves = {}
    for name in runs[0].history:
        stacked = [np.asarray(r.history[name], dtype=float) for r in healthy if name in r.history]
        if not stacked:
            continue
        longest = max(len(c) for c in stacked)
        table = np.full((len(stacked), longest), np.nan)
        for row, curve in zip(table, stacked):
            row[:len(curve)] = curve
        table[~np.isfinite(table)] = np.nan
        with warnings.catch_warnings():  # an epoch where every seed diverged has no mean
            warnings.simplefilter("ignore", RuntimeWarning)
            curves[name] = mean = np.nanmean(table, axis=0)
            if not name.startswith(MEAN_ONLY_PREFIXES):
                finite = np.isfinite(table).sum(axis=0)
                std = np.where(finite > 1, np.nanstd(table, axis=0, ddof=1), 0.0)
                if np.nanmax(std, initial=0.0) > 0:  # a curve every seed shares (a fixed rate) has no band
                    curves[name + BAND_SUFFIXES[0]], curves[name + BAND_SUFFIXES[1]] = mean - std, mean + std
    return curves


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
    (``val_accuracy`` per epoch, step = epoch, at most ``SEED_CURVE_POINTS`` epochs) and ``trial_metrics``;
    the parent logs the same names as the mean over its seeds that did not diverge (at most
    ``PARENT_CURVE_POINTS`` epochs), with the band ``<metric>_low``/``<metric>_high`` (mean ∓ 1 std),
    and its spread of final values (std, n, 95 % interval) as the ``summary.json`` artifact. Tag
    ``run.kind`` is ``configuration`` or ``seed``;
    child runs also carry ``seed_of`` (their configuration), the key to group seeds by in the UI. Times
    are the training's own. Provenance tags come from ``provenance(stage, section)``; ``tags`` are added
    as given. Runs stay RUNNING until everything is logged, then all are finished: a failure half-way
    leaves them for ``fail_unfinished``.
    """
    from mlflow.entities import Metric

    mlflow_client = client()
    experiment_id = _experiment_id(mlflow_client, family)
    now = time.time()
    context = {**(provenance(stage, section) if stage else {}), **(tags or {})}
    context.setdefault("run.batch", time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)))  # names the rerun: run
    # names stay short (the configuration), so the UI's name column and chart legends show them whole
    common_params = _param_values(params or {})
    by_config: dict[str, list[TrialResult]] = {}
    for r in results:
        by_config.setdefault(str(r.config), []).append(r)

    parents, finished, futures = {}, [], []  # finished: (run id, end time in ms), set once all is logged
    synchronous = not ASYNC_LOGGING

    def log_run(run_name: str, start: float, end: float, run_tags: Mapping[str, str], metrics: list,
                run_params: Mapping[str, str], dataset: Mapping[str, Any] | None) -> str:
        run_id = mlflow_client.create_run(experiment_id, run_name=run_name, start_time=_ms(start),
                                          tags=run_tags).info.run_id
        futures.extend(_log(mlflow_client, run_id, metrics, run_params, synchronous=synchronous))
        if dataset:
            mlflow_client.log_inputs(run_id, datasets=[_dataset_input(dataset)])
        finished.append((run_id, _ms(end)))
        return run_id

    for config, runs in by_config.items():
        start, end, stamps = _times(runs, now)
        config_params = {**_param_values(runs[0].params), **common_params}
        finals = [Metric(name + suffix, float(described[key]), _ms(end), 0)
                  for name, described in summary[config].items()
                  if isinstance(described, Mapping) and name not in runs[0].history
                  for key, suffix in (("mean", ""), ("std", STD_SUFFIX)) if described.get(key) is not None]
        if summary[config]["diverged"]:  # logged where a seed diverged: a column of zeros only hides the others
            finals.append(Metric("diverged_seeds", float(summary[config]["diverged"]), _ms(end), 0))
        stamps = np.asarray(stamps, dtype=np.int64)
        curves = [m for name, values in _mean_and_band(runs).items()
                  for m in _curve(name, values, stamps, PARENT_CURVE_POINTS)]
        parent_id = log_run(config, start, end,
                            {**context, "run.kind": "configuration", "config": config,
                             "diverged": str(summary[config]["diverged"] > 0).lower()},
                            finals + curves, {**config_params, "seeds": str(len(runs))}, runs[0].dataset)
        own = None if section is None else {**section, "seeds": len(runs)}  # this configuration's own seeds
        _log_parent_files(mlflow_client, parent_id, config, runs[0], summary[config], own)

        for r in runs:
            start, end, stamps = _times([r], now)
            stamps = np.asarray(stamps, dtype=np.int64)
            extra = {name: float(v) for name, v in (trial_metrics(r) if trial_metrics else {}).items()}
            finals = [Metric(name, v, _ms(end), 0) for name, v in extra.items() if np.isfinite(v)]
            if r.diverged and "diverged_epoch" not in extra:
                finals.append(Metric("diverged_epoch", float(r.diverged_epoch), _ms(end), 0))
            curves = [m for name, values in r.history.items() if not name.startswith(MEAN_ONLY_PREFIXES)
                      for m in _curve(name, values, stamps, SEED_CURVE_POINTS)]
            log_run(f"{config} seed={r.seed}", start, end,
                    {**context, "run.kind": "seed", "config": config, "seed_of": config, "seed": str(r.seed),
                     "mlflow.parentRunId": parent_id, "diverged": str(r.diverged).lower()},
                    finals + curves, {**config_params, "seed": str(r.seed)}, None)  # the parent names the data
        parents[config] = parent_id

    for future in futures:
        future.wait()  # raises what the queued write raised
    for run_id, end in finished:
        mlflow_client.set_terminated(run_id, "FINISHED", end_time=end)
    return parents


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


VERDICT_COUNTS = ("holds", "equivalent", "does not hold", "seed-dependent", "undecided at the cap", "not judged",
                  "book data only")


def findings_table(findings: Sequence[Mapping]) -> dict[str, list]:
    """One row per finding: its verdict in words, estimate and share of single runs that show it (each with
    its 95 % interval), p-value, and where the sequential design stopped it (round, seeds)."""
    def field(f: Mapping, *path: str):
        value: Any = f
        for key in path:
            value = (value or {}).get(key)
        return value

    columns = {"finding": ("id",), "verdict": ("verdict",), "estimate": ("estimate", "value"),
               "estimate_low": ("estimate", "low"), "estimate_high": ("estimate", "high"),
               "one_run": ("one_run", "share"), "one_run_low": ("one_run", "low"),
               "one_run_high": ("one_run", "high"), "p_value": ("p_value",),
               "round": ("sequential", "round"), "seeds": ("sequential", "seeds")}
    return {name: [field(f, *path) for f in findings] for name, path in columns.items()}


@writes
def log_evaluation(family: str, findings: Sequence[Mapping], files: Sequence[Path], params: Mapping[str, str],
                   tags: Mapping[str, str] | None = None, *, stage: str | None = None,
                   section: Mapping | None = None) -> str:
    """One ``evaluate`` run in the family's experiment: how many findings came out each way, each one's verdict,
    and the report files.

    Metrics: one count per outcome (``findings_holds``, ``findings_does_not_hold``, ...: the few columns
    the runs table needs). Tags ``finding.<id>`` with the verdict in words. Artifacts: ``findings.json``,
    a table (one row per finding: verdict, estimate and one-run share with their 95 % intervals, p-value,
    round and seeds of the sequential design), the figures and the findings report.
    """
    from mlflow.entities import Metric

    mlflow_client = client()
    experiment_id = _experiment_id(mlflow_client, family)
    stamp = int(time.time() * 1000)
    context = {**(provenance(stage, section) if stage else {}), **(tags or {})}
    context.setdefault("run.batch", time.strftime("%Y%m%d-%H%M%S", time.gmtime()))
    run_id = mlflow_client.create_run(experiment_id, run_name="evaluate",
                                      tags={**context, "run.kind": "evaluate"}).info.run_id
    counts = {verdict: sum(f["verdict"] == verdict for f in findings) for verdict in VERDICT_COUNTS}
    metrics = [Metric(f"findings_{verdict.replace(' ', '_').replace('-', '_')}", float(n), stamp, 0)
               for verdict, n in counts.items()]
    _log(mlflow_client, run_id, metrics, params, {f"finding.{f['id']}": f["verdict"] for f in findings})
    if findings:
        import pandas as pd

        mlflow_client.log_table(run_id, pd.DataFrame(findings_table(findings)), artifact_file="findings.json")
    for path in files:
        artifact_dir = "figures" if path.suffix == ".png" else None
        mlflow_client.log_artifact(run_id, str(path), artifact_path=artifact_dir)
    mlflow_client.set_terminated(run_id, "FINISHED")
    return run_id


# -- runs an interrupted stage left behind, and runs a rerun replaced ----------------------------
# Kept apart from the logging above: they only read and tag runs.

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
    for run_id in stale:
        mlflow_client.set_tag(run_id, SUPERSEDED, "true")
    return len(stale)
