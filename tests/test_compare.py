"""`python -m tools.compare` on a temporary git + DVC repository with two commits whose params,
per-seed results, findings and figures differ; its error rate by simulation; and the CI workflow that
posts its Markdown, checked by actionlint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO
from scipy import stats

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
       "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
       "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
       "PYTHONPATH": str(REPO)}  # this checkout's tools, not those of whichever checkout the venv installed

DVC_YAML = {"stages": {"evaluate": {
    "cmd": "true",
    "params": ["seeds", "families.capacity"],
    "outs": [{"reports/figures": {"cache": False}}, {"reports/results": {"cache": False}},
             {"reports/findings": {"cache": False}}],
}}}
SEEDS = [1, 2, 3, 4, 5]
NOISE = [0.01, -0.02, 0.015, 0.0, -0.005]


def sh(repo: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, env=ENV, timeout=300)


def result_entry(values: list[float | None], seeds: list[int] = SEEDS) -> dict:
    finite = [v for v in values if v is not None]
    return {"val_accuracy": {"mean": sum(finite) / len(finite), "n": len(finite)}, "seeds": len(seeds),
            "per_seed": {"seed": seeds, "val_accuracy": values}}


def write(repo: Path, epochs: int, verdict: str, shift: float, wobble: float, figure: bytes,
          extra_figure: bool = False) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump({"seeds": 5, "families": {"capacity": {"epochs": epochs}}}))
    results = repo / "reports" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "capacity.json").write_text(json.dumps({
        "nodes=1": result_entry([0.14 + shift + n for n in NOISE]),          # moves by `shift`
        "nodes=7": result_entry([0.99 + wobble * n for n in NOISE]),         # only seed noise
        "nodes=<b>|x": result_entry([0.5, 0.5, 0.5, 0.5, None]),            # identical; a name to escape
    }))
    findings = repo / "reports" / "findings"
    findings.mkdir(parents=True, exist_ok=True)
    (findings / "capacity.json").write_text(json.dumps({"family": "capacity", "findings": [
        {"id": "one_node_fails", "claim": "1 node cannot learn | the <problem>", "verdict": verdict},
        {"id": "more_nodes_lower_train_loss", "claim": "More nodes, lower loss", "verdict": "holds"}]}))
    figures = repo / "reports" / "figures" / "capacity"
    figures.mkdir(parents=True, exist_ok=True)
    (figures / "nodes.png").write_bytes(figure)
    if extra_figure:
        (figures / "layers.png").write_bytes(b"layers")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """Two commits on main: epochs 100 -> 50, the one-node finding flips, nodes=1 moves by 0.5, nodes=7 only
    by seed noise, a figure changes and one is added. dvc.lock is never written: both commits are stale."""
    repo = tmp_path_factory.mktemp("compare")
    assert sh(repo, "git", "init", "-q", "-b", "main").returncode == 0
    assert sh(repo, str(BIN / "dvc"), "init", "-q").returncode == 0
    (repo / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    write(repo, epochs=100, verdict="holds", shift=0.0, wobble=1.0, figure=b"first")
    sh(repo, "git", "add", "-A")
    assert sh(repo, "git", "commit", "-qm", "base").returncode == 0
    write(repo, epochs=50, verdict="does not hold", shift=0.5, wobble=-1.0, figure=b"second", extra_figure=True)
    sh(repo, "git", "add", "-A")
    assert sh(repo, "git", "commit", "-qm", "head").returncode == 0
    return repo


def compare(repo: Path, *args: str) -> str:
    result = sh(repo, sys.executable, "-m", "tools.compare", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def section(markdown: str, title: str) -> str:
    """The text of the ### section whose title starts with ``title``."""
    for part in markdown.split("\n### ")[1:]:
        if part.startswith(title):
            return part
    raise AssertionError(f"no section {title!r} in:\n{markdown}")


def test_diff_leads_with_params_then_findings_then_what_moved_beyond_noise(repo, tmp_path):
    markdown = compare(repo, "HEAD~1", "HEAD", "--figures-dir", str(tmp_path))
    params = section(markdown, "Params")
    assert "| families.capacity.epochs | 100 | 50 |" in params and "seeds" not in params
    findings = section(markdown, "Findings")
    assert "| capacity | 1 node cannot learn \\| the &lt;problem&gt; | ✅ holds | ❌ does not hold |" in findings
    assert "More nodes" not in findings
    moved = section(markdown, "Results beyond seed noise")
    rows = [line for line in moved.splitlines() if line.startswith("| capacity")]
    assert len(rows) == 1
    assert rows[0].startswith("| capacity | nodes=1 | val_accuracy | 0.14 | 0.64 | +0.5 [+0.5, +0.5]")
    assert "exact: every seed moved by the same amount" in rows[0]  # no noise to judge against
    # nodes=7 (the identical configuration is no change at all), with what it could have detected
    assert "1 values: change not detected (smallest shift each comparison would detect" in moved
    assert "family-wise alpha 0.05" in moved
    figures = section(markdown, "Figures")
    assert "**reports/figures/capacity/nodes.png**" in figures and "![before](" in figures
    assert "**reports/figures/capacity/layers.png**" in figures and "| — | ![after](" in figures
    assert (tmp_path / "HEAD~1" / "reports/figures/capacity/nodes.png").read_bytes() == b"first"


def test_json_has_the_documented_keys(repo):
    diff = json.loads(compare(repo, "HEAD~1", "HEAD", "--format", "json"))
    assert set(diff) == {"params", "stale", "verdicts", "beyond_noise", "within_noise", "not_detected", "figures"}
    assert [m["config"] for m in diff["not_detected"]] == ["nodes=7"]
    assert diff["not_detected"][0]["detectable_shift"] > 0
    assert diff["params"] == ["families.capacity.epochs"]
    assert diff["stale"] is True  # results committed without dvc.lock: they match nothing
    assert [(m["family"], m["config"], m["metric"]) for m in diff["beyond_noise"]] == [
        ("capacity", "nodes=1", "val_accuracy")]
    assert diff["beyond_noise"][0]["p"] < 0.05 and diff["within_noise"] == 1
    assert [v["finding"] for v in diff["verdicts"]] == ["one_node_fails"]


def test_diff_defaults_to_main_against_the_workspace(repo):
    params_file = repo / "params.yaml"
    original = params_file.read_text()
    try:
        params_file.write_text(original.replace("seeds: 5", "seeds: 7"))
        markdown = compare(repo)
    finally:
        params_file.write_text(original)
    assert markdown.startswith("## trainlab: main → workspace")
    assert "| seeds | 5 | 7 |" in section(markdown, "Params")
    assert "Stale" in markdown
    assert "No finding changed its outcome." in section(markdown, "Findings")
    assert "No configuration moved beyond seed noise." in section(markdown, "Results beyond seed noise")
    assert "No figure changed." in section(markdown, "Figures")


def test_diff_of_an_unknown_revision_fails_with_a_message(repo):
    result = sh(repo, sys.executable, "-m", "tools.compare", "no-such-branch")
    assert result.returncode == 2 and result.stderr.startswith("error:")


def test_seed_noise_alone_is_called_moved_at_most_alpha_of_the_time():
    """Monte Carlo: two revisions each drawing 5 other seeds from one distribution, 30 configurations per diff,
    Welch + Holm: the share of diffs calling any configuration moved stays at or below alpha = 0.05, for normal
    and for bimodal (20 % of seeds fail) outcomes. Power at the strictest Holm level (alpha / 30) for a shift
    of 5 standard deviations is above 0.7 (measured 0.89 at alpha / 50; 0.38 for 3 standard deviations:
    5 seeds see large moves only)."""
    from tools.compare import compare_seeds, holm

    rng = np.random.default_rng(7)
    old, new = [1, 2, 3, 4, 5], [6, 7, 8, 9, 10]

    def draw(kind: str, n: int = 5) -> list[float]:
        if kind == "normal":
            return list(rng.normal(0.8, 0.05, n))
        return list(np.where(rng.random(n) < 0.2, rng.normal(0.3, 0.05, n), rng.normal(0.95, 0.01, n)))

    def any_moved(kind: str) -> bool:
        return any(holm([compare_seeds({"seed": old, "values": draw(kind)},
                                       {"seed": new, "values": draw(kind)})[0] for _ in range(30)]))

    repetitions = 200
    for kind in ("normal", "bimodal"):
        false = sum(any_moved(kind) for _ in range(repetitions))
        upper = stats.binomtest(false, repetitions).proportion_ci(0.95).high
        assert false / repetitions <= 0.05 or upper < 0.08, (kind, false)  # at or below alpha, within MC error
    power = sum(compare_seeds({"seed": old, "values": draw("normal")},
                              {"seed": new, "values": [v + 0.25 for v in draw("normal")]})[0] < 0.05 / 30
                for _ in range(repetitions)) / repetitions
    assert power > 0.7


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
    assert "updateComment" in text and "createComment" in text and "trainlab-diff" in text


def test_params_read_as_dvc_reads_them_so_exponents_are_numbers_not_a_change():
    # PyYAML (YAML 1.1) reads 1e-8 as a string, DVC (YAML 1.2) as a number: every stage with such a param
    # would be called stale.
    from tools.compare import load_yaml

    assert load_yaml("epsilon: 1e-8\nrates: [1.0e-4, 1e-7]\n") == {"epsilon": 1e-8, "rates": [1e-4, 1e-7]}


def test_a_change_in_diverged_seeds_is_compared_even_though_the_metric_leaves_them_out():
    from scipy import stats as st

    from tools.compare import diverged_count
    base = {"seeds": 20, "diverged": 0, "per_seed": {"seed": list(range(20)), "val_accuracy": [0.9] * 20}}
    head = {"seeds": 20, "diverged": 12,
            "per_seed": {"seed": list(range(20)), "val_accuracy": [0.9] * 8 + [None] * 12}}
    assert diverged_count(base, "val_accuracy") == (0, 20) and diverged_count(head, "val_accuracy") == (12, 20)
    assert st.fisher_exact([[0, 20], [12, 8]]).pvalue < 0.001


def test_an_equal_shift_is_exact_and_a_shift_within_rounding_is_no_change():
    from tools.compare import EXACT, compare_seeds

    base = {"seed": [1, 2, 3], "values": [0.5, 0.6, 0.7]}
    p, effect, _, test = compare_seeds(base, {"seed": [1, 2, 3], "values": [0.51, 0.61, 0.71]})
    assert test == EXACT and p == 0 and effect == pytest.approx(0.01)
    p, _, _, test = compare_seeds(base, {"seed": [1, 2, 3], "values": [0.5 + 1e-9, 0.6, 0.7 - 1e-9]})
    assert test == EXACT and p == 1


def test_paired_seed_noise_alone_is_called_moved_at_most_alpha_of_the_time():
    """The path that runs: the same 10 seeds in both revisions, 30 configurations per diff, paired t-test +
    Holm. Under no change (each seed's value redrawn around the same seed effect), 400 diffs: the share
    calling any configuration moved is at most 0.075 (a true 0.05 exceeds it with probability 0.002)."""
    from tools.compare import compare_seeds, holm

    rng = np.random.default_rng(8)
    seeds = list(range(1, 11))

    def any_moved() -> bool:
        ps = []
        for _ in range(30):
            seed_effect = rng.normal(0.8, 0.05, 10)
            ps.append(compare_seeds({"seed": seeds, "values": list(seed_effect + rng.normal(0, 0.01, 10))},
                                    {"seed": seeds, "values": list(seed_effect + rng.normal(0, 0.01, 10))})[0])
        return any(holm(ps))

    repetitions = 400
    false = sum(any_moved() for _ in range(repetitions))
    print(f"\npaired compare, 30 configurations: any false 'moved' in {false} of {repetitions} diffs")
    assert false / repetitions <= 0.075


def test_every_outcome_the_findings_can_have_has_a_mark():
    from tools.compare import MARK
    from trainlab.stats import findings as F

    outcomes = {F.HOLDS, F.DOES_NOT_HOLD, F.NOT_JUDGED, F.EQUIVALENT, F.SEED_DEPENDENT, F.INCONCLUSIVE, F.UNDECIDED,
                F.BOOK_DATA_ONLY, *F.CODE}
    assert outcomes <= {outcome for outcome, mark in MARK.items() if mark}


def test_a_figure_both_revisions_have_is_shown_on_both_sides_without_figure_flags(repo):
    # run locally (no --figures-url, no --figures-dir): a committed figure lives only in git, and "—" is what
    # a figure the revision lacks shows, so a changed figure must not read as added or removed
    figures = section(compare(repo, "HEAD~1", "HEAD"), "Figures")
    changed = "| ![before](dvc_plots/diff/HEAD~1/reports/figures/capacity/nodes.png) " \
              "| ![after](dvc_plots/diff/HEAD/reports/figures/capacity/nodes.png) |"
    assert changed in figures
    assert (repo / "dvc_plots/diff/HEAD~1/reports/figures/capacity/nodes.png").read_bytes() == b"first"
    assert "| — | ![after](dvc_plots/diff/HEAD/reports/figures/capacity/layers.png) |" in figures  # added


def test_changed_outcomes_say_what_another_seed_draw_alone_changes():
    from tools.compare import SEED_DRAW_OUTCOMES, markdown

    nothing = {"params": {}, "stale": False, "stale_stages": [], "verdicts": [], "beyond_noise": [],
               "within_noise": 0, "not_detected": [], "figures": []}
    flipped = {**nothing, "verdicts": [{"family": "capacity", "finding": "one_node_fails", "claim": "1 node fails",
                                        "base": "holds", "head": "undecided at the cap"}]}
    findings = section(markdown(flipped, "main", None, None, None), "Findings")
    assert SEED_DRAW_OUTCOMES in findings and "77 of 86" in findings
    assert findings.index("| capacity |") < findings.index(SEED_DRAW_OUTCOMES)  # under the changes it reads
    assert SEED_DRAW_OUTCOMES not in markdown(nothing, "main", None, None, None)


@pytest.mark.parametrize("constant_side", ["base", "head"])
def test_welch_with_one_side_the_same_at_every_seed_warns_nothing_and_equals_welch(constant_side):
    import warnings

    from tools.compare import compare_seeds

    constant = {"seed": [1, 2, 3, 4, 5], "values": [1.0] * 5}       # every seed reached 1.0
    varying = {"seed": [6, 7, 8, 9, 10], "values": [0.97, 1.0, 0.99, 0.96, 0.98]}
    base, head = (constant, varying) if constant_side == "base" else (varying, constant)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p, effect, ci, test = compare_seeds(base, head)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reference: SciPy's own Welch test, which warns here
        welch = stats.ttest_ind(head["values"], base["values"], equal_var=False)
    assert p == pytest.approx(welch.pvalue) and p < 0.05
    assert effect == pytest.approx(np.mean(head["values"]) - np.mean(base["values"]))
    assert ci == pytest.approx(tuple(welch.confidence_interval(0.95)))
    assert test.startswith("Welch t-test") and constant_side in test
