"""Benchmark: the whole ``train@capacity`` stage, start-up and logging included, against the book's loop.

Side by side in one run: (a) the book's loop (one ``model.fit`` per model) on the capacity nodes study,
one seed per width, for its model-epochs per second; then (b) ``dvc repro --force --single-item
train@capacity`` timed end to end as a user runs it (DVC, Python and TensorFlow start, every round of
seeds, MLflow logging, figures and findings), its model-epochs counted from what it trained
(``data/runs/capacity/timing.json``: trials x the family's epochs). Prints both rates and their ratio.
``--warm`` runs the stage once first, so (b) finds the worker pool and the stage server up, as a stage
does within a ``dvc repro`` or a second ``dvc exp run``; without it, (b) starts them.

It reruns the stage in this checkout (same params: same metrics) and logs to its MLflow store.

Usage: ``python -m benchmarks.stage_vs_book [--warm]`` (with DVC on the PATH)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time

from benchmarks.capacity_nodes import book_loop, book_setup
from stages import params as P


def run_stage() -> float:
    started = time.perf_counter()
    subprocess.run(["dvc", "repro", "--force", "--single-item", "train@capacity"], cwd=P.project_root(),
                   check=True, capture_output=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm", action="store_true", help="run the stage once before timing it")
    args = parser.parse_args(argv)

    _, cfg, data, seeds, build, epochs = book_setup(P.load(), 1, None)
    book_models, book_seconds = book_loop(cfg, data, seeds, build, epochs)
    book_rate = book_models * epochs / book_seconds

    if args.warm:
        run_stage()
    seconds = run_stage()
    timing = json.loads((P.project_root() / "data" / "runs" / "capacity" / "timing.json").read_text())
    stage_rate = timing["trials"] * epochs / seconds
    print(json.dumps({
        "book_loop": {"models": book_models, "epochs": epochs, "seconds": round(book_seconds, 2),
                      "model_epochs_per_second": round(book_rate, 1)},
        "train@capacity": {"warm": args.warm, "trials": timing["trials"], "epochs": epochs,
                           "seconds_end_to_end": round(seconds, 2), "phases": timing["seconds"],
                           "model_epochs_per_second": round(stage_rate, 1)},
        "ratio": round(stage_rate / book_rate, 1),
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
