"""A PostgreSQL-backed `mlflow server` on 127.0.0.1, and two `dvc exp run --queue` experiments run at once
against it: every expected run and every metric must be there.

The server is the one `make mlflow-server` starts (tools.mlflow_server), stopped by its pids afterwards.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_repo, write_prepared
from test_pipeline import tiny_params

BIN = Path(sys.executable).parent
EPOCHS = [2, 4]  # one queued experiment each, run at once (the baseline trains 3 epochs)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    state = tmp_path_factory.mktemp("server") / "state.json"
    started = subprocess.run([sys.executable, "-m", "tools.mlflow_server", "start", "--state", str(state)],
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    try:
        assert started.returncode == 0, started.stderr
        uri = started.stdout.strip().removeprefix("MLFLOW_TRACKING_URI=")
        assert uri.startswith("http://127.0.0.1:")
        assert json.loads(state.read_text())["postgres_pid"] > 0
        yield uri
    finally:
        subprocess.run([sys.executable, "-m", "tools.mlflow_server", "stop", "--state", str(state)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert not state.exists()


def run(repo: Path, uri: str, *args: str, timeout: float = 900) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "MLFLOW_TRACKING_URI": uri,
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org"}
    done = subprocess.run(list(args), cwd=repo, capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_queued_experiments_two_at_a_time_lose_no_run_and_no_metric_on_the_server(server, tmp_path):
    repo = copy_repo(tmp_path / "repo")
    (repo / "dvc.lock").unlink(missing_ok=True)
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    dvc = str(BIN / "dvc")
    run(repo, server, dvc, "repro")  # data generated and prepared once; the experiments reuse the cache
    run(repo, server, "git", "add", "-A")
    run(repo, server, "git", "commit", "-qm", "baseline")
    for epochs in EPOCHS:
        run(repo, server, dvc, "exp", "run", "--queue", "-S", f"families.capacity.epochs={epochs}")
    run(repo, server, dvc, "queue", "start", "-j", "2")
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        status = run(repo, server, dvc, "queue", "status")
        if not any(word in status for word in ("Queued", "Running")):
            break
        time.sleep(5)
    run(repo, server, dvc, "queue", "stop", "--kill")
    assert status.count("Success") == len(EPOCHS), status

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=server)
    experiment = client.get_experiment_by_name("capacity")
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    parents = [r for r in runs if r.data.tags.get("dvc.stage") == "train@capacity"
               and r.data.tags.get("run.kind") == "configuration"]  # not the seed runs, nor the evaluation
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    configs = ["layers=2", "nodes=1", "nodes=7"]
    # the baseline and the four experiments: a parent per configuration, a child per seed
    assert len(parents) == 3 * (1 + len(EPOCHS)) and len(children) == 2 * len(parents)
    by_epochs: dict[int, list] = {}
    for parent in parents:
        curve = client.get_metric_history(parent.info.run_id, "val_accuracy")
        by_epochs.setdefault(len(curve), []).append(parent.data.tags["config"])  # run names add " @ <batch>"
        assert [m.step for m in curve] == list(range(1, len(curve) + 1))
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert name in parent.data.metrics  # the parent holds the mean under the same name
        mine = [c for c in children if c.data.tags["mlflow.parentRunId"] == parent.info.run_id]
        assert len(mine) == 2
        for child in mine:
            assert len(client.get_metric_history(child.info.run_id, "val_loss")) == len(curve)
    assert {k: sorted(v) for k, v in by_epochs.items()} == {e: configs for e in [3, *EPOCHS]}
    evaluations = [r for r in runs if r.data.tags.get("run.kind") == "evaluate"]
    assert len(evaluations) == 1 + len(EPOCHS)


# -- the default SQLite file under the same load ------------------------------------------------------------

CONCURRENT = 4


@pytest.mark.slow
def test_four_train_stages_at_once_on_one_sqlite_file_lose_nothing_or_fail_saying_to_use_a_server(tmp_path):
    """Four train stages (as `dvc queue start -j 4` runs them: separate workspaces, one store) log to one
    SQLite file at once: each either logged every run and metric, or stopped with one line naming a server."""
    params = tiny_params(seeds=2, capacity_epochs=2)
    store = tmp_path / "mlflow.db"
    stages = []
    for index in range(CONCURRENT):
        repo = copy_repo(tmp_path / f"workspace{index}")
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        write_prepared(repo, params, ["blobs20"])
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}", "TRAINLAB_THREADS": "1"}
        stages.append(subprocess.Popen([sys.executable, "-m", "stages.train", "capacity"], cwd=repo, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outcomes = [(stage.wait(600), stage.stderr.read()) for stage in stages]
    for code, stderr in outcomes:
        assert "Traceback" not in stderr and "database is locked" not in stderr.lower(), stderr[-3000:]
        assert code == 0 or (code == 2 and "server" in stderr.strip().splitlines()[-1]), stderr[-3000:]
    succeeded = sum(code == 0 for code, _ in outcomes)
    configs, seeds, epochs = 3, 2, 2  # nodes=1, nodes=7, layers=2
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        kinds = dict(db.execute("select t.value, count(*) from runs r join tags t on t.run_uuid = r.run_uuid "
                                "where t.key = 'run.kind' and r.status = 'FINISHED' group by t.value").fetchall())
        curves = db.execute("select count(*) from metrics where key = 'val_loss'").fetchone()[0]
    expected = {"configuration": configs * succeeded, "seed": configs * seeds * succeeded}
    print(f"SQLite, {CONCURRENT} at once: {succeeded} stages logged; runs expected {expected}, found {kinds}")
    assert {k: kinds.get(k, 0) for k in expected} == expected
    assert curves == (expected["configuration"] + expected["seed"]) * epochs  # per epoch: seeds' and their mean
