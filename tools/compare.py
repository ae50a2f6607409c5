"""What changed between two revisions of the lab, judged against seed noise (for a pull request).

Usage: ``python -m tools.compare [BASE] [HEAD] [--format md|json] [--figures-url TEMPLATE]``
(default: ``main`` against the workspace; ``make diff [BASE=rev] [HEAD=rev] [FORMAT=json]``).

In this order:

1. **Params** that changed (``dvc params diff``).
2. **Stale**: a warning when HEAD's committed results do not match its params and code (the
   workspace: ``dvc status``; a revision: its dvc.lock against its params.yaml and code files).
3. **Findings** whose outcome changed (``reports/findings/<family>.json``), and what another draw of seeds
   alone does to outcomes (measured: ``SEED_DRAW_OUTCOMES``).
4. **Configurations that moved beyond seed noise**: every result is a draw over seeds, so a
   configuration's final test metric (the headline metric) is compared from the per-seed values
   both revisions committed (``reports/results/<family>.json``): a paired t-test over the seeds
   both used where the seed lists are the same (same seed: same initial weights and batch order),
   else Welch's t-test; and its count of diverged seeds, by Fisher's exact test (a change that makes
   seeds diverge hides from the first test, which only sees the seeds that did not). Holm's procedure
   over all these comparisons keeps the chance of calling any unchanged configuration "moved" at or
   below alpha = 0.05 (family-wise, across every configuration of every family). Identical values
   (within the results' six significant digits) are no change; every seed moved by the same amount
   is an exact change, listed without a test. Everything else is one line: "change not detected",
   with the smallest shift the comparison could have detected (80 % power at the strictest Holm level).
5. **Figures** that changed, before and after, as images (a revision's copy is written to ``dvc_plots/diff/``
   unless ``--figures-url`` or ``--figures-dir`` says where; "—": the revision has no such figure).

``--format json`` prints one object: ``params`` (changed keys), ``stale`` (bool), ``verdicts``
(changed findings, with each side's estimate), ``beyond_noise`` (list of {family, config, metric, base, head,
p}; metric ``diverged`` for a divergence count), ``within_noise`` (count of changes not detected),
``not_detected`` (list of {family, config, metric, detectable_shift}), ``figures`` (changed paths).
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from trainlab.stats.results import HEADLINE_METRICS

ALPHA = 0.05
RESULTS, FINDINGS, FIGURES = "reports/results", "reports/findings", "reports/figures"
MARK = {"holds": "✅", "equivalent": "🟰", "does not hold": "❌", "seed-dependent": "🎲", "undecided at the cap": "❔",
        "undecided": "❔", "not judged": "⏸️", "book data only": "📖"}
POWER = 0.8  # the power at which "the smallest detectable shift" is stated
# What another draw of seeds alone does to the outcomes, measured: the full pipeline in a fresh clone at another
# base seed, no other change, against main's committed findings (docs/statistics.md, "Verdict stability").
SEED_DRAW_OUTCOMES = ("Another base seed alone, with no other change, left 77 of 86 outcomes as they were; each of "
                      "the 9 that changed went between a verdict and undecided, none from one verdict to another. "
                      "So an outcome moving to or from undecided above is within what another draw of seeds "
                      "gives; a verdict turning into another verdict is not.")


class CompareError(RuntimeError):
    """A git or dvc command failed; the message carries its error output."""


def tool(name: str) -> str:
    """The executable beside this Python (the project's venv), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise CompareError(f"`{' '.join(command)}` failed: {(result.stderr or result.stdout).strip()[-2000:]}")
    return result.stdout


def cell(text: object) -> str:
    """Text safe inside a Markdown table cell: no HTML, no column breaks, no line breaks."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def revisions(base: str, head: str | None) -> list[str]:
    return [base] if head is None else [base, head]


def read(path: str, rev: str | None) -> str | None:
    """A file's text at a revision (None: the workspace); None when it is not there."""
    if rev is None:
        return Path(path).read_text() if Path(path).exists() else None
    try:
        return run("git", "show", f"{rev}:{path}")
    except CompareError:
        return None


def read_bytes(path: str, rev: str | None) -> bytes | None:
    if rev is None:
        return Path(path).read_bytes() if Path(path).exists() else None
    result = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True)
    return result.stdout if result.returncode == 0 else None


def listing(folder: str, rev: str | None) -> list[str]:
    """The files directly in ``folder`` at a revision (recursively for the workspace's figures)."""
    if rev is None:
        return sorted(p.as_posix() for p in Path(folder).rglob("*") if p.is_file()) if Path(folder).exists() else []
    try:
        return sorted(run("git", "ls-tree", "-r", "--name-only", rev, "--", folder).split())
    except CompareError:
        return []


def load_json(folder: str, rev: str | None) -> dict[str, dict]:
    """``{stem: parsed json}`` for the json files of a folder at a revision."""
    out = {}
    for path in listing(folder, rev):
        if path.endswith(".json") and path.count("/") == folder.count("/") + 1:
            out[Path(path).stem] = json.loads(read(path, rev) or "{}")
    return out


# ---------------------------------------------------------------- 1. params, 2. stale

def changed_params(base: str, head: str | None) -> dict:
    out = run(tool("dvc"), "params", "diff", *revisions(base, head), "--all", "--json").strip()
    diff = json.loads(out) if out else {}
    return {key: change for changes in diff.values() for key, change in changes.items()
            if change.get("old") != change.get("new")}


def _lookup(params: dict, dotted: str):
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def load_yaml(text: str):
    """YAML as DVC reads it (1.2: ``1e-8`` is a number; PyYAML's 1.1 would read a string and call it changed)."""
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(text)


def stale_stages(head: str | None) -> list[str]:
    """The stages whose committed outputs do not match their params or code at ``head``."""
    if head is None:
        out = run(tool("dvc"), "status", "--json").strip()
        return sorted(json.loads(out) if out else {})
    lock_text = read("dvc.lock", head)
    if lock_text is None:
        return ["(no dvc.lock: nothing was reproduced)"] if read("dvc.yaml", head) is not None else []
    lock = load_yaml(lock_text) or {}
    params = load_yaml(read("params.yaml", head) or "{}") or {}
    stale = []
    for name, stage in (lock.get("stages") or {}).items():
        recorded = (stage.get("params") or {}).get("params.yaml", {})
        moved = any(_lookup(params, key) != value for key, value in recorded.items())
        for dep in stage.get("deps", []):
            if dep["path"].startswith(("stages/", "trainlab/")) and dep["path"].endswith(".py"):  # files, not folders
                content = read_bytes(dep["path"], head)
                moved |= content is None or hashlib.md5(content).hexdigest() != dep.get("md5")
        if moved:
            stale.append(name)
    return sorted(stale)


# ---------------------------------------------------------------- 3. findings

def outcomes(rev: str | None) -> dict[tuple[str, str], dict]:
    return {(family, f["id"]): f for family, report in load_json(FINDINGS, rev).items()
            for f in report.get("findings", [])}


def changed_verdicts(base: str, head: str | None) -> list[dict]:
    before, after = outcomes(base), outcomes(head)
    changed = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key, {}).get("verdict"), after.get(key, {}).get("verdict")
        if old != new:
            claim = (after.get(key) or before.get(key))["claim"]
            changed.append({"family": key[0], "finding": key[1], "claim": claim, "base": old, "head": new,
                            "base_estimate": estimate_text(before.get(key)),
                            "head_estimate": estimate_text(after.get(key))})
    return changed


def estimate_text(finding: dict | None) -> str | None:
    """ "difference (paired) -0.0152 [-0.0223, -0.0081]" from a finding's ``estimate``."""
    e = (finding or {}).get("estimate")
    if not isinstance(e, dict) or e.get("value") is None:
        return None
    interval = f" [{e['low']:.3g}, {e['high']:.3g}]" if e.get("low") is not None and e.get("high") is not None else ""
    return f"{e['kind']} {e['value']:.3g}{interval}"


# ---------------------------------------------------------------- 4. results against seed noise

def compare_seeds(base: dict, head: dict) -> tuple[float, float, tuple[float, float] | None, str]:
    """(p, effect = head - base, 95 % interval, test) for one metric's per-seed final values."""
    same_seeds = list(base["seed"]) == list(head["seed"])
    if same_seeds:
        pairs = [(b, h) for b, h in zip(base["values"], head["values"]) if b is not None and h is not None]
        x = np.array([h for _, h in pairs], dtype=float)
        y = np.array([b for b, _ in pairs], dtype=float)
        test = "paired t-test over shared seeds"
    else:
        x = np.array([v for v in head["values"] if v is not None], dtype=float)
        y = np.array([v for v in base["values"] if v is not None], dtype=float)
        test = "Welch t-test"
    if len(x) < 2 or len(y) < 2:
        return math.nan, math.nan, None, test
    effect = float(np.mean(x) - np.mean(y))
    rounding = RESOLUTION * max(1.0, float(np.abs(y).max()))  # differences this small are the results' rounding
    spread = np.ptp(x - y) if same_seeds else max(np.ptp(x), np.ptp(y))
    if spread <= rounding:
        # every seed moved by the same amount (or not at all): no noise to judge against, an exact change
        return (0.0 if abs(effect) > rounding else 1.0), effect, (effect, effect), EXACT
    if not same_seeds and min(np.ptp(x), np.ptp(y)) <= rounding:
        return welch_against_a_constant(x, y)
    r = stats.ttest_rel(x, y) if same_seeds else stats.ttest_ind(x, y, equal_var=False)
    ci = r.confidence_interval(0.95)
    return float(r.pvalue), effect, (float(ci.low), float(ci.high)), test


def welch_against_a_constant(x: np.ndarray, y: np.ndarray) -> tuple[float, float, tuple[float, float], str]:
    """Welch's test of head ``x`` against base ``y`` when one of them has the same value at every seed (a model
    that reaches 1.0 or collapses to one prediction at every seed). Its variance is 0, so Welch's statistic is
    the one-sample t-test of the other sample against that value, with that sample's n - 1 degrees of freedom;
    SciPy's two-sample test would compute the zero variance from rounding and warn of precision loss."""
    head_constant = np.ptp(x) <= np.ptp(y)
    constant, varying = (float(np.mean(x)), y) if head_constant else (float(np.mean(y)), x)
    r = stats.ttest_1samp(varying, constant)
    ci = r.confidence_interval(0.95)
    low, high = (constant - float(ci.high), constant - float(ci.low)) if head_constant else \
        (float(ci.low) - constant, float(ci.high) - constant)
    side = "head" if head_constant else "base"
    return float(r.pvalue), float(np.mean(x) - np.mean(y)), (low, high), \
        f"Welch t-test ({side} the same at every seed: one-sample t-test against it)"


RESOLUTION = 1e-6  # the results' six significant digits: smaller differences are rounding, not change
EXACT = "exact: every seed moved by the same amount (no test)"


def detectable_shift(base: dict, head: dict, level: float, power: float = POWER) -> float | None:
    """The smallest shift of the mean a comparison at two-sided ``level`` detects with ``power``: from the
    spread of the paired differences (same seeds) or of both samples (Welch), t quantiles."""
    same_seeds = list(base["seed"]) == list(head["seed"])
    if same_seeds:
        d = np.array([h - b for b, h in zip(base["values"], head["values"]) if b is not None and h is not None])
        n, sd = len(d), (float(np.std(d, ddof=1)) if len(d) > 1 else math.nan)
        scale = sd / math.sqrt(n) if n > 1 else math.nan
    else:
        x = np.array([v for v in head["values"] if v is not None], dtype=float)
        y = np.array([v for v in base["values"] if v is not None], dtype=float)
        n = min(len(x), len(y))
        scale = math.sqrt(np.var(x, ddof=1) / len(x) + np.var(y, ddof=1) / len(y)) if n > 1 else math.nan
    if not math.isfinite(scale) or n < 2:
        return None
    return float((stats.t.isf(level / 2, n - 1) + stats.t.ppf(power, n - 1)) * scale)


def diverged_count(entry: dict, metric: str) -> tuple[int, int] | None:
    """(diverged seeds, seeds) of a configuration: its ``diverged`` count, else its per-seed values left None."""
    seeds = entry.get("seeds")
    if entry.get("diverged") is not None and seeds:
        return int(entry["diverged"]), int(seeds)
    sample = per_seed(entry, metric)
    if sample is None:
        return None
    return sum(v is None for v in sample["values"]), len(sample["values"])


def holm(p_values: list[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down procedure: which hypotheses are rejected, family-wise error ≤ alpha."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if not p_values[i] < alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected


def per_seed(entry: dict, metric: str) -> dict | None:
    values = (entry.get("per_seed") or {})
    if metric not in values:
        return None
    return {"seed": values["seed"], "values": values[metric]}


def moved_results(base: str, head: str | None) -> tuple[list[dict], int]:
    """(configurations beyond seed noise, the changes not detected with the shift each could have detected)."""
    before, after = load_json(RESULTS, base), load_json(RESULTS, head)
    comparisons = []
    for family in sorted(before.keys() & after.keys()):
        for config in before[family].keys() & after[family].keys():
            first = after[family][config]
            metric = next((m for m in HEADLINE_METRICS if m in first), None)
            a = per_seed(before[family][config], metric) if metric else None
            b = per_seed(first, metric) if metric else None
            counts = [diverged_count(before[family][config], metric), diverged_count(first, metric)]
            if None not in counts and counts[0] != counts[1]:
                (d0, n0), (d1, n1) = counts
                p = float(stats.fisher_exact([[d0, n0 - d0], [d1, n1 - d1]]).pvalue)
                comparisons.append({"family": family, "config": config, "metric": "diverged", "base": d0 / n0,
                                    "head": d1 / n1, "effect": d1 / n1 - d0 / n0, "ci95": None, "p": p,
                                    "test": f"Fisher's exact test of diverged seeds ({d0} of {n0} → {d1} of {n1})"})
            if a is None or b is None or (a == b):
                continue  # nothing to compare, or identical values: no change at all
            p, effect, ci, test = compare_seeds(a, b)
            if math.isfinite(p) and not (test == EXACT and p == 1.0):  # equal within rounding: no change
                comparisons.append({"family": family, "config": config, "metric": metric,
                                    "base": _mean(a), "head": _mean(b), "effect": effect, "ci95": ci,
                                    "p": p, "test": test, "samples": (a, b)})
    tested = [c for c in comparisons if c["test"] != EXACT]
    rejected = dict(zip(map(id, tested), holm([c["p"] for c in tested])))
    beyond = sorted((c for c in comparisons if c["test"] == EXACT or rejected[id(c)]),
                    key=lambda c: (c["family"], c["config"], c["metric"]))
    strictest = ALPHA / max(1, len(tested))
    missed = [{"family": c["family"], "config": c["config"], "metric": c["metric"],
               "detectable_shift": detectable_shift(*c["samples"], strictest) if "samples" in c else None}
              for c in tested if not rejected[id(c)]]
    for c in comparisons:
        c.pop("samples", None)
    return beyond, missed


def _mean(sample: dict) -> float | None:
    values = [v for v in sample["values"] if v is not None]
    return float(np.mean(values)) if values else None


# ---------------------------------------------------------------- 5. figures

def changed_figures(base: str, head: str | None) -> list[dict]:
    before = {p: hashlib.md5(read_bytes(p, base) or b"").hexdigest() for p in listing(FIGURES, base)}
    after = {p: hashlib.md5(read_bytes(p, head) or b"").hexdigest() for p in listing(FIGURES, head)}
    return [{"path": p, "base": p in before, "head": p in after}
            for p in sorted(before.keys() | after.keys()) if before.get(p) != after.get(p)]


# Where a local run writes a revision's figures when no --figures-url or --figures-dir is given: a committed
# figure exists only inside git, so without a copy it could not be shown (gitignored, as for `dvc plots`).
LOCAL_FIGURES = Path("dvc_plots/diff")


def figure_link(path: str, rev: str | None, template: str | None, out_dir: Path | None) -> str | None:
    """Where a figure of a revision can be seen: the template's URL, the workspace file itself, or a copy
    written to ``out_dir`` (``LOCAL_FIGURES`` for a revision when neither is given)."""
    if template:
        return template.format(rev=rev or "HEAD", path=path)
    if out_dir is None:
        if rev is None:
            return path
        out_dir = LOCAL_FIGURES
    data = read_bytes(path, rev)
    if data is None:
        return None
    target = out_dir / (rev or "workspace").replace("/", "_") / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target.as_posix()


# ---------------------------------------------------------------- the report

def collect(base: str, head: str | None) -> dict:
    beyond, missed = moved_results(base, head)
    stale = stale_stages(head)
    return {"params": changed_params(base, head), "stale": bool(stale), "stale_stages": stale,
            "verdicts": changed_verdicts(base, head), "beyond_noise": beyond, "within_noise": len(missed),
            "not_detected": missed, "figures": changed_figures(base, head)}


def not_detected_text(diff: dict) -> str:
    """ "3 values: change not detected (smallest detectable shift 0.012 to 0.05; ...)" """
    shifts = [m["detectable_shift"] for m in diff["not_detected"] if m.get("detectable_shift") is not None]
    text = f"{diff['within_noise']} values: change not detected"
    if shifts:
        text += (f" (smallest shift each comparison would detect with {POWER:.0%} power at the strictest Holm "
                 f"level: {_num(min(shifts))} to {_num(max(shifts))}, median {_num(float(np.median(shifts)))}, in "
                 "the metric's units; per configuration in `--format json`)")
    return text


def _num(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.4g}"


def figure_cell(present: bool, link: str | None, alt: str) -> str:
    """A figure's side of the table: the image, "—" when the revision has no such figure, and never "—" for
    one it has (that would read as added or removed)."""
    if not present:
        return "—"
    return f"![{alt}]({link})" if link else "(changed; no copy to show)"


def markdown(diff: dict, base: str, head: str | None, figures_url: str | None, figures_dir: Path | None) -> str:
    names = (base, head or "workspace")
    out = [f"## trainlab: {cell(names[0])} → {cell(names[1])}", ""]
    out.append("### Params")
    if diff["params"]:
        out += ["", f"| param | {cell(names[0])} | {cell(names[1])} |", "| --- | --- | --- |"]
        out += [f"| {cell(k)} | {cell(c.get('old'))} | {cell(c.get('new'))} |"
                for k, c in sorted(diff["params"].items())]
    else:
        out += ["", "No params changed."]
    if diff["stale"]:
        out += ["", f"> ⚠️ **Stale:** {cell(names[1])}'s results do not match its params and code for "
                    f"{len(diff['stale_stages'])} stages ({cell(', '.join(diff['stale_stages'][:8]))}"
                    f"{', …' if len(diff['stale_stages']) > 8 else ''}): run `dvc repro` and commit before reading "
                    "the numbers below."]
    out += ["", "### Findings"]
    if diff["verdicts"]:
        out += ["", f"| family | finding | {cell(names[0])} | {cell(names[1])} |", "| --- | --- | --- | --- |"]
        for v in diff["verdicts"]:
            was = f"{MARK.get(v['base'], '')} {v['base']}" if v["base"] else "(new)"
            now = f"{MARK.get(v['head'], '')} {v['head']}" if v["head"] else "(removed)"
            if v.get("base_estimate"):
                was += f": {v['base_estimate']}"
            if v.get("head_estimate"):
                now += f": {v['head_estimate']}"
            out.append(f"| {cell(v['family'])} | {cell(v['claim'])} | {cell(was)} | {cell(now)} |")
        out += ["", SEED_DRAW_OUTCOMES]
    else:
        out += ["", "No finding changed its outcome."]
    out += ["", "### Results beyond seed noise", ""]
    if diff["beyond_noise"]:
        out += [f"| family | configuration | metric | {cell(names[0])} | {cell(names[1])} | change [95 % CI] "
                "| p | test |",
                "| --- | --- | --- | ---: | ---: | --- | ---: | --- |"]
        for m in diff["beyond_noise"]:
            ci = m["ci95"]
            change = f"{m['effect']:+.4g}" + (f" [{ci[0]:+.4g}, {ci[1]:+.4g}]" if ci else "")
            out.append(f"| {cell(m['family'])} | {cell(m['config'])} | {cell(m['metric'])} | {_num(m['base'])} | "
                       f"{_num(m['head'])} | {change} | {m['p']:.2g} | {cell(m['test'])} |")
        out.append("")
    else:
        out.append("No configuration moved beyond seed noise.")
    out.append(f"{not_detected_text(diff)}. Per-seed final test metrics (paired t-test where both used the same "
               f"seeds, else Welch) and diverged seeds (Fisher's exact test); error control: Holm over all "
               f"comparisons, family-wise alpha {ALPHA} across every configuration.")
    out += ["", "### Figures"]
    if diff["figures"]:
        for f in diff["figures"]:
            before = figure_link(f["path"], base, figures_url, figures_dir) if f["base"] else None
            after = figure_link(f["path"], head, figures_url, figures_dir) if f["head"] else None
            out += ["", f"**{cell(f['path'])}**", "", f"| {cell(names[0])} | {cell(names[1])} |", "| --- | --- |",
                    f"| {figure_cell(f['base'], before, 'before')} | {figure_cell(f['head'], after, 'after')} |"]
    else:
        out += ["", "No figure changed."]
    out += ["", f"Learning curves side by side: `dvc plots diff {base}{'' if head is None else ' ' + head}`.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", nargs="?", default="main", help="the revision to compare against (default: main)")
    parser.add_argument("head", nargs="?", default=None, help="the revision to show (default: the workspace)")
    parser.add_argument("--format", choices=("md", "json"), default="md")
    parser.add_argument("--figures-url", default=None,
                        help="URL template for a figure at a revision, e.g. "
                             "https://raw.githubusercontent.com/OWNER/REPO/{rev}/{path}")
    parser.add_argument("--figures-dir", type=Path, default=None,
                        help="write each changed figure of both revisions here and link to the copies "
                             "(default: a revision's figures to dvc_plots/diff, the workspace's linked in place)")
    args = parser.parse_args(argv)
    try:
        diff = collect(args.base, args.head)
    except CompareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.format == "json":
        keep = ("family", "config", "metric", "base", "head", "p")
        print(json.dumps({"params": sorted(diff["params"]), "stale": diff["stale"], "verdicts": diff["verdicts"],
                          "beyond_noise": [{k: m[k] for k in keep} for m in diff["beyond_noise"]],
                          "within_noise": diff["within_noise"], "not_detected": diff["not_detected"],
                          "figures": [f["path"] for f in diff["figures"]]},
                         indent=1))
    else:
        print(markdown(diff, args.base, args.head, args.figures_url, args.figures_dir), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
