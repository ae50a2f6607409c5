"""The PR diff on real pipeline runs: other seeds of the same distribution stay within noise, a real change
(fewer epochs) moves configurations beyond it, and results that no longer match their params are stale."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from conftest import copy_repo
from test_pipeline import dvc, tiny_params

pytestmark = pytest.mark.slow  # a DVC pipeline in two revisions of a temporary repository

GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]


@pytest.fixture(scope="module")
def committed(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("diff"))
    (repo / "dvc.lock").unlink(missing_ok=True)
    # capacity: 20 epochs, so that 2 epochs is a real change; 5 seeds, so that seed noise can be told apart
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(seeds=5, capacity_epochs=20), sort_keys=False))
    dvc(repo, "repro")
    subprocess.run([*GIT, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", "main", "--no-verify"], cwd=repo, check=True)
    subprocess.run(["git", "branch", "-M", "main"], cwd=repo, check=True)
    return repo


def changed_and_rerun(repo, key: str, value) -> dict:
    """Set params ``key``, rerun only capacity's stages, and return `make diff FORMAT=json` against main."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    node = params
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        dvc(repo, "repro", "train@capacity")
        result = subprocess.run([sys.executable, "-m", "tools.compare", "main", "--format", "json"], cwd=repo,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)
    finally:
        subprocess.run(["git", "checkout", "-q", "--", "."], cwd=repo, check=True)
        dvc(repo, "checkout", "-q")


def test_other_seeds_stay_within_noise_and_the_unrerun_family_is_stale(committed):
    diff = changed_and_rerun(committed, "seed", 101)
    assert diff["params"] == ["seed"]
    assert diff["stale"] is True  # batch_norm depends on seed and was not rerun
    assert not [m for m in diff["beyond_noise"] if m["family"] == "capacity"], diff["beyond_noise"]
    assert diff["within_noise"] > 0


def test_fewer_epochs_move_capacity_beyond_noise(committed):
    diff = changed_and_rerun(committed, "families.capacity.epochs", 2)
    assert diff["params"] == ["families.capacity.epochs"]
    moved = {m["config"] for m in diff["beyond_noise"] if m["family"] == "capacity"}
    assert moved, diff
