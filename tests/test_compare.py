"""`python -m stages.compare` on a temporary git + DVC repository with two commits whose params,
metrics and figures differ; and the CI workflow that posts its Markdown, checked by actionlint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
       "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
       "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"}

DVC_YAML = {"stages": {"evaluate": {
    "cmd": "true",
    "params": ["seeds", "families.capacity"],
    "outs": [{"reports/figures": {"cache": False}}],
    "metrics": [{"reports/metrics/findings.json": {"cache": False}},
                {"reports/metrics/capacity.json": {"cache": False}}],
}}}


def sh(repo: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, env=ENV, timeout=120)


def write(repo: Path, epochs: int, verdict: int, p_value: float, accuracy: float, figure: bytes,
          extra_figure: bool = False) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump({"seeds": 5, "families": {"capacity": {"epochs": epochs}}}))
    metrics = repo / "reports" / "metrics"
    metrics.mkdir(parents=True, exist_ok=True)
    (metrics / "findings.json").write_text(json.dumps({
        "total": {"findings": 2, "holds": 1 + (verdict == 1)},
        "capacity": {"one_node_fails": {"verdict": verdict, "p_value": p_value},
                     "more_nodes_lower_train_loss": {"verdict": 1, "p_value": 0.001}}}))
    (metrics / "capacity.json").write_text(json.dumps({"nodes=1": {"val_accuracy": {"mean": accuracy, "n": 5}},
                                                       "nodes=7": {"val_accuracy": {"mean": 0.99, "n": 5}}}))
    findings = repo / "reports" / "findings"
    findings.mkdir(parents=True, exist_ok=True)
    (findings / "capacity.json").write_text(json.dumps({"family": "capacity", "findings": [
        {"id": "one_node_fails", "claim": "1 node cannot learn the problem"},
        {"id": "more_nodes_lower_train_loss", "claim": "More nodes, lower loss"}]}))
    figures = repo / "reports" / "figures" / "capacity"
    figures.mkdir(parents=True, exist_ok=True)
    (figures / "nodes.png").write_bytes(figure)
    if extra_figure:
        (figures / "layers.png").write_bytes(b"layers")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """Two commits on main: epochs 100 -> 50, the one-node finding flips, nodes=1 accuracy and a figure change."""
    repo = tmp_path_factory.mktemp("compare")
    assert sh(repo, "git", "init", "-q", "-b", "main").returncode == 0
    assert sh(repo, str(BIN / "dvc"), "init", "-q").returncode == 0
    (repo / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    write(repo, epochs=100, verdict=1, p_value=0.0001, accuracy=0.14, figure=b"first")
    sh(repo, "git", "add", "-A")
    assert sh(repo, "git", "commit", "-qm", "base").returncode == 0
    write(repo, epochs=50, verdict=-1, p_value=0.002, accuracy=0.62, figure=b"second", extra_figure=True)
    sh(repo, "git", "add", "-A")
    assert sh(repo, "git", "commit", "-qm", "head").returncode == 0
    return repo


def compare(repo: Path, *revisions: str) -> str:
    result = sh(repo, sys.executable, "-m", "stages.compare", *revisions)
    assert result.returncode == 0, result.stderr
    return result.stdout


def section(markdown: str, title: str) -> str:
    """The text of the ### section whose title starts with ``title``."""
    for part in markdown.split("\n### ")[1:]:
        if part.startswith(title):
            return part
    raise AssertionError(f"no section {title!r} in:\n{markdown}")


def test_diff_between_two_commits_shows_params_flips_metrics_and_figures(repo):
    markdown = compare(repo, "HEAD~1", "HEAD")
    params = section(markdown, "Params")
    assert "families.capacity.epochs" in params and "100" in params and "50" in params
    assert "seeds" not in params  # unchanged params are left out
    flips = section(markdown, "Findings that changed verdict")
    assert "| capacity | 1 node cannot learn the problem | ✅ holds | ❌ does not hold |" in flips
    assert "More nodes" not in flips
    metrics = section(markdown, "Metrics that changed")
    rows = [line for line in metrics.splitlines() if line.startswith("| reports/")]
    assert rows[0].startswith("| reports/metrics/findings.json |")  # findings first
    assert any("nodes=1.val_accuracy.mean | 0.14 | 0.62" in row for row in rows)
    assert not any("nodes=7" in row or "more_nodes_lower_train_loss" in row for row in rows)  # only what changed
    figures = section(markdown, "Figures that changed")
    assert "changed: `reports/figures/capacity/nodes.png`" in figures
    assert "added: `reports/figures/capacity/layers.png`" in figures


def test_diff_defaults_to_main_against_the_workspace(repo):
    params_file = repo / "params.yaml"
    original = params_file.read_text()
    try:
        params_file.write_text(original.replace("seeds: 5", "seeds: 7"))
        markdown = compare(repo)
    finally:
        params_file.write_text(original)
    assert markdown.startswith("## trainlab: main → workspace")
    assert "| seeds " in section(markdown, "Params")
    assert "No finding changed its verdict." in section(markdown, "Findings")
    assert "No metric changed." in section(markdown, "Metrics")
    assert "No figure changed." in section(markdown, "Figures")


def test_diff_of_an_unknown_revision_fails_with_a_message(repo):
    result = sh(repo, sys.executable, "-m", "stages.compare", "no-such-branch")
    assert result.returncode == 2 and result.stderr.startswith("error:")


def test_workflow_is_valid_for_actionlint():
    actionlint = shutil.which("actionlint", path=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    if actionlint is None:
        pytest.skip("actionlint not found: `pip install -e '.[dev]'` installs it")
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    assert workflows
    result = subprocess.run([actionlint, "-no-color", *map(str, workflows)], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    text = "\n".join(w.read_text() for w in workflows)
    assert "pull_request" in text and "bash .ci/run" in text and "GITHUB_STEP_SUMMARY" in text


def test_markdown_cells_escape_pipes_and_html():
    from stages.compare import md

    assert md("a | b") == "a \\| b"
    assert md("<img src=x onerror=alert(1)> & co") == "&lt;img src=x onerror=alert(1)&gt; &amp; co"
    assert md("two\nlines") == "two lines"


def test_a_params_value_with_a_pipe_or_html_keeps_the_table_intact(repo):
    params_file = repo / "params.yaml"
    original = params_file.read_text()
    try:
        params_file.write_text(original.replace("seeds: 5", "seeds: 5\nnote: 'a | b <script>x</script>'"))
        markdown = compare(repo)
    finally:
        params_file.write_text(original)
    rows = [line for line in section(markdown, "Params").splitlines() if line.startswith("|")]
    note = next(line for line in rows if "| note |" in line)
    assert "a \\| b &lt;script&gt;x&lt;/script&gt;" in note and "<script>" not in markdown
    unescaped = [line.replace("\\|", "").count("|") for line in rows]
    assert set(unescaped) == {5}  # every row has the header's four cells
