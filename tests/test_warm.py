"""The warm stage server (stages/warm.py): a stage command handed over runs as it would alone.

Real stage commands in a copy of the repository; the server each test starts is stopped by its process id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import copy_repo, repo_params, with_change, write_prepared

PYTHON = sys.executable
KEPT = {"TRAINLAB_KEEP_WORKERS": "120", "TRAINLAB_EXECUTOR": "local"}


def command(repo: Path, *args: str, wait: bool = True, **env: str):
    full = {**os.environ, **KEPT, "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}", **env}
    run = subprocess.run if wait else subprocess.Popen
    extra = {"timeout": 600} if wait else {}
    return run([PYTHON, "-m", *args], cwd=repo, env=full, text=True, stdout=subprocess.PIPE,
               stderr=subprocess.PIPE, **extra)


def server_log(repo: Path) -> Path | None:
    """The log of the stage server started for ``repo`` (its cwd), once its socket is up."""
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"trainlab-{os.getuid()}"
    for pid_file in folder.glob("stages-*.pid"):
        try:
            pid = int(pid_file.read_text())
            if Path(os.readlink(f"/proc/{pid}/cwd")) == repo.resolve() and pid_file.with_suffix(".sock").exists():
                return pid_file.with_suffix(".log")
        except (OSError, ValueError):
            continue
    return None


@pytest.fixture
def warm_repo(tmp_path):
    """A repository copy whose first stage command has started a stage server, and that server stopped after."""
    repo = copy_repo(tmp_path / "repo")
    first = command(repo, "stages.check")
    assert first.returncode == 0, first.stderr
    deadline = time.time() + 120
    while server_log(repo) is None and time.time() < deadline:
        time.sleep(0.2)
    log = server_log(repo)
    assert log is not None, "no stage server came up"
    pid = int(log.with_suffix(".pid").read_text())
    yield repo, log
    os.killpg(pid, signal.SIGKILL)  # the server this test started (its own session)


def test_a_handed_over_stage_runs_in_the_server_with_its_outputs_messages_and_exit_codes(warm_repo):
    repo, log = warm_repo
    (repo / "data" / "checked.txt").unlink()
    ok = command(repo, "stages.check")
    assert ok.returncode == 0 and ok.stderr.strip() == "params.yaml checked: 15 families", ok.stderr
    assert (repo / "data" / "checked.txt").exists()
    params = with_change(repo_params(), "families.capacity.epochs", 0)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bad = command(repo, "stages.check")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == "error: families.capacity.epochs: expected an integer ≥ 1, got 0"
    served = [line for line in log.read_text().splitlines() if ": stages.check " in line]
    assert len(served) == 2, log.read_text()  # both ran in the server's children, not in the commands


def test_a_killed_stage_command_stops_its_stage_in_the_server(warm_repo):
    repo, log = warm_repo
    params = with_change(repo_params(), "seeds", 2)
    params = with_change(params, "families.capacity.epochs", 5000)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_prepared(repo, params, ["blobs20"])
    stage = command(repo, "stages.train", "capacity", wait=False)
    while stage.poll() is None and "trials (" not in stage.stderr.readline():
        pass
    assert stage.poll() is None, stage.stderr.read()
    [line] = [line for line in log.read_text().splitlines() if ": stages.train capacity" in line] or [log.read_text()]
    child = int(line.split(" pid ")[1].split(":")[0])
    stage.send_signal(signal.SIGKILL)
    stage.wait()
    deadline = time.time() + 30
    while Path(f"/proc/{child}").exists() and time.time() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{child}").exists(), "the stage trained on after its command died"


FORKED = """
import os, sys
from stages import params as P
from stages.warm import in_forked_child
print("before", flush=False)  # buffered at the fork: must be written once
wait = in_forked_child(lambda: (os.getpid(), os.getppid()))
child, parent = wait()
assert child != os.getpid() and parent == os.getpid(), (child, parent)
def bad():
    raise P.ParamsError("families.x.y: expected one of a, b")
failing = in_forked_child(bad)
try:
    failing()
except P.ParamsError as err:
    print("raised:", err)
import tensorflow  # noqa: F401  (its threads make fork unsafe: the work runs in this process)
assert in_forked_child(os.getpid)() == os.getpid()
print("done")
"""


def test_work_in_a_forked_child_returns_its_result_raises_its_error_and_stays_home_once_tensorflow_loaded():
    run = subprocess.run([PYTHON, "-c", FORKED], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).parent.parent)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.splitlines() == ["before", "raised: families.x.y: expected one of a, b", "done"]
