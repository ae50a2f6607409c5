"""DVC stage ``train@<family>``: train one experiment family over its seeds.

Reads ``seed``, ``seeds``, ``runtime`` and ``families.<family>`` from params.yaml,
checks them before anything is trained, applies the runtime flags, trains every
configuration x seed with the population trainer, and writes:

- ``data/runs/<family>/history.parquet``: the per-epoch history (see stages.results);
- ``data/runs/<family>/mlflow_runs.json``: the MLflow parent run of each configuration;
- ``reports/metrics/<family>.json``: final metrics per configuration over seeds.

Usage: ``python -m stages.train <family>``
"""

from __future__ import annotations

import argparse
import sys
import time

from stages import families, runtime, tracking
from stages import params as P


def seeds_for(common: dict, cfg: dict) -> list[int]:
    """The family's seeds: ``seed, seed + 1, ...``; the family's ``seeds`` overrides the count."""
    count = cfg.get("seeds") or common["seeds"]
    return [common["seed"] + i for i in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family")
    args = parser.parse_args(argv)
    family = args.family

    # Everything is checked before TensorFlow loads or anything is written.
    try:
        params = P.load(P.project_root() / P.PARAMS_FILE)
        common = P.check_common(params)
        cfg = families.check_family(params, family)
        runtime.placement()  # where to train (environment): a bad value stops here too
        tracking.client()
    except (P.ParamsError, tracking.TrackingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    if cfg.get("xla") is not None:  # a family may compile its populations differently
        common["runtime"]["xla"] = cfg["xla"]
    runtime.apply(common["runtime"])
    from stages import results
    from stages.engine.executor import run_trials
    from stages.io import write_json, write_with

    module = families.load(family)
    seeds = seeds_for(common, cfg)
    started = time.perf_counter()
    def execute(trials: list) -> list:
        print(f"[{family}] {len(trials)} trials ({len({t.config for t in trials})} configurations, "
              f"{len(seeds)} seeds)", file=sys.stderr)
        return run_trials(trials, common["runtime"], label=family)

    try:
        if hasattr(module, "run"):  # a family trained in phases drives the executor itself
            trial_results = module.run(cfg, seeds, execute)
        else:
            trial_results = execute(module.trials(cfg, seeds))
    except (FileNotFoundError, P.ParamsError) as err:  # an input missing, or params that do not fit it
        print(f"error: {err}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started

    history = results.history_frame(trial_results)
    extra = getattr(module, "trial_metrics", None)
    summary = results.summarize(trial_results, None if extra is None else (lambda r: extra(r, cfg)))
    section = {"seed": common["seed"], "seeds": len(seeds), "runtime": common["runtime"], family: cfg}
    run_ids = tracking.log_family(
        family, trial_results, summary,
        params=tracking.flatten(cfg) | runtime.describe(common["runtime"]),
        tags={"dvc.stage": f"train@{family}", "git.commit": tracking.git_commit(),
              "mlflow.source.git.commit": tracking.git_commit(), "params.hash": tracking.params_hash(section)},
    )

    root = P.project_root()
    out = root / "data" / "runs" / family
    write_with(out / "history.parquet", lambda tmp: history.to_parquet(tmp, index=False))
    write_json(out / "mlflow_runs.json", run_ids)
    write_json(root / "reports" / "metrics" / f"{family}.json", summary)
    print(f"[{family}] trained {len(trial_results)} trials in {seconds:.1f}s; "
          f"{sum(r.diverged for r in trial_results)} diverged", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
