"""Bad params stop a stage before training: one clear message naming the key, exit 2, no outputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import copy_repo, with_change, write_prepared

from trainlab import params as P
from trainlab.families import check_family

PYTHON = sys.executable


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("repo"))


def run_stage(repo, params: dict, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return subprocess.run([PYTHON, "-m", *args], cwd=repo, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def outputs(repo) -> list[str]:
    """Files the stages wrote under data/ (not the git-tracked data/raw_files/.gitkeep)."""
    return sorted(str(p.relative_to(repo)) for p in (repo / "data").rglob("*") if p.is_file()
                  and p.name != ".gitkeep") if (repo / "data").exists() else []


BAD_TRAIN_PARAMS = [
    ("seeds", 0, "seeds: expected an integer ≥ 1"),
    ("seeds", "five", "seeds: expected an integer"),
    ("families.capacity.optimizer.learning_rate", -0.01,
     "families.capacity.optimizer.learning_rate: expected a number > 0"),
    ("families.capacity.optimizer.name", "adamw", "families.capacity.optimizer.name: expected one of 'sgd'"),
    ("families.capacity.epochs", ..., "families.capacity.epochs: missing"),
    ("families.capacity.epoch", 10, "families.capacity.epoch: unknown key (did you mean 'epochs'?)"),
    ("families.capacity.data", "blobs21", "families.capacity.data: expected one of"),
    ("families.capacity.nodes", [], "families.capacity.nodes: expected a non-empty list"),
    ("families.capacity.nodes", [3, 0], "families.capacity.nodes[1]: expected an integer ≥ 1"),
    ("runtime.xla", "yes", "runtime.xla: expected true or false"),
    ("sequential.cap", 3, "sequential.cap: 3 is below start 10; allowed: an integer ≥ start"),
    ("sequential.spending", "wald", "sequential.spending: expected one of 'obrien_fleming', 'pocock'"),
    ("families.capacity.sequential", {"blok": 5},
     "families.capacity.sequential.blok: unknown key (did you mean 'block'?)"),
    ("families.capacity.loss", "hinge_loss", "families.capacity.loss: expected one of"),
    # NaN and inf pass every bound check (comparisons with NaN are false): refused as not finite
    ("families.capacity.optimizer.learning_rate", float("nan"),
     "families.capacity.optimizer.learning_rate: expected a finite number > 0, got nan"),
    ("families.capacity.optimizer.learning_rate", float("inf"),
     "families.capacity.optimizer.learning_rate: expected a finite number > 0, got inf"),
    ("families.capacity.optimizer.momentum", float("nan"),
     "families.capacity.optimizer.momentum: expected a finite number ≥ 0 and ≤ 1, got nan"),
    ("families.capacity.optimizer.decay", "inf", "families.capacity.optimizer.decay: expected a finite number"),
]


@pytest.mark.parametrize("key,value,message", BAD_TRAIN_PARAMS, ids=[b[0] + "=" + repr(b[1]) for b in BAD_TRAIN_PARAMS])
def test_bad_params_are_rejected_with_the_key_named(key, value, message):
    params = with_change(P.load(), key, value)
    with pytest.raises(P.ParamsError) as err:
        P.check_common(params)
        check_family(params, "capacity")
    assert message in str(err.value)


def test_train_stage_exits_2_with_one_line_and_writes_nothing_on_bad_params(repo):
    metrics = repo / "reports" / "metrics" / "capacity.json"
    before = metrics.read_text()
    params = with_change(P.load(), "seeds", 0)
    result = run_stage(repo, params, "stages.train", "capacity")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: seeds: expected an integer ≥ 1 and ≤ 1000, got 0"
    assert outputs(repo) == []
    assert metrics.read_text() == before


def test_unknown_family_is_rejected_listing_the_known_ones(repo):
    result = run_stage(repo, P.load(), "stages.train", "capcity")
    assert result.returncode == 2
    assert "family 'capcity' does not exist; known families: " in result.stderr
    assert "capacity" in result.stderr


@pytest.mark.parametrize("stage", ["stages.check", "stages.scale"])
def test_unknown_dataset_in_a_prepare_variant_stops_the_stage_before_it_writes_anything(repo, stage):
    params = with_change(P.load(), "prepare.blobs20.dataset", "blobs99")
    result = run_stage(repo, params, stage)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.startswith("error: prepare.blobs20.dataset: expected one of") and "blobs99" in line and "\n" not in line
    assert outputs(repo) == []  # not even the data sets, which were good


@pytest.mark.parametrize("stage", ["stages.check", "stages.generate"])
def test_bad_generator_argument_stops_the_stage_before_it_writes_anything(repo, stage):
    params = with_change(P.load(), "datasets.blobs20.cluster_std", -1)
    result = run_stage(repo, params, stage)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: datasets.blobs20.cluster_std: expected a number > 0")
    assert outputs(repo) == []


@pytest.mark.parametrize("key,value", [("datasets.blobs20.cluster_std", float("nan")),
                                       ("datasets.circles.noise", float("inf")),
                                       ("datasets.regression.noise", float("-inf"))])
def test_nan_and_inf_generator_arguments_are_rejected(key, value):
    from trainlab.data import datasets

    params = with_change(P.load(), key, value)
    with pytest.raises(P.ParamsError) as err:
        datasets.check_dataset(params, key.split(".")[1])
    assert str(err.value).startswith(f"{key}: expected a finite number")


def test_check_stage_refuses_epochs_that_cannot_run_before_dvc_deletes_any_output(repo):
    """A value of the right type that cannot run (the curves would not fit in memory) is refused by the first
    stage, so `dvc repro` stops before train@capacity's outputs are removed."""
    params = with_change(P.load(), "families.capacity.epochs", 1_000_000_000)
    result = run_stage(repo, params, "stages.check")
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.startswith("error: families.capacity.epochs: 1000000000 epochs × ") and "\n" not in line
    assert "at most" in line and outputs(repo) == []


def test_train_stage_refuses_a_nan_learning_rate_before_training(repo):
    params = with_change(P.load(), "families.capacity.optimizer.learning_rate", float("nan"))
    result = run_stage(repo, params, "stages.train", "capacity")
    assert result.returncode == 2
    assert result.stderr.strip() == \
        "error: families.capacity.optimizer.learning_rate: expected a finite number > 0, got nan"
    assert outputs(repo) == []


def test_unreachable_tracking_server_gives_a_clear_message_not_a_traceback(repo):
    result = run_stage(repo, P.load(), "stages.train", "capacity",
                       env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    assert result.returncode == 2
    assert "MLflow tracking store http://127.0.0.1:9 is unreachable" in result.stderr
    assert "Traceback" not in result.stderr
    assert outputs(repo) == []


LOSS_MISFITS = [  # (family, key, loss): one shared rule (common.LOSS_FIT) for every family
    ("capacity", "loss", "sparse_categorical_crossentropy"),  # one-hot targets: a TensorFlow traceback before
    ("capacity", "loss", "mean_squared_error"),
    ("capacity", "loss", "hinge"),
    ("data_scaling", "loss", "categorical_crossentropy"),  # a regression problem
    ("exploding_gradients", "loss", "binary_crossentropy"),
    ("batch_norm", "loss", "categorical_crossentropy"),  # a binary problem
    ("vanishing_gradients", "loss", "mean_absolute_error"),
    ("pretraining_supervised", "loss", "squared_hinge"),
    ("pretraining_unsupervised", "loss", "categorical_crossentropy"),  # the autoencoder reconstructs x
    ("pretraining_unsupervised", "classifier_loss", "mean_squared_error"),
]


@pytest.mark.parametrize("family,name,loss", LOSS_MISFITS, ids=[f"{f}.{n}={v}" for f, n, v in LOSS_MISFITS])
def test_a_loss_that_does_not_fit_the_task_is_rejected_in_every_family(family, name, loss):
    params = with_change(P.load(), f"families.{family}.{name}", loss)
    with pytest.raises(P.ParamsError) as err:
        check_family(params, family)
    assert str(err.value).startswith(f"families.{family}.{name}: {loss!r} does not fit")
    assert "expected one of" in str(err.value)


def test_every_family_accepts_its_own_params_and_the_losses_that_fit():
    params = P.load()
    for family in ("capacity", "pretraining_supervised"):
        for loss in ("categorical_crossentropy", "kl_divergence"):
            check_family(with_change(params, f"families.{family}.loss", loss), family)
    for family in ("adam", "learning_rate", "batch_size"):  # these encode targets as their loss asks
        check_family(with_change(params, f"families.{family}.loss", "sparse_categorical_crossentropy"), family)
    from trainlab import families
    for family in families.NAMES:
        check_family(params, family)


@pytest.mark.parametrize("family", ["capacity", "data_scaling", "batch_norm", "vanishing_gradients",
                                    "exploding_gradients", "pretraining_supervised", "pretraining_unsupervised"])
def test_batch_size_larger_than_the_train_split_is_rejected_in_every_family(family):
    params = with_change(P.load(), f"families.{family}.batch_size", 100000)
    with pytest.raises(P.ParamsError) as err:
        check_family(params, family)
    assert str(err.value).startswith(f"families.{family}.batch_size: expected a batch size from 1 to 500")


def test_memory_check_names_the_key_the_size_and_the_limit():
    P.check_memory("families.capacity.epochs", [100] * 60, limit=2**30)  # the default: 38 MB
    with pytest.raises(P.ParamsError) as err:
        P.check_memory("families.capacity.epochs", [100000] * 60, limit=2**30)
    message = str(err.value)
    assert message.startswith("families.capacity.epochs: 100000 epochs × 60 trials would hold about 35.8 GiB")
    assert "more than the 1.0 GiB of memory available; at most 2796 epochs fit" in message


@pytest.mark.slow  # a train stage process that loads TensorFlow
def test_train_stage_refuses_epochs_that_cannot_fit_in_memory_before_training(repo):
    params = with_change(P.load(), "families.capacity.epochs", 1000000000)
    write_prepared(repo, params, ["blobs20"])
    try:
        result = run_stage(repo, params, "stages.train", "capacity")
        written = outputs(repo)
    finally:
        shutil.rmtree(repo / "data")
    assert written == ["data/prepared/blobs20.npz"]
    assert result.returncode == 2, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: families.capacity.epochs: 1000000000 epochs × 120 trials would hold about "), line
    assert "GiB of memory available; at most" in line and "Traceback" not in result.stderr


def _npz_with(path, **arrays) -> None:
    import numpy as np

    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _broken_npz(kind: str, path) -> None:
    """Write ``path`` as a prepared file broken in one way."""
    import numpy as np

    rng = np.random.default_rng(0)
    good = {"x_train": rng.random((500, 2)), "y_train": np.zeros(500), "x_test": rng.random((500, 2)),
            "y_test": np.zeros(500), "y_scale": np.float64(1.0), "y_offset": np.float64(0.0)}
    if kind == "truncated":
        _npz_with(path, **good)
        path.write_bytes(path.read_bytes()[:3000])
    elif kind == "garbage":
        path.write_bytes(b"not a zip file at all\n" * 50)
    elif kind == "missing array":
        _npz_with(path, **{k: v for k, v in good.items() if k != "x_test"})
    elif kind == "wrong shape":
        _npz_with(path, **{**good, "x_test": rng.random((500, 3))})
    elif kind == "NaN in training data":
        x = good["x_train"].copy()
        x[7, 1] = np.nan
        _npz_with(path, **{**good, "x_train": x})


BROKEN_NPZ = [("truncated", "not a readable .npz file"), ("garbage", "not a readable .npz file"),
              ("missing array", "array x_test is missing"),
              ("wrong shape", "x_train has 2 features but x_test 3"),
              ("NaN in training data", "x_train holds NaN or inf (first at index (7, 1))")]


@pytest.mark.parametrize("kind,why", BROKEN_NPZ, ids=[b[0] for b in BROKEN_NPZ])
def test_a_broken_prepared_file_is_one_line_naming_it_and_how_to_remake_it(tmp_path, kind, why):
    from trainlab.data.prepared import load_prepared
    from trainlab.io import InputError

    path = tmp_path / "data" / "prepared" / "blobs3.npz"
    path.parent.mkdir(parents=True)
    _broken_npz(kind, path)
    with pytest.raises(InputError) as err:
        load_prepared("blobs3", root=tmp_path)
    message = str(err.value)
    assert message.startswith(f"{path}: {why}"), message
    assert message.endswith("; rerun `dvc repro -f scale`") and "\n" not in message


@pytest.mark.slow  # a train stage process that loads TensorFlow
def test_train_stage_with_a_garbage_prepared_file_exits_2_with_one_line(repo):
    path = repo / "data" / "prepared" / "blobs20.npz"
    path.parent.mkdir(parents=True)
    try:
        _broken_npz("garbage", path)
        result = run_stage(repo, P.load(), "stages.train", "capacity")
        written = outputs(repo)
    finally:
        shutil.rmtree(repo / "data")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {path}: not a readable .npz file (")
    assert line.endswith("); rerun `dvc repro -f scale`")
    assert written == ["data/prepared/blobs20.npz"]


def _truncated_store(path) -> None:
    """A real MLflow SQLite store cut in half (as a full disk or a killed copy leaves it)."""
    subprocess.run([PYTHON, "-c", "from mlflow.tracking import MlflowClient; "
                    f"MlflowClient(tracking_uri='sqlite:///{path}').search_experiments()"],
                   check=True, capture_output=True)
    path.write_bytes(path.read_bytes()[:200000])


STORES = [
    ("truncated mlflow.db", None, "is not a usable SQLite database", "to start a new store"),
    ("postgresql without a driver", "postgresql://user:secret@127.0.0.1:5432/mlflow",
     "the database driver 'psycopg' that postgresql:// uses is not installed; install psycopg[binary]", ""),
    ("file store", "file:///tmp/mlruns", "a file store (mlruns folder) is not supported", "use sqlite:///"),
]


@pytest.mark.parametrize("name,uri,why,remedy", STORES, ids=[s[0] for s in STORES])
def test_an_unusable_tracking_store_is_one_line_naming_it_before_training(repo, tmp_path, name, uri, why, remedy):
    if uri is None:
        _truncated_store(tmp_path / "mlflow.db")
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_stage(repo, P.load(), "stages.train", "capacity", env={"MLFLOW_TRACKING_URI": uri})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: MLflow tracking ") and why in line and remedy in line
    assert "secret" not in line  # a password in the URI is not printed
    assert outputs(repo) == []
