"""Benchmark: the whole ``train@capacity`` stage, start-up and logging included, against the book's loop.

Side by side in one run: (a) the book's loop (one ``model.fit`` per model) on the capacity nodes study,
one seed per width, for its model-epochs per second; then (b) ``dvc repro --force --single-item
train@capacity`` timed end to end as a user runs it (DVC, Python and TensorFlow start, every round of
seeds in the stage's own worker pool, MLflow logging), its model-epochs counted from what it trained
(``data/runs/capacity/timing.json``: trials x the family's epochs). Prints both rates and their ratio,
and the stage's seconds outside training. Every stage starts cold: nothing is kept between stages.

It reruns the stage in this checkout (same params: same metrics) and logs to its MLflow store.

Usage: ``python -m benchmarks.stage_vs_book`` (with DVC on the PATH)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time

from benchmarks.capacity_nodes import book_loop, book_setup
from trainlab import params as P


def run_stage() -> float:
    started = time.perf_counter()
    subprocess.run(["dvc", "repro", "--force", "--single-item", "train@capacity"], cwd=P.project_root(),
                   check=True, capture_output=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)

    _, cfg, data, seeds, build, epochs = book_setup(P.load(), 1, None)
    book_models, book_seconds = book_loop(cfg, data, seeds, build, epochs)
    book_rate = book_models * epochs / book_seconds

    seconds = run_stage()
    timing = json.loads((P.project_root() / "data" / "runs" / "capacity" / "timing.json").read_text())
    rate = timing["trials"] * epochs / seconds
    timings = {"trials": timing["trials"], "epochs": epochs, "seconds_end_to_end": round(seconds, 2),
               "seconds_outside_training": round(seconds - timing["seconds"]["training"], 2),
               "phases": timing["seconds"], "model_epochs_per_second": round(rate, 1),
               "ratio_to_book": round(rate / book_rate, 1)}
    print(json.dumps({
        "book_loop": {"models": book_models, "epochs": epochs, "seconds": round(book_seconds, 2),
                      "model_epochs_per_second": round(book_rate, 1)},
        "train@capacity": timings,
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
