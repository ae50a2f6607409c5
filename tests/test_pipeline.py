"""End to end: `dvc repro` on a tiny params profile in a temporary copy of the repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import copy_repo

from stages import params as P

BIN = Path(sys.executable).parent


def tiny_params() -> dict:
    """Only the capacity family, two widths and one depth, 3 epochs, 2 seeds."""
    params = P.load()
    params["seeds"] = 2
    params["datasets"] = {"blobs20": params["datasets"]["blobs20"]}
    params["prepare"] = {"blobs20": params["prepare"]["blobs20"]}
    capacity = params["families"]["capacity"]
    params["families"] = {"capacity": {**capacity, "epochs": 3, "nodes": [1, 7], "layers": [2]}}
    params["sources"] = {}
    params["families_from_source"] = {}
    return params


def dvc(repo: Path, *args: str, env: dict | None = None) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}", **(env or {})}
    result = subprocess.run([str(BIN / "dvc"), *args], cwd=repo, capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("pipeline"))
    (repo / "dvc.lock").unlink(missing_ok=True)
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    dvc(repo, "repro")
    return repo


def test_repro_writes_history_metrics_figures_and_plot_data(reproduced):
    import pandas as pd

    history = pd.read_parquet(reproduced / "data" / "runs" / "capacity" / "history.parquet")
    assert list(history.columns) == ["config", "seed", "epoch", "metric", "value"]
    assert set(history["config"]) == {"nodes=1", "nodes=7", "layers=2"}
    assert set(history["seed"]) == {1, 2}
    assert set(history["metric"]) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert len(history) == 3 * 2 * 3 * 5
    assert (reproduced / "reports" / "figures" / "capacity" / "nodes.png").stat().st_size > 10_000
    assert (reproduced / "reports" / "figures" / "capacity" / "layers.png").exists()
    assert (reproduced / "reports" / "plots" / "capacity" / "val_accuracy.csv").exists()


def test_metrics_json_has_mean_std_n_and_diverged_per_config(reproduced):
    metrics = json.loads((reproduced / "reports" / "metrics" / "capacity.json").read_text())
    assert set(metrics) == {"nodes=1", "nodes=7", "layers=2"}
    for entry in metrics.values():
        assert entry["diverged"] == 0 and entry["seeds"] == 2
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert entry[name]["n"] == 2
            assert entry[name]["ci95_low"] <= entry[name]["mean"] <= entry[name]["ci95_high"]
    shown = dvc(reproduced, "metrics", "show", "--json")
    assert "nodes=7" in shown


def test_mlflow_has_a_parent_run_per_config_and_a_child_per_seed(reproduced):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{reproduced / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("capacity")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    evaluations = [r for r in runs if r.data.tags.get("run.kind") == "evaluate"]
    assert len(evaluations) == 1  # the evaluate stage's run, with the findings' verdicts
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags and r not in evaluations]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.info.run_name for r in parents) == ["layers=2", "nodes=1", "nodes=7"]
    assert len(children) == 6
    for parent in parents:
        mine = [c for c in children if c.data.tags["mlflow.parentRunId"] == parent.info.run_id]
        assert len(mine) == 2
        assert parent.data.tags["dvc.stage"] == "train@capacity"
        assert len(parent.data.tags["params.hash"]) == 12
        assert parent.data.params["runtime.deterministic_ops"] == "True"
        assert "val_accuracy_mean" in parent.data.metrics
        curve = client.get_metric_history(parent.info.run_id, "val_accuracy")
        assert [m.step for m in curve] == [1, 2, 3]
        artifacts = [a.path for a in client.list_artifacts(parent.info.run_id, "figures")]
        assert artifacts and artifacts[0].endswith(".png")


def test_changing_a_family_param_marks_only_that_family_stale(reproduced):
    assert "up to date" in dvc(reproduced, "status")
    original = (reproduced / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["families"]["capacity"]["epochs"] = 4
    (reproduced / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        stale = {line.rstrip(":") for line in dvc(reproduced, "status").splitlines() if line and not line[0].isspace()}
    finally:
        (reproduced / "params.yaml").write_text(original)
    assert stale == {"train@capacity", "evaluate@capacity"}


def test_same_params_give_identical_metrics(reproduced):
    before = (reproduced / "reports" / "metrics" / "capacity.json").read_text()
    dvc(reproduced, "repro", "--force", "train@capacity")
    assert (reproduced / "reports" / "metrics" / "capacity.json").read_text() == before


@pytest.mark.parametrize("placement", [{"TRAINLAB_EXECUTOR": "process", "TRAINLAB_WORKERS": "2"},
                                       {"TRAINLAB_EXECUTOR": "dask", "TRAINLAB_THREADS": "1"}],
                         ids=["process", "dask"])
def test_changing_the_executor_leaves_dvc_status_clean_and_reruns_nothing(reproduced, placement):
    assert "up to date" in dvc(reproduced, "status", env=placement)
    out = dvc(reproduced, "repro", env=placement)
    assert "Running stage" not in out and "didn't change, skipping" in out
