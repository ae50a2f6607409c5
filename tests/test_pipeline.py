"""End to end: `dvc repro` on a tiny params profile in a temporary copy of the repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import copy_repo, processes_in

from trainlab import params as P

pytestmark = pytest.mark.slow  # a DVC pipeline in a temporary repository (minutes)

BIN = Path(sys.executable).parent


def tiny_params(seeds: int = 2, capacity_epochs: int = 3) -> dict:
    """Two families: capacity (two widths and one depth) and batch_norm (two placements, 3 epochs)."""
    params = P.load()
    params["seeds"] = seeds
    params["datasets"] = {name: params["datasets"][name] for name in ("blobs20", "circles")}
    params["prepare"] = {name: params["prepare"][name] for name in ("blobs20", "circles")}
    capacity, batch_norm = params["families"]["capacity"], params["families"]["batch_norm"]
    params["families"] = {"capacity": {**capacity, "epochs": capacity_epochs, "nodes": [1, 7], "layers": [2]},
                          "batch_norm": {**batch_norm, "epochs": 3, "placements": ["none", "after"]}}
    params["sources"] = {}
    params["families_from_source"] = {}
    params["families_on_results"] = {}
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
    assert list(history.columns) == ["config", "study", "seed", "epoch", "metric", "value"]
    assert set(history["config"]) == {"nodes=1", "nodes=7", "layers=2"}
    assert set(history["seed"]) == {1, 2}
    assert set(history["metric"]) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert len(history) == 3 * 2 * 3 * 5
    assert (reproduced / "reports" / "figures" / "capacity" / "nodes.png").stat().st_size > 10_000
    assert (reproduced / "reports" / "figures" / "capacity" / "layers.png").exists()
    assert (reproduced / "reports" / "plots" / "capacity" / "val_accuracy.csv").exists()


def test_results_hold_every_statistic_and_each_seed_and_metrics_only_the_headline(reproduced):
    results = json.loads((reproduced / "reports" / "results" / "capacity.json").read_text())
    assert set(results) == {"nodes=1", "nodes=7", "layers=2"}
    for entry in results.values():
        assert entry["diverged"] == 0 and entry["seeds"] == 2
        assert entry["per_seed"]["seed"] == [1, 2]
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert entry[name]["n"] == 2
            assert entry[name]["ci95_low"] <= entry[name]["mean"] <= entry[name]["ci95_high"]
            assert sum(entry["per_seed"][name]) / 2 == pytest.approx(entry[name]["mean"], abs=1e-5)
    headline = json.loads((reproduced / "reports" / "metrics" / "capacity.json").read_text())
    assert headline == {"seeds": 6, "diverged": 0,
                        "best_acc": max(results[c]["val_accuracy"]["mean"] for c in results)}
    shown = json.loads(dvc(reproduced, "metrics", "show", "--json"))[""]["data"]
    assert shown["reports/metrics/capacity.json"]["data"] == headline
    from trainlab.report import VERDICTS
    outcomes = [f["verdict"] for path in (reproduced / "reports" / "findings").glob("*.json")
                for f in json.loads(path.read_text())["findings"]]
    assert sum(shown["reports/metrics/findings.json"]["data"].values()) == len(outcomes)
    assert len(shown["reports/metrics/findings.json"]["data"]) == len(VERDICTS)
    # the default view fits a terminal
    assert max(map(len, dvc(reproduced, "metrics", "show").splitlines())) <= 200


def test_mlflow_has_a_parent_run_per_config_and_a_child_per_seed(reproduced):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{reproduced / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("capacity")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    evaluations = [r for r in runs if r.data.tags.get("run.kind") == "evaluate"]
    assert len(evaluations) == 1  # the evaluate stage's run, with the findings' verdicts
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags and r not in evaluations]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.tags["config"] for r in parents) == ["layers=2", "nodes=1", "nodes=7"]
    assert all(r.info.run_name == r.data.tags["config"] for r in parents)  # the configuration alone: short in the UI
    assert len(children) == 6
    for parent in parents:
        mine = [c for c in children if c.data.tags["mlflow.parentRunId"] == parent.info.run_id]
        assert len(mine) == 2
        assert parent.data.tags["dvc.stage"] == "train@capacity"
        assert len(parent.data.tags["params.hash"]) == 12
        assert parent.data.params["runtime.deterministic_ops"] == "True"
        assert "val_accuracy" in parent.data.metrics and parent.data.params["epochs"] == "3"
        curve = client.get_metric_history(parent.info.run_id, "val_accuracy")
        assert [m.step for m in curve] == [1, 2, 3]
        artifacts = [a.path for a in client.list_artifacts(parent.info.run_id, "figures")]
        assert artifacts and artifacts[0].endswith(".png")


def stale_after(repo: Path, path: str, change) -> set[str]:
    """The stages ``dvc status`` calls stale after ``change`` rewrites the file ``path`` (restored after)."""
    target = repo / path
    original = target.read_text()
    target.write_text(change(original))
    try:
        return {line.rstrip(":") for line in dvc(repo, "status").splitlines() if line and not line[0].isspace()}
    finally:
        target.write_text(original)


def test_changing_a_family_param_marks_only_that_family_stale(reproduced):
    assert "up to date" in dvc(reproduced, "status")

    def fewer_epochs(text: str) -> str:
        params = yaml.safe_load(text)
        params["families"]["capacity"]["epochs"] = 4
        return yaml.safe_dump(params, sort_keys=False)

    # `check` reads every param (cheap, and its output does not change when the params stay valid)
    assert stale_after(reproduced, "params.yaml", fewer_epochs) == {"check", "train@capacity", "evaluate@capacity"}


def test_editing_shared_family_code_marks_every_family_stale_and_a_family_module_only_its_own(reproduced):
    comment = lambda text: text + "\n# an edit\n"  # noqa: E731
    families = ("capacity", "batch_norm")
    every = {"check"} | {f"{stage}@{family}" for family in families for stage in ("train", "evaluate")}
    assert stale_after(reproduced, "trainlab/families/common.py", comment) == every
    assert stale_after(reproduced, "trainlab/curves.py", comment) == every
    assert stale_after(reproduced, "trainlab/families/batch_norm.py", comment) == {
        "check", "train@batch_norm", "evaluate@batch_norm"}


def test_editing_a_family_figure_reruns_its_evaluation_and_never_its_training(reproduced):
    comment = lambda text: text + "\n# an edit\n"  # noqa: E731
    assert stale_after(reproduced, "trainlab/figures/capacity.py", comment) == {"evaluate@capacity"}
    assert stale_after(reproduced, "trainlab/figures/common.py", comment) == {"evaluate@capacity",
                                                                              "evaluate@batch_norm"}
    figure = reproduced / "trainlab" / "figures" / "capacity.py"
    original = figure.read_text()
    figure.write_text(original + "\n# an edit\n")
    try:
        out = dvc(reproduced, "repro")
    finally:
        figure.write_text(original)
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran <= {"evaluate@capacity", "report"} and "evaluate@capacity" in ran
    dvc(reproduced, "commit", "--force")  # the figure module back as it was: its hash in dvc.lock too


def test_same_params_give_identical_metrics(reproduced):
    before = (reproduced / "reports" / "metrics" / "capacity.json").read_text()
    dvc(reproduced, "repro", "--force", "train@capacity")
    assert (reproduced / "reports" / "metrics" / "capacity.json").read_text() == before


def test_the_default_worker_pool_trains_to_the_same_metrics_and_leaves_no_process_behind(reproduced):
    """Unset TRAINLAB_EXECUTOR means a pool of worker processes on a multi-core machine (the suite sets local):
    the stage starts it, trains in it, shuts it down and exits; nothing it started is running afterwards."""
    before = (reproduced / "reports" / "metrics" / "capacity.json").read_text()
    default = {k: v for k, v in os.environ.items() if k != "TRAINLAB_EXECUTOR"}
    result = subprocess.run([str(BIN / "dvc"), "repro", "--force", "train@capacity"], cwd=reproduced, text=True,
                            capture_output=True, timeout=600,
                            env={**default, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "TRAINLAB_WORKERS": "2",
                                 "MLFLOW_TRACKING_URI": f"sqlite:///{reproduced / 'mlflow.db'}"})
    assert result.returncode == 0, result.stderr
    assert "shard" in result.stderr  # the pool's progress lines: it trained in workers
    assert processes_in(reproduced) == []
    assert (reproduced / "reports" / "metrics" / "capacity.json").read_text() == before


@pytest.mark.parametrize("placement", [{"TRAINLAB_EXECUTOR": "process", "TRAINLAB_WORKERS": "2"},
                                       {"TRAINLAB_EXECUTOR": "dask", "TRAINLAB_THREADS": "1"}],
                         ids=["process", "dask"])
def test_changing_the_executor_leaves_dvc_status_clean_and_reruns_nothing(reproduced, placement):
    dvc(reproduced, "repro")  # an earlier test retrained capacity (new MLflow run ids): start from up to date
    assert "up to date" in dvc(reproduced, "status", env=placement)
    out = dvc(reproduced, "repro", env=placement)
    assert "Running stage" not in out and "didn't change, skipping" in out


def test_a_clone_that_pulls_from_a_remote_with_the_run_cache_trains_nothing(reproduced, tmp_path):
    """Results shared instead of recomputed: push the outputs and the run-cache to a local-directory remote,
    clone, `dvc repro --pull`: every stage is restored, none runs, and the clone's git status stays clean."""
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    remote = tmp_path / "remote"
    dvc(reproduced, "repro")  # earlier tests retrained (new MLflow run ids in data/runs): bring all up to date
    dvc(reproduced, "remote", "add", "--default", "shared", str(remote))
    subprocess.run([*git, "add", "-A"], cwd=reproduced, check=True)
    subprocess.run([*git, "commit", "-qm", "results"], cwd=reproduced, check=True)
    dvc(reproduced, "push", "--run-cache")

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(reproduced), str(clone)], check=True)
    out = dvc(clone, "repro", "--pull")
    assert "Running stage" not in out, out
    assert (clone / "data" / "runs" / "capacity" / "history.parquet").exists()
    assert not (clone / "mlflow.db").exists()  # nothing trained, so nothing was logged
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout
    assert status == "", status
    assert "up to date" in dvc(clone, "status")
