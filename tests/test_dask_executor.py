"""Placement by environment, and the Dask distributed executor on real clusters bound to 127.0.0.1.

The Dask tests train a tiny capacity family (3 configurations x 2 seeds, 3 epochs, seed blocks of
one seed, so even one configuration's seeds are spread over shards) and compare every weight and
every history value with the in-process executor's, bit for bit.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
from conftest import repo_params, with_change, write_prepared

from trainlab import params as P
from trainlab.engine import placement as pl

BIN = Path(sys.executable).parent
RUNTIME = {"onednn": False, "deterministic_ops": True, "xla": False, "stack_seeds": True, "seed_block": 1}


# -- placement is environment, not params -------------------------------------------------------------

def test_placement_comes_from_the_environment_and_a_bad_value_names_the_variable():
    # unset: a pool of worker processes where there are several cores (one TensorFlow process uses ~1.3 of 2)
    assert pl.placement({}) == pl.Placement("process" if (os.cpu_count() or 1) > 1 else "local", 0, 0, None)
    chosen = pl.placement({"TRAINLAB_EXECUTOR": "dask", "TRAINLAB_WORKERS": "2", "TRAINLAB_THREADS": "1",
                           "DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:8786"})
    assert chosen == pl.Placement("dask", 2, 1, "tcp://127.0.0.1:8786")
    with pytest.raises(pl.PlacementError, match="TRAINLAB_EXECUTOR: expected one of local, process, dask, got 'gpu'"):
        pl.placement({"TRAINLAB_EXECUTOR": "gpu"})
    with pytest.raises(pl.PlacementError, match="TRAINLAB_WORKERS: expected an integer ≥ 1"):
        pl.placement({"TRAINLAB_WORKERS": "0"})


@pytest.mark.parametrize("key,variable", [("workers", "TRAINLAB_WORKERS"), ("threads", "TRAINLAB_THREADS")])
def test_a_placement_key_left_in_params_says_which_variable_replaced_it(key, variable):
    params = with_change(repo_params(), f"runtime.{key}", 2)
    with pytest.raises(P.ParamsError, match=f"runtime.{key}: not a param any more.*{variable}"):
        P.check_common(params)
    assert set(P.check_common(repo_params())["runtime"]) == {"onednn", "deterministic_ops", "xla", "stack_seeds",
                                                             "seed_block"}


def test_a_bad_executor_stops_the_train_stage_in_one_line_before_training(tmp_path):
    env = {**os.environ, "TRAINLAB_EXECUTOR": "gpu", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    (tmp_path / "params.yaml").write_text(Path(P.__file__).parents[1].joinpath("params.yaml").read_text())
    done = subprocess.run([sys.executable, "-m", "stages.train", "capacity"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last == "error: TRAINLAB_EXECUTOR: expected one of local, process, dask, got 'gpu'"
    assert not (tmp_path / "data").exists() and not (tmp_path / "reports").exists()


# -- shards pickle small ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A project root with blobs20 prepared, and the tiny capacity family's trials read from it."""
    root = tmp_path_factory.mktemp("lab")
    params = repo_params()
    write_prepared(root, params, ["blobs20"])
    params["families"]["capacity"] |= {"epochs": 3, "nodes": [1, 7], "layers": [2]}
    from trainlab.families import capacity, check_family

    _, cfg = check_family(params, "capacity")

    cwd = Path.cwd()
    os.chdir(root)
    try:
        trials = capacity.trials(cfg, [1, 2])
    finally:
        os.chdir(cwd)
    return root, trials


def test_a_shard_carries_its_data_as_path_and_content_hash_not_arrays(lab, tmp_path, monkeypatch):
    from trainlab.data.prepared import split_from_source
    from trainlab.engine.shards import Shard

    root, trials = lab
    data = trials[0].data
    shipped = pickle.dumps(Shard(trials, RUNTIME, 1))
    arrays = sum(a.nbytes for a in (data.x_train, data.y_train, data.x_val, data.y_val))
    assert len(shipped) < 4000 < arrays  # 6 trials: references only, smaller than one copy of the data
    rebuilt = pickle.loads(shipped).trials
    assert all(t.data is rebuilt[0].data for t in rebuilt)  # one Split per shard, as in the stage
    for name in ("x_train", "y_train", "x_val", "y_val"):
        np.testing.assert_array_equal(getattr(rebuilt[0].data, name), getattr(data, name))
    # a file whose bytes changed is not the data the stage hashed: refused, naming it
    path, relative, md5, target = data.origin
    altered = tmp_path / "blobs20.npz"
    altered.write_bytes(Path(path).read_bytes() + b"\0")
    monkeypatch.chdir(tmp_path)  # no clone of the repository here either
    monkeypatch.setattr("trainlab.data.prepared._by_hash", {})  # as in a fresh worker
    with pytest.raises(FileNotFoundError, match=rf"data/prepared/blobs20.npz \(md5 {md5}\) is not on worker"):
        split_from_source((str(altered), relative, md5, target))


# -- the Dask executor: identical results, nothing lost when a worker dies -----------------------------

LOCAL = """
import os, pickle, sys
from trainlab.engine import runtime as rt
runtime = {runtime!r}
rt.apply(runtime)  # TRAINLAB_THREADS=1, as on the workers: TensorFlow's thread count can change a matmul's rounding
from trainlab.engine.executor import run_trials
with open(sys.argv[1], "rb") as f:
    trials = pickle.load(f)
results = run_trials(trials, runtime, label="local")
with open(sys.argv[1], "wb") as f:
    pickle.dump(results, f)
"""


@pytest.fixture(scope="module")
def in_process(lab, tmp_path_factory):
    """The in-process executor's results, in a fresh process pinned to the workers' thread count."""
    exchange = tmp_path_factory.mktemp("local") / "trials.pkl"
    exchange.write_bytes(pickle.dumps(lab[1]))
    env = {**os.environ, "TRAINLAB_EXECUTOR": "local", "TRAINLAB_THREADS": "1"}
    subprocess.run([sys.executable, "-c", LOCAL.format(runtime=RUNTIME), str(exchange)], env=env, check=True,
                   timeout=600)
    return pickle.loads(exchange.read_bytes())


def assert_identical(results, expected):
    assert [(r.config, r.seed) for r in results] == [(r.config, r.seed) for r in expected]
    for got, want in zip(results, expected):
        assert got.diverged_epoch == want.diverged_epoch
        for a, b in zip(got.weights, want.weights, strict=True):
            np.testing.assert_array_equal(a, b)
        assert set(got.history) == set(want.history)
        for metric, values in want.history.items():
            np.testing.assert_array_equal(got.history[metric], values)


@pytest.mark.slow
def test_a_local_dask_cluster_of_two_worker_processes_gives_the_local_executors_results(lab, in_process, capsys):
    from trainlab.engine.executor import run_trials

    results = run_trials(lab[1], RUNTIME, label="dask", placement=pl.Placement("dask", workers=2, threads=1))
    assert_identical(results, in_process)
    assert "2 shards on 2 Dask workers (LocalCluster on 127.0.0.1)" in capsys.readouterr().err  # 3 blocks each


@pytest.fixture
def dask_cluster(tmp_path):
    """`dask scheduler` and `dask worker --nworkers 2 --nthreads 1` on 127.0.0.1, stopped by their pids."""
    scheduler_file = tmp_path / "scheduler.json"
    started = []
    try:
        started.append(subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                         "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        started.append(subprocess.Popen([str(BIN / "dask"), "worker", "--scheduler-file", str(scheduler_file),
                                         "--host", "127.0.0.1", "--nworkers", "2", "--nthreads", "1",
                                         "--no-dashboard"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True))
        from distributed import Client

        client = Client(scheduler_file=str(scheduler_file), timeout="60s")
        client.wait_for_workers(2, timeout=120)
        yield client
        client.close()
    finally:
        for process in reversed(started):  # each in its own session: its group holds its nannies and workers
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)


def _executing(dask_worker) -> list[str]:
    return [str(task.key) for task in dask_worker.state.executing]


cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module


@pytest.mark.slow
def test_a_dask_worker_killed_mid_shard_has_its_shard_rerun_and_nothing_is_lost(lab, in_process, dask_cluster):
    from trainlab.engine.executor import run_trials

    address = dask_cluster.scheduler.address
    outcome: dict = {}

    def train() -> None:
        try:
            outcome["results"] = run_trials(lab[1], RUNTIME, label="kill",
                                            placement=pl.Placement("dask", threads=1, scheduler=address))
        except BaseException as err:  # re-raised by the test below
            outcome["error"] = err

    trainer = threading.Thread(target=train)
    trainer.start()
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and trainer.is_alive() and time.monotonic() < deadline:
        busy = {w: keys for w, keys in dask_cluster.run(_executing).items() if keys}
        if busy:
            time.sleep(0.5)  # let the shard get into TensorFlow
            worker = sorted(busy)[0]
            victim = (worker, busy[worker], dask_cluster.run(os.getpid, workers=[worker])[worker])
            os.kill(victim[2], signal.SIGKILL)
        time.sleep(0.1)
    trainer.join(240)
    assert victim is not None, "no worker was seen executing a shard"
    if "error" in outcome:
        raise outcome["error"]
    assert_identical(outcome["results"], in_process)
    # the worker really died while it trained that shard (its nanny started a new process)
    assert victim[2] not in dask_cluster.run(os.getpid).values()
