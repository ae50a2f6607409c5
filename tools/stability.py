"""Verdict stability: do the findings come out the same on two disjoint sets of seeds?

Runs the ``train`` and ``evaluate`` stage scripts for the chosen families (default: all) twice in a temporary copy of
the repository (its own MLflow store; ``data/`` inputs linked read-only, ``data/runs`` fresh): once
with ``seed`` as in params.yaml and once with ``seed + offset`` (offset > cap, so the seed sets are
disjoint), and prints per family how many verdicts agree and the seeds each run spent.

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


def compare(first: dict, second: dict) -> dict:
    ids = list(first["verdicts"])
    agree = [i for i in ids if first["verdicts"][i] == second["verdicts"].get(i)]
    undecided = sum(v.startswith("undecided") for run in (first, second) for v in run["verdicts"].values())
    return {"findings": len(ids), "agree": len(agree), "undecided": undecided,
            "differ": {i: (first["verdicts"][i], second["verdicts"].get(i)) for i in ids if i not in agree}}


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
    total_agree = total = total_undecided = 0
    print(f"{'family':28} agree  undecided  seeds spent (run 1 | run 2)   seconds")
    for name in names:
        first, second = runs[name]
        c = compare(first, second)
        total, total_agree, total_undecided = total + c["findings"], total_agree + c["agree"], \
            total_undecided + c["undecided"]
        spent = " | ".join(str(sum(run["seeds"].values())) for run in (first, second))
        print(f"{name:28} {c['agree']:2}/{c['findings']:<2}  {c['undecided']:9}  {spent:28} "
              f"{first['seconds']:.0f} + {second['seconds']:.0f}")
        for finding, (a, b) in c["differ"].items():
            print(f"    {finding}: {a} vs {b}")
        for i, run in enumerate((first, second), 1):
            print(f"    run {i} seeds per configuration: "
                  + ", ".join(f"{k} {v}" for k, v in run["seeds"].items()))
    print(f"{'all':28} {total_agree:2}/{total:<2}  {total_undecided:9} (undecided over both runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
