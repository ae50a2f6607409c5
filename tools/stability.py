"""Verdict stability: do the findings come out the same on two disjoint sets of seeds?

Runs the ``train`` and ``evaluate`` stage scripts for the chosen families (default: all) twice in a temporary copy of
the repository (its own MLflow store; ``data/`` inputs linked read-only, ``data/runs`` fresh): once
with ``seed`` as in params.yaml and once with ``seed + offset`` (offset > cap, so the seed sets are
disjoint), and prints per family how many outcomes agree and the seeds each run spent. Agreement is
counted among the findings both runs decided (holds, equivalent, does not hold, seed-dependent): two
"undecided" are no agreement, only a lack of evidence twice. Contradictions (holds or equivalent on
one side, does not hold on the other) are counted on their own: the design should make them rare
(each family's false-verdict rate is at most alpha); a finding decided on one side only is a
difference in evidence, not a contradiction.

Families that start from saved source models (transfer) use the same source models in both runs (they
come from ``sources.<name>.seed``, not ``seed``): only their repeats' seeds differ.

With ``--committed`` the first set's verdicts are the committed ``reports/findings/<family>.json`` (valid
when ``dvc status`` is clean: they are what ``train`` gives at ``seed``), so only the second set trains.

Usage: ``python -m tools.stability [FAMILY ...] [--offset 1000] [--committed]``
(``make stability FAMILIES="capacity adam"``)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from trainlab import params as P

FAMILY_KEYS = ("families", "families_from_source", "families_on_results")  # every train stage's family
SKIP = {".git", ".venv", "data", "mlflow.db", "mlruns", "mlartifacts", ".dvc", "dvc_plots", "__pycache__",
        ".pytest_cache", ".ruff_cache"}


def copy_repo(root: Path, into: Path) -> None:
    """The code and params, with ``data/`` inputs linked and ``data/runs`` empty."""
    for entry in root.iterdir():
        if entry.name in SKIP:
            continue
        (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, into / entry.name)
    (into / "data" / "runs").mkdir(parents=True)
    for entry in (root / "data").iterdir():
        if entry.name != "runs":
            os.symlink(entry.resolve(), into / "data" / entry.name)


def run_family(work: Path, family: str) -> dict:
    """Train and evaluate one family in ``work``; its verdicts and the seeds it spent."""
    env = os.environ | {"PYTHONPATH": str(work)}
    env.pop("DVC_ROOT", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    for stage in ("train", "evaluate"):
        done = subprocess.run([sys.executable, "-m", f"stages.{stage}", family], cwd=work, env=env,
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{stage}@{family} failed:\n{done.stderr[-2000:]}")
    return outcome(work, family, time.perf_counter() - started)


def outcome(root: Path, family: str, seconds: float) -> dict:
    """A family's verdicts and seeds per configuration, from ``reports/findings/<family>.json`` under ``root``."""
    report = json.loads((root / "reports" / "findings" / f"{family}.json").read_text())
    return {"verdicts": {f["id"]: f["verdict"] for f in report["findings"]}, "seeds": report["config_seeds"],
            "seconds": seconds}


DECIDED = ("holds", "equivalent", "does not hold", "seed-dependent")
HELD = ("holds", "equivalent")


def compare(first: dict, second: dict) -> dict:
    """Per family: findings, decided by both runs, agreeing among those, contradictions, decided by one run
    only, undecided in both, undecided over both runs, and the findings whose outcomes differ."""
    ids = list(first["verdicts"])
    pairs = {i: (first["verdicts"][i], second["verdicts"].get(i)) for i in ids}
    both = [i for i, (a, b) in pairs.items() if a in DECIDED and b in DECIDED]
    agree = [i for i in both if pairs[i][0] == pairs[i][1]]
    contradictions = [i for i, (a, b) in pairs.items()
                      if (a in HELD and b == "does not hold") or (a == "does not hold" and b in HELD)]
    one_side = [i for i, (a, b) in pairs.items() if (a in DECIDED) != (b in DECIDED)]
    neither = [i for i, (a, b) in pairs.items() if a not in DECIDED and b not in DECIDED]
    undecided = sum(str(v).startswith("undecided") for run in (first, second) for v in run["verdicts"].values())
    return {"findings": len(ids), "decided_both": len(both), "agree": len(agree),
            "contradictions": len(contradictions), "one_side": len(one_side), "neither": len(neither),
            "undecided": undecided,
            "differ": {i: pair for i, pair in pairs.items() if pair[0] != pair[1]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("families", nargs="*", help="default: every family in params.yaml (families, "
                        "families_from_source, families_on_results)")
    parser.add_argument("--offset", type=int, default=1000, help="the second run's seeds start this much later")
    parser.add_argument("--committed", action="store_true",
                        help="take the first run from the committed reports/findings (when dvc status is clean)")
    args = parser.parse_args(argv)
    root = P.project_root()
    params = P.load(root / P.PARAMS_FILE)
    sections = {name: section for key in FAMILY_KEYS for name, section in (params.get(key) or {}).items()}
    names = args.families or list(sections)
    unknown = [n for n in names if n not in sections]
    if unknown:
        print(f"error: unknown family {unknown[0]!r}; params.yaml has: {', '.join(sections)}", file=sys.stderr)
        return 2
    caps = [(params.get("sequential") or {}).get("cap", P.SEQUENTIAL_DEFAULTS["cap"])]
    caps += [(s.get("sequential") or {}).get("cap", 0) or s.get("seeds") or 0
             for s in sections.values() if isinstance(s, dict)]
    cap = max(caps)
    if args.offset <= cap:
        print(f"error: --offset {args.offset} must exceed the cap ({cap}) for disjoint seed sets", file=sys.stderr)
        return 2
    runs: dict[str, list[dict]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="stability-") as tmp:
        work = Path(tmp)
        copy_repo(root, work)
        seeds = [params["seed"] + args.offset]
        if args.committed:  # the first set is what the committed train@ stages gave at `seed`
            for name in names:
                runs[name].append(outcome(root, name, 0.0))
        else:
            seeds.insert(0, params["seed"])
        for seed in seeds:
            edited = dict(params, seed=seed)
            (work / P.PARAMS_FILE).write_text(yaml.safe_dump(edited, sort_keys=False))
            for name in names:
                runs[name].append(run_family(work, name))
    totals = dict.fromkeys(("findings", "decided_both", "agree", "contradictions", "one_side", "neither"), 0)
    print(f"{'family':28} agree/both decided  contradictions  one side  neither  seeds spent (run 1 | run 2)  "
          "seconds")
    for name in names:
        first, second = runs[name]
        c = compare(first, second)
        for k in totals:
            totals[k] += c[k]
        spent = " | ".join(str(sum(run["seeds"].values())) for run in (first, second))
        print(f"{name:28} {c['agree']:5}/{c['decided_both']:<12} {c['contradictions']:14}  {c['one_side']:8}  "
              f"{c['neither']:7}  {spent:27} {first['seconds']:.0f} + {second['seconds']:.0f}")
        for finding, (a, b) in c["differ"].items():
            print(f"    {finding}: {a} vs {b}")
        for i, run in enumerate((first, second), 1):
            print(f"    run {i} seeds per configuration: "
                  + ", ".join(f"{k} {v}" for k, v in run["seeds"].items()))
    print(f"{'all':28} {totals['agree']:5}/{totals['decided_both']:<12} {totals['contradictions']:14}  "
          f"{totals['one_side']:8}  {totals['neither']:7}  ({totals['findings']} findings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
