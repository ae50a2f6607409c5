"""Bad params stop a stage before training: one clear message naming the key, exit 2, no outputs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from conftest import copy_repo, with_change

from stages import params as P
from stages.families import check_family

PYTHON = sys.executable


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("repo"))


def run_stage(repo, params: dict, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return subprocess.run([PYTHON, "-m", *args], cwd=repo, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def outputs(repo) -> list[str]:
    return sorted(str(p.relative_to(repo)) for p in (repo / "data").rglob("*") if p.is_file()) \
        if (repo / "data").exists() else []


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
    ("sequential.cap", 3, "sequential.cap: 3 is below start 5; allowed: an integer ≥ start"),
    ("sequential.spending", "wald", "sequential.spending: expected one of 'obrien_fleming', 'pocock'"),
    ("families.capacity.sequential", {"blok": 5},
     "families.capacity.sequential.blok: unknown key (did you mean 'block'?)"),
    ("families.capacity.loss", "hinge_loss", "families.capacity.loss: expected one of"),
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


def test_unknown_dataset_in_a_prepare_variant_is_rejected(repo):
    params = with_change(P.load(), "prepare.blobs20.dataset", "blobs99")
    result = run_stage(repo, params, "stages.prepare", "blobs20")
    assert result.returncode == 2
    assert "prepare.blobs20.dataset: expected one of" in result.stderr and "blobs99" in result.stderr
    assert not (repo / "data" / "prepared").exists()


def test_bad_generator_argument_is_rejected(repo):
    params = with_change(P.load(), "datasets.blobs20.cluster_std", -1)
    result = run_stage(repo, params, "stages.generate", "blobs20")
    assert result.returncode == 2
    assert "datasets.blobs20.cluster_std: expected a number > 0" in result.stderr
    assert not (repo / "data" / "raw").exists()


def test_unreachable_tracking_server_gives_a_clear_message_not_a_traceback(repo):
    result = run_stage(repo, P.load(), "stages.train", "capacity",
                       env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    assert result.returncode == 2
    assert "MLflow tracking store http://127.0.0.1:9 is unreachable" in result.stderr
    assert "Traceback" not in result.stderr
    assert outputs(repo) == []
