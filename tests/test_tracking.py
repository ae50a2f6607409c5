"""The tracking module writes what MLflow's own API would write, read back through MLflow's API."""

from __future__ import annotations

import json
import math
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest

from stages.engine.trial import TrialResult


@pytest.fixture(scope="module")
def postgres():
    """A throw-away PostgreSQL cluster on 127.0.0.1 (as `make mlflow-server` makes it), stopped by its pid after."""
    from stages.tools import mlflow_server

    try:
        mlflow_server.postgres_bin()
    except SystemExit:
        pytest.skip("PostgreSQL is not installed (.ci/run installs it)")
    home, info = Path(tempfile.mkdtemp(prefix="trainlab-pg-")), {}
    info["dir"] = str(home)
    state = Path(tempfile.mkdtemp(prefix="trainlab-pg-state-")) / "state.json"
    try:
        yield f"postgresql+psycopg2://mlflow@127.0.0.1:{mlflow_server.start_postgres(home, info)}"
    finally:
        state.write_text(json.dumps(info))
        mlflow_server.stop(state)
        state.parent.rmdir()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path, monkeypatch):
    """A new store: the local SQLite file, or a database of its own on PostgreSQL (the bulk insert's two
    drivers: sqlite3's executemany, psycopg2's execute_values)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    if request.param == "postgresql":
        import psycopg2

        server, database = request.getfixturevalue("postgres"), f"t{uuid.uuid4().hex[:12]}"
        connection = psycopg2.connect(server.replace("+psycopg2", "") + "/mlflow")
        connection.autocommit = True
        connection.cursor().execute(f"CREATE DATABASE {database}")
        connection.close()
        uri = f"{server}/{database}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    from stages import tracking

    return tracking.client()


def _result(config: str, seed: int, diverged_at: int | None = None) -> TrialResult:
    epochs = 6
    loss = np.linspace(1.0, 0.5, epochs) + seed / 100
    if diverged_at is not None:
        loss[diverged_at - 1:] = np.nan
    return TrialResult(config=config, seed=seed, diverged_epoch=diverged_at, weights=[],
                       history={"loss": loss, "accuracy": np.linspace(0.3, 0.9, epochs)},
                       tags={"nodes": 3}, params={"nodes": 3})


def _summary(results: list[TrialResult]) -> dict:
    from stages.results import summarize

    return summarize(results)


def test_log_family_bulk_rows_read_back_like_log_batch_rows(store):
    """Every per-epoch value, each key's latest value, the params and a NaN summary reach MLflow
    exactly as the same values logged with MlflowClient.log_batch."""
    from mlflow.entities import Metric

    from stages import tracking

    results = [_result("nodes=3", 1), _result("nodes=3", 2, diverged_at=4)]
    summary = _summary(results)
    parents = tracking.log_family("unit", results, summary, params={"epochs": "6"}, tags={"dvc.stage": "t"})
    assert tracking.bulk_insert_supported(store)  # the installed MLflow is one the bulk insert was checked on
    children = store.search_runs([tracking._experiment_id(store, "unit")],
                                 filter_string=f"tags.mlflow.parentRunId = '{parents['nodes=3']}'")
    assert sorted(r.data.params["seed"] for r in children) == ["1", "2"]

    diverged = next(r for r in children if r.data.params["seed"] == "2")
    assert diverged.data.tags["diverged"] == "true"
    assert diverged.data.metrics["diverged_epoch"] == 4
    history = store.get_metric_history(diverged.info.run_id, "loss")
    assert [m.step for m in history] == [1, 2, 3]  # non-finite epochs are left out
    np.testing.assert_allclose([m.value for m in history], results[1].history["loss"][:3])

    # The same rows through MLflow's own log_batch, into a fresh run: identical reads.
    reference = store.create_run(tracking._experiment_id(store, "unit")).info.run_id
    stamp = history[0].timestamp
    metrics = ([Metric("loss", float(v), stamp, e) for e, v in enumerate(results[1].history["loss"][:3], 1)]
               + [Metric("nan_stat", math.nan, stamp, 0), Metric("inf_stat", -math.inf, stamp, 0)])
    store.log_batch(reference, metrics=metrics)
    bulk = store.create_run(tracking._experiment_id(store, "unit")).info.run_id
    assert tracking._insert_new_runs(store, [(bulk, metrics, {"k": "v"})])
    for key in ("loss", "nan_stat", "inf_stat"):
        got = [(m.step, m.value) for m in store.get_metric_history(bulk, key)]
        want = [(m.step, m.value) for m in store.get_metric_history(reference, key)]
        assert str(got) == str(want)  # str: NaN compares equal to NaN
    assert store.get_run(bulk).data.metrics["loss"] == store.get_run(reference).data.metrics["loss"]
    assert math.isnan(store.get_run(bulk).data.metrics["nan_stat"])
    assert store.get_run(bulk).data.metrics["inf_stat"] == store.get_run(reference).data.metrics["inf_stat"]
    assert store.get_run(bulk).data.params == {"k": "v"}

    parent = store.get_run(parents["nodes=3"])
    assert parent.data.params["nodes"] == "3" and parent.data.params["seeds"] == "2"
    assert parent.data.tags["diverged"] == "true"
    assert parent.info.status == "FINISHED" and all(r.info.status == "FINISHED" for r in children)


def test_outside_the_checked_mlflow_versions_the_public_api_writes_the_same_runs(store, monkeypatch):
    """The private bulk insert is a speed-up only: with the version check failing, MLflow's public API
    (create_run, log_batch, log_inputs, set_terminated) writes the same runs: names, tags, status, times,
    dataset inputs, artifact locations, params, metric histories and latest values."""
    from stages import tracking

    started = 1_700_000_000.0
    results = [_result("nodes=3", 1), _result("nodes=3", 2, diverged_at=4), _result("nodes=5", 1)]
    for r in results:  # the trials' own times, and a data set: the seed runs' times and inputs
        r.started, r.epoch_ends = started + r.seed, [started + r.seed + e for e in range(1, 7)]
        r.dataset = {"name": "blobs3", "source": "data/prepared/blobs3.npz", "digest": "abc123",
                     "n_train": 500, "n_val": 500, "features": 2}
    summary = _summary(results)
    tags = {"run.batch": "b1", "mlflow.user": "tester"}
    bulk = tracking.log_family("bulk", results, summary, params={"epochs": "6"}, tags=tags)
    monkeypatch.setattr(tracking, "BULK_INSERT_VERSIONS", ((2, 0), (2, 99)))
    assert not tracking.bulk_insert_supported(store)
    public = tracking.log_family("public", results, summary, params={"epochs": "6"}, tags=tags)

    def read(experiment: str, parents: dict) -> list:
        experiment_id = tracking._experiment_id(store, experiment)
        runs = store.search_runs([experiment_id], max_results=100)
        names = {r.info.run_id: r.info.run_name for r in runs}
        out = []
        for run in sorted(runs, key=lambda r: (r.data.tags["config"], r.data.tags.get("seed", ""))):
            histories = {key: [(m.step, m.value) for m in store.get_metric_history(run.info.run_id, key)]
                         for key in run.data.metrics}
            tags = {k: names.get(v, v) if k == "mlflow.parentRunId" else v for k, v in run.data.tags.items()}
            inputs = [(d.dataset.name, d.dataset.digest, d.dataset.source, d.dataset.profile,
                       [(t.key, t.value) for t in d.tags]) for d in run.inputs.dataset_inputs]
            info = run.info
            out.append((info.run_name, info.status, info.start_time, info.end_time, info.user_id,
                        info.lifecycle_stage, info.artifact_uri.endswith(f"/{info.run_id}/artifacts"),
                        tags, inputs, run.data.params, str(run.data.metrics), str(histories)))
        return out

    assert read("bulk", bulk) == read("public", public)


def test_tagging_many_runs_at_once_reads_back_like_set_tag_per_run(store, monkeypatch):
    """tag_runs' one transaction (a rerun supersedes hundreds of runs) replaces a run's tag as set_tag does."""
    from stages import tracking

    experiment = tracking._experiment_id(store, "unit")
    runs = [store.create_run(experiment).info.run_id for _ in range(4)]
    for run_id in runs[::2]:
        store.set_tag(run_id, "k", "old")
    tracking.tag_runs(store, runs[:2], "k", "new")  # the bulk path
    monkeypatch.setattr(tracking, "BULK_INSERT_VERSIONS", ((2, 0), (2, 99)))
    tracking.tag_runs(store, runs[2:], "k", "new")  # MLflow's set_tag
    tags = [{k: v for k, v in store.get_run(run_id).data.tags.items() if k != "mlflow.runName"} for run_id in runs]
    assert tags == [{"k": "new"}] * 4


def test_each_rerun_supersedes_the_runs_before_it_once(store):
    """mark_superseded tags the stage's earlier parents and their seeds, never the ones just logged,
    and does not count runs tagged by an earlier rerun again."""
    from stages import tracking

    results = [_result("nodes=3", 1), _result("nodes=3", 2)]
    summary, tagged, logged = _summary(results), [], []
    for _ in range(3):
        logged.append(tracking.log_family("unit", results, summary, stage="train@unit")["nodes=3"])
        tagged.append(tracking.mark_superseded("unit", "train@unit", {logged[-1]}))
    assert tagged == [0, 3, 3]  # a parent and its two seeds each time
    runs = store.search_runs([tracking._experiment_id(store, "unit")], max_results=100)
    for run in runs:
        parent = run.data.tags.get("mlflow.parentRunId", run.info.run_id)
        assert run.data.tags.get(tracking.SUPERSEDED) == (None if parent == logged[-1] else "true")


def _runs(store, parents: dict) -> tuple[list, list]:
    from stages import tracking

    runs = store.search_runs([tracking._experiment_id(store, "unit")], max_results=100)
    return ([r for r in runs if r.data.tags["run.kind"] == "configuration"],
            [r for r in runs if r.data.tags["run.kind"] == "seed"])


def test_every_run_logs_its_trials_effective_values_and_only_those(tiny_store):
    """learning_rate=1 shows learning_rate 1 (not the section's 0.01); SGD runs carry no Adam betas."""
    from mlflow.tracking import MlflowClient

    store = MlflowClient(tiny_store["uri"])
    parents, children = _runs(store, tiny_store["parents"])
    assert len(parents) == 3 and len(children) == 6
    by_config = {t.config: t for t in tiny_store["trials"]}
    for run in parents + children:
        trial = by_config[run.data.tags["config"]]
        params = run.data.params
        assert params["learning_rate"] == str(trial.build_optimizer.args[0]["learning_rate"])
        assert params["optimizer"] == trial.build_optimizer.args[0]["name"]
        assert params["batch_size"] == "50" and params["epochs"] == "3" and params["data"] == "blobs3"
        assert params["hidden_layers"] == "1" and params["hidden_units"] == "[8]"
        assert params["loss"] == "categorical_crossentropy" and params["runtime.xla"] == "False"
        if params["optimizer"] == "sgd":
            assert params["momentum"] == "0.0" and not {"beta_1", "beta_2", "rho", "epsilon"} & set(params)
        else:
            assert params["beta_1"] == "0.9" and "momentum" not in params and "nesterov" not in params
        assert not [k for k in params if k.startswith(("optimizer.", "config.", "optimizers."))]
        assert params.get("seed") == run.data.tags.get("seed")
    lr1 = next(r for r in parents if r.data.tags["config"] == "learning_rate=1")
    assert lr1.data.params["learning_rate"] == "1.0"


def test_parents_and_seeds_share_metric_names_and_parents_hold_the_mean(tiny_store):
    from mlflow.tracking import MlflowClient

    store = MlflowClient(tiny_store["uri"])
    parents, children = _runs(store, tiny_store["parents"])
    for parent in parents:
        config = parent.data.tags["config"]
        mine = [c for c in children if c.data.tags["mlflow.parentRunId"] == parent.info.run_id]
        assert len(mine) == 2 and all(c.data.tags["seed_of"] == config for c in mine)
        assert "seed_of" not in parent.data.tags  # grouping seeds by seed_of leaves the parent out
        shared = {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "best_val_accuracy"}
        assert shared <= set(parent.data.metrics) and all(shared <= set(c.data.metrics) for c in mine)
        assert not [k for k in parent.data.metrics if k.endswith(("_mean", "_std", "_n", "_ci95_low", "_ci95_high"))]
        summary = tiny_store["summary"][config]
        for name in ("val_accuracy", "loss"):
            assert parent.data.metrics[name] == pytest.approx(summary[name]["mean"], rel=1e-5)
            assert parent.data.metrics[name] == pytest.approx(np.mean([c.data.metrics[name] for c in mine]), rel=1e-6)
        curve = store.get_metric_history(parent.info.run_id, "val_accuracy")
        assert [m.step for m in curve] == [1, 2, 3]
        artifacts = {a.path for a in store.list_artifacts(parent.info.run_id)}
        assert {"params.yaml", "summary.json", "model_summary.txt"} <= artifacts
        spread = store.download_artifacts(parent.info.run_id, "summary.json", str(tiny_store["folder"]))
        assert '"ci95_low"' in open(spread).read()
        text = open(store.download_artifacts(parent.info.run_id, "model_summary.txt", str(tiny_store["folder"]))).read()
        assert "Dense" in text and "Total params: 51" in text  # 2*8+8 + 8*3+3


def test_run_times_are_the_trainings_own_and_epochs_carry_their_own_timestamps(tiny_store):
    from mlflow.tracking import MlflowClient

    store = MlflowClient(tiny_store["uri"])
    parents, children = _runs(store, tiny_store["parents"])
    trained_ms = tiny_store["trained_seconds"] * 1000
    by_seed = {(r.config, r.seed): r for r in tiny_store["results"]}
    for run in parents + children:
        duration = run.info.end_time - run.info.start_time
        assert 0.3 * trained_ms < duration <= trained_ms + 5, (duration, trained_ms)
        stamps = [m.timestamp for m in store.get_metric_history(run.info.run_id, "loss")]
        assert stamps == sorted(stamps) and len(set(stamps)) == 3  # one per epoch, as the epochs ended
        assert run.info.start_time < stamps[0] and stamps[-1] <= run.info.end_time
    for child in children:
        result = by_seed[(child.data.tags["config"], int(child.data.tags["seed"]))]
        assert child.info.start_time == round(result.started * 1000)
        assert child.info.end_time == round(result.epoch_ends[-1] * 1000)


def test_runs_carry_provenance_dataset_and_the_model_training_view(tiny_store):
    from mlflow.tracking import MlflowClient

    from stages import tracking

    store = MlflowClient(tiny_store["uri"])
    experiment = store.get_experiment_by_name("unit")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    parents, children = _runs(store, tiny_store["parents"])
    names = [r.info.run_name for r in parents + children]
    assert len(set(names)) == len(names) and all(n.endswith(" @ tiny-exp") for n in names)
    for run in parents + children:
        tags = run.data.tags
        assert tags["dvc.experiment"] == "tiny-exp" and tags["dvc.stage"] == "train@unit"
        assert tags["git.commit"] == tracking.git_commit() and tags["git.dirty"] in ("true", "false")
        assert len(tags["params.hash"]) == 12 and tags["mlflow.user"] and tags["mlflow.source.name"]
        assert run.info.user_id == tags["mlflow.user"]
        [dataset] = run.inputs.dataset_inputs
        assert dataset.dataset.name == "blobs3" and len(dataset.dataset.digest) == 8
        assert "data/prepared/blobs3.npz" in dataset.dataset.source
        assert [(t.key, t.value) for t in dataset.tags] == [("mlflow.data.context", "training")]


def test_a_moved_store_finds_its_artifacts_after_relocate(tiny_store, tmp_path):
    import shutil

    from mlflow.tracking import MlflowClient

    from stages import tracking

    moved = tmp_path / "elsewhere"
    shutil.copytree(tiny_store["folder"], moved)
    store = MlflowClient(f"sqlite:///{moved / 'mlflow.db'}")
    run_id = tiny_store["parents"]["learning_rate=1"]
    assert str(tiny_store["folder"]) in store.get_run(run_id).info.artifact_uri
    assert tracking.relocate(moved) == 1 + 9  # the experiment and its nine runs
    assert store.get_run(run_id).info.artifact_uri.startswith((moved / "mlartifacts").as_uri())
    shutil.rmtree(tiny_store["folder"] / "mlartifacts" / "unit" / run_id)  # the old copy is gone
    assert "params.yaml" in {a.path for a in store.list_artifacts(run_id)}
