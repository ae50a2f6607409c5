"""DVC stage ``source@<name>``: train source models once and save them for other families to start from.

Reads ``sources.<name>`` and ``runtime`` from params.yaml, trains ``models`` models (seeds ``seed``,
``seed + 1``, ...) as one population, and writes ``data/models/<name>.keras`` (the first: the book's
source), ``data/models/<name>/seed-<seed>.keras`` (the others), ``reports/results/sources/<name>.json``
(their final train and test metrics over the models) and ``reports/metrics/sources/<name>.json`` (the
headline). MLflow: experiment ``sources``, a parent run ``source=<name>``, a child per model, with the
model files attached. A saved file is byte-identical for identical weights, so DVC sees no change when
nothing changed.

Usage: ``python -m stages.source <name>``
"""

from __future__ import annotations

import argparse
import sys

from trainlab import sources, stage, tracking
from trainlab.engine import executor, runtime
from trainlab.io import write_json
from trainlab.params import project_root
from trainlab.stats import results


def train_source(name: str) -> int:
    params, settings = stage.load_params()  # everything is checked before TensorFlow loads
    cfg = sources.check_source(params, name)
    trials = sources.source_trials(name, cfg)
    with executor.training(settings, cfg, f"source@{name}") as execute:  # its workers start loading now
        tracking.client()
        trained = execute(trials)
    diverged = [r for r in trained if r.diverged]
    if diverged:
        print(f"error: source model {name} (seed {diverged[0].seed}) diverged at epoch {diverged[0].diverged_epoch}; "
              f"nothing saved (lower sources.{name}.optimizer.learning_rate?)", file=sys.stderr)
        return 1

    root = project_root()
    paths = sources.model_paths(name, trained, root)
    sources.save_models(trials, trained, paths)
    summary = results.summarize(trained)
    write_json(root / "reports" / "results" / "sources" / f"{name}.json", summary)
    write_json(root / "reports" / "metrics" / "sources" / f"{name}.json", results.headline(summary))

    flags = runtime.flags(settings, cfg)
    run_ids = tracking.log_family("sources", trained, summary, stage=f"source@{name}",
                                  section={"runtime": flags, name: cfg}, params=runtime.describe(flags),
                                  tags=tracking.owner_tags())
    for path in paths:
        tracking.log_artifact(run_ids[str(trials[0].config)], path, "model")
    final = summary[str(trials[0].config)]
    print(f"[source@{name}] {len(trials)} models: train accuracy {final['accuracy']['mean']:.3f}, test accuracy "
          f"{final['val_accuracy']['mean']:.3f} ± {final['val_accuracy']['std'] or 0:.3f}; saved {paths[0]}"
          + (f" and {len(paths) - 1} in {paths[1].parent}" if len(paths) > 1 else ""), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    return stage.run(lambda: train_source(parser.parse_args(argv).name))


if __name__ == "__main__":
    sys.exit(main())
