"""Failures after training keep the work: outputs before logging, orphaned runs failed, reruns identifiable.

Real stage runs (tiny params: capacity, 1-2 epochs, 2-3 seeds) against a real SQLite MLflow store.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml
from conftest import copy_repo, repo_params, with_change, write_prepared

pytestmark = pytest.mark.slow  # stage processes killed and rerun under DVC (minutes)

PYTHON = sys.executable


def tiny(epochs: int = 1, seeds: int = 3) -> dict:
    params = with_change(repo_params(), "seeds", seeds)
    for key, value in (("epochs", epochs), ("nodes", [1, 2, 3, 4, 5, 6, 7]), ("layers", [1, 2, 3, 4, 5]),
                       ("layer_width", 3)):
        params = with_change(params, f"families.capacity.{key}", value)
    return params


@pytest.fixture
def repo(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    params = tiny()
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_prepared(repo, params, ["blobs20"])
    return repo


def start(repo, store, **placement: str) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}", **placement}
    return subprocess.Popen([PYTHON, "-m", "stages.train", "capacity"], cwd=repo, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def statuses(store) -> dict[str, int]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
        return dict(db.execute("select status, count(*) from runs group by status").fetchall())


def superseded(store) -> dict[str, str]:
    with sqlite3.connect(store) as db:
        rows = db.execute("select r.run_uuid, coalesce(t.value, '') from runs r left join tags t on "
                          "t.run_uuid = r.run_uuid and t.key = 'trainlab.superseded' where r.status = 'FINISHED'")
        return dict(rows.fetchall())


def test_kill_during_logging_then_rerun_leaves_no_running_runs_and_the_same_metrics(repo, tmp_path):
    store = tmp_path / "mlflow.db"
    metrics = repo / "reports" / "metrics" / "capacity.json"
    first = start(repo, store)
    assert first.wait(timeout=600) == 0, first.stderr.read()[-3000:]
    good = metrics.read_text()
    first_runs = set(superseded(store))

    # Kill the stage the moment its runs exist but are not finished (the window where logging happens).
    killed = None
    for _ in range(3):
        stage = start(repo, store)
        while stage.poll() is None:
            if statuses(store).get("RUNNING"):
                stage.send_signal(signal.SIGKILL)
                stage.wait()
                killed = statuses(store)["RUNNING"] if statuses(store).get("RUNNING") else None
                break
            time.sleep(0.002)
        if killed:
            break
    assert killed, "could not kill the stage while it was logging"
    assert metrics.read_text() == good  # the last good outputs are intact

    rerun = start(repo, store)
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read()[-3000:]
    after = statuses(store)
    assert after.get("RUNNING", 0) == 0 and after.get("FAILED", 0) >= killed
    assert metrics.read_text() == good  # identical to the uninterrupted run's
    runs = json.loads((repo / "data" / "runs" / "capacity" / "mlflow_runs.json").read_text())
    tags = superseded(store)
    assert all(tags[run_id] == "" for run_id in runs.values())  # the current parents
    assert all(tags[run_id] == "true" for run_id in first_runs)  # the first run's, replaced by the rerun


def test_a_store_that_breaks_while_logging_keeps_the_outputs_and_says_what_to_rerun(repo, tmp_path):
    store = tmp_path / "mlflow.db"
    metrics = repo / "reports" / "results" / "capacity.json"
    before = metrics.read_text() if metrics.exists() else None  # the committed results, if the copy has them
    stage = start(repo, store)
    while stage.poll() is None and not store.exists():
        time.sleep(0.05)
    line = stage.stderr.readline()
    while line and "trials (" not in line:  # training has started: the store was checked and is open
        line = stage.stderr.readline()
    store.write_bytes(b"this is no longer a database\n" * 4096)
    out, err = stage.communicate(timeout=600)
    assert stage.returncode == 1, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert last.startswith("error: train@capacity trained and wrote ") and "but logging to MLflow" in last
    assert last.endswith("Fix the store and rerun `dvc repro train@capacity`")
    summary = json.loads(metrics.read_text())
    assert metrics.read_text() != before and summary["nodes=1"]["seeds"] == 3  # the training is kept
    assert (repo / "data" / "runs" / "capacity" / "history.parquet").exists()


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        below = children(todo.pop())
        found += below
        todo += below
    return found


def test_workers_exit_when_the_stage_process_is_killed(repo, tmp_path):
    """A stage killed mid-training (SIGKILL: no clean-up runs) leaves no worker training on for nobody."""
    params = tiny(epochs=2000, seeds=2)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stage = start(repo, tmp_path / "mlflow.db", TRAINLAB_EXECUTOR="process", TRAINLAB_WORKERS="2")
    workers: list[int] = []
    try:
        deadline = time.time() + 300
        while time.time() < deadline and stage.poll() is None:
            line = stage.stderr.readline()
            if "trials (" in line:  # the stage has sent its shards
                break
        assert stage.poll() is None, stage.stderr.read()[-3000:]
        deadline = time.time() + 120
        while time.time() < deadline and len(workers) < 2:
            # the pool's workers (spawned), not the resource tracker
            workers = [p for p in descendants(stage.pid) if "spawn_main" in open(f"/proc/{p}/cmdline").read()]
            time.sleep(0.2)
        assert len(workers) >= 2, "no workers"
        time.sleep(3)  # let them start importing and training
        stage.send_signal(signal.SIGKILL)
        stage.wait()
        deadline = time.time() + 120  # a worker still starting up (a loaded machine) exits when it reaches its init
        while time.time() < deadline and any(alive(p) for p in workers):
            time.sleep(0.2)
        assert not any(alive(p) for p in workers), "workers kept running after the stage process died"
    finally:
        for pid in workers:  # only the processes this test started
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_failed_train_stage_under_dvc_keeps_the_last_good_results(repo):
    """DVC removes a stage's outputs before running it, so the `check` stage before it refuses the bad value
    and DVC stops there: the last good results stay (and the run-cache still works: nothing persists)."""
    dvc = os.path.join(os.path.dirname(PYTHON), "dvc")
    metrics = repo / "reports" / "metrics" / "capacity.json"
    good = metrics.read_text()
    history = repo / "data" / "runs" / "capacity" / "history.parquet"
    history.parent.mkdir(parents=True)
    history.write_bytes(b"the last good history")
    (repo / "params.yaml").write_text(yaml.safe_dump(with_change(tiny(), "seeds", 0), sort_keys=False))
    result = subprocess.run([dvc, "repro", "train@capacity"], cwd=repo, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "DVC_NO_ANALYTICS": "1",
                                 "PATH": f"{os.path.dirname(PYTHON)}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode != 0
    assert "seeds: expected an integer ≥ 1" in result.stderr + result.stdout
    assert "Running stage 'train@capacity'" not in result.stdout + result.stderr
    assert metrics.read_text() == good
    assert history.read_bytes() == b"the last good history"
