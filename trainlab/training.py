"""Training one family over its seeds: what the ``train@<family>`` stage does, as functions.

``train`` runs the sequential design (``trainlab.stats.sequential``): every configuration on the first
block of seeds, then more seeds where a finding is still open. ``write_outputs`` writes the per-epoch
history, the rounds, the summary over seeds and the headline metrics, each file atomically;
``log`` sends the runs to MLflow afterwards, so a store that fails loses no training.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trainlab import tracking
from trainlab.engine import runtime
from trainlab.engine.trial import TrialResult
from trainlab.family import Family
from trainlab.io import write_json, write_with
from trainlab.stats import results, sequential


@dataclass
class Trained:
    """A family's trial results, the rounds of seeds it took, and their summary over seeds."""

    results: list[TrialResult]
    rounds: list[dict]
    design: sequential.Design
    summary: dict

    @property
    def seeds(self) -> list[int]:
        return sorted({r.seed for r in self.results})


def train(family: Family, cfg: dict, settings: dict, key: str, execute: Callable) -> Trained:
    """Train ``family`` with its checked params ``cfg`` (``key``: where they live in params.yaml) through
    ``execute`` (``trainlab.engine.executor.training``), in the sequential design's rounds of seeds."""
    design = sequential.design_for(settings, cfg, key)
    trial_results, rounds = sequential.train_family(family, cfg, key, design, settings["seed"], execute)
    extra = family.trial_metrics
    summary = results.summarize(trial_results, None if extra is None else (lambda r: extra(r, cfg)))
    return Trained(trial_results, rounds, design, summary)


def output_paths(root: Path, name: str) -> dict[str, Path]:
    runs = root / "data" / "runs" / name
    return {"history": runs / "history.parquet", "rounds": runs / "rounds.json",
            "results": root / "reports" / "results" / f"{name}.json",
            "metrics": root / "reports" / "metrics" / f"{name}.json",
            "mlflow_runs": runs / "mlflow_runs.json", "timing": runs / "timing.json"}


def write_outputs(trained: Trained, paths: dict[str, Path]) -> None:
    history = results.history_frame(trained.results)
    write_with(paths["history"], lambda tmp: history.to_parquet(tmp, index=False))
    write_json(paths["rounds"], {"design": trained.design.describe(), "rounds": trained.rounds})
    write_json(paths["results"], trained.summary)
    write_json(paths["metrics"], results.headline(trained.summary))


def log(name: str, family: Family, cfg: dict, settings: dict, trained: Trained, label: str) -> dict[str, str]:
    """Every configuration as an MLflow parent run, every seed as its child; the parents' ids by configuration."""
    flags = runtime.flags(settings, cfg)
    section = {"seed": settings["seed"], "seeds": len(trained.seeds), "runtime": flags, name: cfg}
    extra = family.trial_metrics
    run_ids = tracking.log_family(name, trained.results, trained.summary, stage=label, section=section,
                                  params=runtime.describe(flags), tags=tracking.owner_tags(),
                                  trial_metrics=None if extra is None else (lambda r: extra(r, cfg)))
    tracking.mark_superseded(name, label, set(run_ids.values()))
    return run_ids


class PhaseClock:
    """Seconds per phase of a stage, each lap ending the phase named."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self.last, 2)
        self.last = now

    def __str__(self) -> str:
        return ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in self.seconds.items())


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
