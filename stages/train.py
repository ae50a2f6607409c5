"""DVC stage ``train@<family>``: train one experiment family over its seeds.

Reads ``seed``, ``seeds``, ``runtime`` and ``families.<family>`` from params.yaml,
checks them before anything is trained, applies the runtime flags, trains every
configuration in rounds of seeds until its findings are decided (``stages.sequential``), and writes:

- ``data/runs/<family>/history.parquet``: the per-epoch history (see stages.results);
- ``data/runs/<family>/mlflow_runs.json``: the MLflow parent run of each configuration;
- ``reports/results/<family>.json``: per configuration, every final metric and derived number over
  seeds (mean, std, n, 95 % interval) and each seed's final values;
- ``reports/metrics/<family>.json``: the headline (``stages.results.headline``) that ``dvc metrics``
  shows: per configuration the mean of its main test metric, and the seeds.
- ``data/runs/<family>/rounds.json``: the sequential design and, per round, the seeds it added and
  the configurations that got them (``stages.sequential``);
- then the figures, plot data and judged findings (``stages.evaluate``), drawn in a forked copy of the
  stage while it logs the runs to MLflow (``stages.warm.in_forked_child``).

Usage: ``python -m stages.train <family>``
"""

from __future__ import annotations

if __name__ == "__main__":  # run in the warm stage server when one is up (stages.warm): it exits there
    from stages import warm

    warm.hand_over("stages.train")

import time

STARTED = time.perf_counter()  # before the imports: they are part of a stage's start-up

import argparse
import sys

import pandas as pd

from stages import evaluate, families, results, runtime, sequential, stage, tracking, warm
from stages import params as P
from stages.engine import pool
from stages.io import write_json, write_with


def train(name: str) -> int:
    # Everything is checked before TensorFlow loads or anything is written.
    params, settings = stage.load_params()
    family, cfg = families.check_family(params, name)
    key, label = families.section_key(params, name), f"train@{name}"
    pool.start_workers(settings, cfg)  # their TensorFlow loads while this process loads MLflow and its own
    tracking.client()
    tracking.fail_unfinished(name, label)  # runs an interrupted earlier run left RUNNING
    execute, flags = runtime.start_training(settings, cfg, name, f"{key}.epochs")
    design = sequential.design_for(settings, cfg, key)

    clock = PhaseClock(STARTED, "start-up")
    trial_results, rounds = sequential.train_family(family, cfg, key, design, settings["seed"], execute)
    clock.lap("training")
    seeds = sorted({r.seed for r in trial_results})

    history = results.history_frame(trial_results)
    extra = family.trial_metrics
    summary = results.summarize(trial_results, None if extra is None else (lambda r: extra(r, cfg)))

    # Outputs first (each atomically), MLflow after: a store that fails while logging loses no training.
    root = P.project_root()
    out = root / "data" / "runs" / name
    written = [out / "history.parquet", out / "rounds.json", root / "reports" / "results" / f"{name}.json",
               root / "reports" / "metrics" / f"{name}.json"]
    try:
        write_with(written[0], lambda tmp: history.to_parquet(tmp, index=False))
        write_json(written[1], {"design": design.describe(), "rounds": rounds})
        write_json(written[2], summary)
        write_json(written[3], results.headline(summary))
    except OSError as err:
        print(f"error: cannot write the outputs of {label} ({err}); make {err.filename or out} writable "
              f"and rerun `dvc repro {label}`", file=sys.stderr)
        return 1
    clock.lap("outputs")
    section = {"seed": settings["seed"], "seeds": len(seeds), "runtime": flags, name: cfg}

    # The figures are drawn and the findings judged in a forked copy of this process, on the other core,
    # while this one logs the runs to MLflow.
    history = pd.read_parquet(written[0])  # as a re-evaluation reads it
    evaluated = warm.in_forked_child(lambda: evaluate.write_evaluation(name, params, family, cfg, history))
    try:
        run_ids = tracking.log_family(name, trial_results, summary, stage=label, section=section,
                                      params=runtime.describe(flags), tags=tracking.owner_tags(),
                                      trial_metrics=None if extra is None else (lambda r: extra(r, cfg)))
        tracking.mark_superseded(name, label, set(run_ids.values()))
    except Exception as err:  # the store went away or broke while logging: fail this stage's runs, keep outputs
        tracking.fail_unfinished(name, label, mine=True)
        evaluated()
        print(f"error: {label} trained and wrote {', '.join(str(p) for p in written)} and its figures and "
              f"findings, but logging to MLflow ({tracking.tracking_uri()}) failed: {tracking.first_line(err)}; "
              f"its runs are marked FAILED. Fix the store and rerun `dvc repro {label}`", file=sys.stderr)
        return 1
    clock.lap("logging")
    evaluation = evaluated()
    clock.lap("figures and findings")
    write_json(out / "mlflow_runs.json", run_ids)
    evaluate.log_evaluation(name, cfg, evaluation)
    runtime.check_tensorflow_flags()
    clock.lap("logging the figures and findings")
    write_json(out / "timing.json", {"seconds": clock.seconds, "seeds": len(seeds),
                                     "trials": len(trial_results), "rounds": len(rounds)})
    print(f"[{name}] trained {len(trial_results)} trials in {clock.seconds['training']:.1f}s; "
          f"{sum(r.diverged for r in trial_results)} diverged; seconds: {clock}", file=sys.stderr)
    return 0


class PhaseClock:
    """Seconds per phase of a stage, each lap ending the phase named."""

    def __init__(self, started: float, first: str) -> None:
        self.seconds: dict[str, float] = {}
        self.last = started
        self.lap(first)

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self.last, 2)
        self.last = now

    def __str__(self) -> str:
        return ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in self.seconds.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family")
    name = parser.parse_args(argv).family
    return stage.run(lambda: train(name))


if __name__ == "__main__":
    sys.exit(main())
