"""Markdown for a pull request: what changed between two revisions of the lab.

Usage: ``python -m stages.compare [BASE] [HEAD]`` (default: ``main`` against the workspace).

Prints, in this order: the params that changed (``dvc params diff --md``), the findings whose
verdict flipped, the metrics that changed (``dvc metrics diff``, the findings first), and the
figures that changed (``git diff`` of ``reports/figures``). The CI workflow appends it to the job
summary of a pull request; ``make diff`` prints it locally.
"""

from __future__ import annotations

import argparse
import html
import json
import shutil
import subprocess
import sys
from pathlib import Path

FINDINGS = "reports/metrics/findings.json"
FIGURES = "reports/figures"
WORD = {1: "holds", 0: "inconclusive", -1: "does not hold"}
MARK = {1: "✅", 0: "❔", -1: "❌"}


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


def revisions(base: str, head: str | None) -> list[str]:
    return [base] if head is None else [base, head]


def md(value: object) -> str:
    """Text for a Markdown table cell: HTML shown as text, ``|`` kept inside its cell, one line."""
    return html.escape(" ".join(str(value).split()), quote=False).replace("|", "\\|")


def params_section(base: str, head: str | None) -> str:
    out = run(tool("dvc"), "params", "diff", *revisions(base, head), "--json").strip()
    diff = json.loads(out) if out else {}
    rows = [f"| {md(path)} | {md(name)} | {md(_cell(change.get('old')))} | {md(_cell(change.get('new')))} |"
            for path in sorted(diff) for name, change in sorted(diff[path].items())]
    if not rows:
        return "### Params\n\nNo params changed."
    return "\n".join(["### Params", "", "| Path | Param | Old | New |", "| --- | --- | --- | --- |", *rows])


def metrics_diff(base: str, head: str | None) -> dict:
    """``{path: {metric: {old, new, diff}}}`` for the metrics that changed."""
    out = run(tool("dvc"), "metrics", "diff", *revisions(base, head), "--json").strip()
    return json.loads(out) if out else {}


def read(path: str, rev: str | None) -> str | None:
    """A file's text at a revision (None: the workspace); None when it is not there."""
    if rev is None:
        return Path(path).read_text() if Path(path).exists() else None
    try:
        return run("git", "show", f"{rev}:{path}")
    except CompareError:
        return None


def claims(head: str | None) -> dict[tuple[str, str], str]:
    """Each finding's claim in words, from ``reports/findings/<family>.json`` at HEAD."""
    if head is None:
        paths = [p.as_posix() for p in sorted(Path("reports/findings").glob("*.json"))]
    else:
        try:
            paths = [f"reports/findings/{n}" for n in run("git", "ls-tree", "--name-only", f"{head}:reports/findings")
                     .split() if n.endswith(".json")]
        except CompareError:
            paths = []
    found: dict[tuple[str, str], str] = {}
    for path in paths:
        family = json.loads(read(path, head) or "{}")
        for finding in family.get("findings", []):
            found[(family["family"], finding["id"])] = finding["claim"]
    return found


def verdicts(rev: str | None) -> dict[tuple[str, str], int]:
    """``{(family, finding): verdict code}`` from reports/metrics/findings.json at a revision."""
    text = read(FINDINGS, rev)
    data = json.loads(text) if text else {}
    return {(family, finding): int(values["verdict"]) for family, found in data.items() if family != "total"
            for finding, values in found.items() if isinstance(values, dict) and "verdict" in values}


def flips_section(base: str, head: str | None, names: tuple[str, str]) -> str:
    """Findings whose verdict differs between the two revisions (new and removed ones too)."""
    before, after = verdicts(base), verdicts(head)
    changed = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    if not changed:
        return "### Findings\n\nNo finding changed its verdict."
    claim_of = claims(head)
    rows = []
    for family, finding in changed:
        old, new = before.get((family, finding)), after.get((family, finding))
        was = f"{MARK[old]} {WORD[old]}" if old is not None else "(new)"
        now = f"{MARK[new]} {WORD[new]}" if new is not None else "(removed)"
        claim = md(claim_of.get((family, finding), finding))
        rows.append(f"| {md(family)} | {claim} | {was} | {now} |")
    header = f"| family | finding | {md(names[0])} | {md(names[1])} |"
    return "\n".join(["### Findings that changed verdict", "", header,
                      "| --- | --- | --- | --- |", *rows])


def metrics_section(diff: dict, names: tuple[str, str]) -> str:
    rows = []
    def order(metric: str) -> tuple:  # totals, then verdicts, then the numbers behind them
        return (not metric.startswith("total."), not metric.endswith(".verdict"), metric)

    for path in sorted(diff, key=lambda p: (p != FINDINGS, p)):  # the findings first
        for metric, change in sorted(diff[path].items(), key=lambda item: order(item[0])):
            cells = [md(_cell(change.get(k))) for k in ("old", "new", "diff")]
            rows.append(f"| {md(path)} | {md(metric)} | {' | '.join(cells)} |")
    if not rows:
        return "### Metrics\n\nNo metric changed."
    return "\n".join(["### Metrics that changed", "", f"| path | metric | {md(names[0])} | {md(names[1])} | change |",
                      "| --- | --- | ---: | ---: | ---: |", *rows])


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def figures_section(base: str, head: str | None) -> str:
    status = run("git", "diff", "--name-status", *revisions(base, head), "--", FIGURES).splitlines()
    if head is None:  # new figures not yet known to git
        status += [f"A\t{p}" for p in run("git", "ls-files", "--others", "--exclude-standard", FIGURES).split()]
    words = {"A": "added", "M": "changed", "D": "removed"}
    lines = [f"- {words.get(line[0], line.split()[0])}: `{line.split()[-1]}`" for line in status if line.strip()]
    if not lines:
        return "### Figures\n\nNo figure changed."
    return "### Figures that changed\n\n" + "\n".join(lines)


def report(base: str = "main", head: str | None = None) -> str:
    names = (base, head or "workspace")
    diff = metrics_diff(base, head)
    sections = [f"## trainlab: {names[0]} → {names[1]}", params_section(base, head),
                flips_section(base, head, names), metrics_section(diff, names), figures_section(base, head),
                f"Learning curves side by side: `dvc plots diff {base}{'' if head is None else ' ' + head}`."]
    return "\n\n".join(sections) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", nargs="?", default="main", help="the revision to compare against (default: main)")
    parser.add_argument("head", nargs="?", default=None, help="the revision to show (default: the workspace)")
    args = parser.parse_args(argv)
    try:
        print(report(args.base, args.head), end="")
    except CompareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
