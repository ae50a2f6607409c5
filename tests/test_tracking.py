"""The tracking module writes what MLflow's own API would write, read back through MLflow's API."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stages.engine.trial import TrialResult


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
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
                       tags={"nodes": 3})


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
    store.log_batch(reference, metrics=[Metric("loss", float(v), stamp, e)
                                        for e, v in enumerate(results[1].history["loss"][:3], 1)]
                    + [Metric("nan_stat", math.nan, stamp, 0)])
    bulk = store.create_run(tracking._experiment_id(store, "unit")).info.run_id
    assert tracking._insert_new_runs(store, [(bulk, [Metric("loss", float(v), stamp, e) for e, v in
                                                     enumerate(results[1].history["loss"][:3], 1)]
                                              + [Metric("nan_stat", math.nan, stamp, 0)], {"k": "v"})])
    for key in ("loss", "nan_stat"):
        got = [(m.step, m.value) for m in store.get_metric_history(bulk, key)]
        want = [(m.step, m.value) for m in store.get_metric_history(reference, key)]
        assert str(got) == str(want)  # str: NaN compares equal to NaN
    assert store.get_run(bulk).data.metrics["loss"] == store.get_run(reference).data.metrics["loss"]
    assert math.isnan(store.get_run(bulk).data.metrics["nan_stat"])
    assert store.get_run(bulk).data.params == {"k": "v"}

    parent = store.get_run(parents["nodes=3"])
    assert parent.data.params["config.nodes"] == "3" and parent.data.params["seeds"] == "2"
    assert parent.data.tags["diverged"] == "true"
    assert parent.info.status == "FINISHED" and all(r.info.status == "FINISHED" for r in children)
