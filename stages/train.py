"""DVC stage ``train@<family>``: train one experiment family over its seeds.

Reads ``seed``, ``seeds``, ``sequential``, ``runtime`` and the family's section of params.yaml, trains
every configuration in rounds of seeds until the family's findings are decided or the cap is reached,
and writes ``data/runs/<family>/`` (history.parquet: one row per configuration, seed, epoch and
metric; rounds.json; mlflow_runs.json; timing.json), ``reports/results/<family>.json`` (every statistic
over seeds, each seed's final values) and ``reports/metrics/<family>.json`` (the headline). The runs go
to MLflow after the files are written: a store that fails loses no training.

Usage: ``python -m stages.train <family>``
"""

from __future__ import annotations

import argparse
import sys

from trainlab import families, stage, tracking, training
from trainlab.engine import executor, runtime
from trainlab.io import write_json
from trainlab.params import project_root


def train(name: str) -> int:
    params, settings = stage.load_params()  # everything is checked before TensorFlow loads
    family, cfg = families.check_family(params, name)
    key, label = families.section_key(params, name), f"train@{name}"
    with executor.training(settings, cfg, label, f"{key}.epochs") as execute:  # its workers start loading now
        clock = training.PhaseClock()
        tracking.client()
        tracking.fail_unfinished(name, label)  # runs that an interrupted earlier run left RUNNING
        clock.lap("opening the tracking store")
        trained = training.train(family, cfg, settings, key, execute)
        clock.lap("training")
    paths = training.output_paths(project_root(), name)
    training.write_outputs(trained, paths)
    clock.lap("outputs")
    try:
        run_ids = training.log(name, family, cfg, settings, trained, label)
    except Exception as err:  # the store went away or broke while logging: keep the outputs, fail the runs
        tracking.fail_unfinished(name, label, mine=True)
        training.say(f"error: {label} trained and wrote its outputs, but logging to MLflow "
                     f"({tracking.tracking_uri()}) failed: {tracking.first_line(err)}; its runs are marked "
                     f"FAILED. Fix the store and rerun `dvc repro {label}`")
        return 1
    write_json(paths["mlflow_runs"], run_ids)
    clock.lap("logging")
    runtime.check_tensorflow_flags()  # TensorFlow loaded here (a family's measure) must have had the flags
    write_json(paths["timing"], {"seconds": clock.seconds, "seeds": len(trained.seeds),
                                 "trials": len(trained.results), "rounds": len(trained.rounds)})
    diverged = sum(r.diverged for r in trained.results)
    training.say(f"[{name}] trained {len(trained.results)} trials, {diverged} diverged; seconds: {clock}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family")
    name = parser.parse_args(argv).family
    return stage.run(lambda: train(name))


if __name__ == "__main__":
    sys.exit(main())
