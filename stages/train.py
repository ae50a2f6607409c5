"""DVC stage ``train@<family>``: train one experiment family over its seeds.

Reads ``seed``, ``seeds``, ``runtime`` and ``families.<family>`` from params.yaml,
checks them before anything is trained, applies the runtime flags, trains every
configuration in rounds of seeds until its findings are decided (``stages.sequential``), and writes:

- ``data/runs/<family>/history.parquet``: the per-epoch history (see stages.results);
- ``data/runs/<family>/mlflow_runs.json``: the MLflow parent run of each configuration;
- ``data/runs/<family>/rounds.json``: the sequential design and, per round, the seeds it added and
  the configurations that got them (``stages.sequential``);
- ``reports/metrics/<family>.json``: final metrics per configuration over seeds.

Usage: ``python -m stages.train <family>``
"""

from __future__ import annotations

import argparse
import sys
import time

from stages import families, results, runtime, sequential, stage, tracking
from stages import params as P
from stages.io import write_json, write_with


def train(name: str) -> int:
    # Everything is checked before TensorFlow loads or anything is written.
    params, settings = stage.load_params()
    family, cfg = families.check_family(params, name)
    tracking.client()
    execute, flags = runtime.start_training(settings, cfg, name)
    design = sequential.design_for(settings, cfg, families.section_key(params, name))

    started = time.perf_counter()
    trial_results, rounds = sequential.train_family(family, cfg, families.section_key(params, name), design,
                                                    settings["seed"], execute)
    seconds = time.perf_counter() - started
    seeds = sorted({r.seed for r in trial_results})

    history = results.history_frame(trial_results)
    extra = family.trial_metrics
    summary = results.summarize(trial_results, None if extra is None else (lambda r: extra(r, cfg)))
    section = {"seed": settings["seed"], "seeds": len(seeds), "runtime": flags, name: cfg}
    run_ids = tracking.log_family(
        name, trial_results, summary,
        params=tracking.flatten(cfg) | runtime.describe(flags),
        tags=stage.provenance(f"train@{name}", section),
    )

    root = P.project_root()
    out = root / "data" / "runs" / name
    write_with(out / "history.parquet", lambda tmp: history.to_parquet(tmp, index=False))
    write_json(out / "mlflow_runs.json", run_ids)
    write_json(out / "rounds.json", {"design": design.describe(), "rounds": rounds})
    write_json(root / "reports" / "metrics" / f"{name}.json", summary)
    print(f"[{name}] trained {len(trial_results)} trials in {seconds:.1f}s; "
          f"{sum(r.diverged for r in trial_results)} diverged", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family")
    name = parser.parse_args(argv).family
    return stage.run(lambda: train(name))


if __name__ == "__main__":
    sys.exit(main())
