"""The data part of the pipeline from scratch: one stage per data set and variant vs the one ``data`` stage.

Clones this repository twice into a temporary directory, at the last commit with the ``generate@`` and
``prepare@`` stages (``--old``) and at ``--new``, drops ``dvc.lock`` (a fresh clone has no DVC cache, so no
run-cache either) and times ``dvc repro prepare`` (which pulls in every ``generate@``) against ``dvc repro
data``, alternating for ``--rounds`` rounds so a busy machine weighs on both alike.

Usage: ``PATH=.venv/bin:$PATH python -m benchmarks.data_stage [--old REV] [--new REV] [--rounds N]``
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OLD = "2a49358"  # main before the data stage: 9 generate@ and 17 prepare@ stages


def repro(workdir: Path, label: str, rev: str, target: str) -> tuple[float, int]:
    """Seconds of ``dvc repro <target>`` in a fresh clone at ``rev``, and how many stages ran."""
    clone = workdir / label
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    subprocess.run(["git", "checkout", "-q", rev], cwd=clone, check=True)
    (clone / "dvc.lock").unlink(missing_ok=True)
    start = time.perf_counter()
    done = subprocess.run(["dvc", "repro", target], cwd=clone, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    return seconds, sum(line.startswith("Running stage") for line in done.stdout.splitlines())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", default=OLD, help="a commit with the per-item stages (default: %(default)s)")
    parser.add_argument("--new", default="HEAD", help="a commit with the data stage (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="data-stage-bench-") as tmp:
        for _ in range(args.rounds):
            for label, rev, target in (("old", args.old, "prepare"), ("new", args.new, "data")):
                seconds, stages = repro(Path(tmp), label, rev, target)
                print(f"{label}: dvc repro {target} at {rev}: {seconds:.1f} s, {stages} stages", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
