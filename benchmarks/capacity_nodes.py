"""Benchmark: the capacity nodes study trained the book's way vs by the population trainer.

(a) the book's loop: one ``model.fit(numpy, validation_data=numpy)`` per model;
(b) the population trainer: every nodes configuration x seed in one population, each
    trial its own Keras model (``runtime.stack_seeds: false``);
(c) the same with each configuration's seeds stacked into one model (``stack_seeds: true``).
All use params.yaml (blobs-20, the capacity family's optimizer, epochs and batch
size, the runtime flags) and run side by side in this one process. Prints
model-epochs per second for each and the ratio. The book's loop costs the same per
model whatever the seed, so by default it trains one seed per configuration
(``--book-seeds``) to keep the run short; the rate is per model-epoch either way.

Usage: ``python -m benchmarks.capacity_nodes [--seeds 5] [--book-seeds 1] [--epochs N]``
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

from trainlab import params as P
from trainlab.engine import runtime


def book_setup(params: dict, seeds: int | None, epochs: int | None):
    """The capacity nodes study's data, models and settings from params.yaml (runtime flags applied)."""
    common = P.check_common(params)
    from trainlab.families import check_family

    _, cfg = check_family(params, "capacity")
    runtime.apply(common["runtime"])

    from trainlab.data.datasets import check_dataset, make
    from trainlab.data.prepared import Split, encode
    from trainlab.families import capacity

    dataset = check_dataset(params, "blobs20")
    x, y = make(dataset)
    n = dataset["n_train"]
    y_train, y_test = encode(y[:n], y[n:], "onehot")
    data = Split(x[:n].astype("float32"), y_train, x[n:].astype("float32"), y_test)
    seeds_list = [common["seed"] + i for i in range(seeds or common["seeds"] or 5)]
    build = [partial(capacity.model, x.shape[1], y_train.shape[1], [nodes]) for nodes in cfg["nodes"]]
    return common, cfg, data, seeds_list, build, epochs or cfg["epochs"]


def book_loop(cfg: dict, data, seeds: list[int], build: list, epochs: int) -> tuple[int, float]:
    """(a) the book's loop, one ``model.fit`` per model: (models trained, seconds)."""
    import keras

    from trainlab.families import common as shared

    started = time.perf_counter()
    models = 0
    for make_model in build:
        for seed in seeds:
            keras.utils.set_random_seed(seed)
            model = make_model()
            model.compile(optimizer=shared.make_optimizer(cfg["optimizer"]), loss=cfg["loss"], metrics=["accuracy"])
            model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=cfg["batch_size"], verbose=0,
                      validation_data=(data.x_val, data.y_val))
            models += 1
    return models, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=None, help="population seeds (default: params.yaml seeds)")
    parser.add_argument("--book-seeds", type=int, default=1, help="seeds per configuration for the book's loop")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the capacity family's)")
    args = parser.parse_args(argv)

    common, cfg, data, seeds, build, epochs = book_setup(P.load(), args.seeds, args.epochs)
    from trainlab.engine.population import train_population
    from trainlab.engine.trial import Trial
    from trainlab.families import common as shared

    book_models, book_seconds = book_loop(cfg, data, seeds[:args.book_seeds], build, epochs)

    # (b) the population trainer: every configuration x seed, build and tracing included
    trials = [Trial(f"nodes={nodes}", seed, data, make_model, shared.optimizer_factory(cfg["optimizer"]),
                    cfg["loss"], "categorical_accuracy", cfg["batch_size"], epochs)
              for nodes, make_model in zip(cfg["nodes"], build) for seed in seeds]
    rates = {}
    for label, stack_seeds in (("population", False), ("population_stacked_seeds", True)):
        started = time.perf_counter()
        train_population(trials, jit_compile=common["runtime"]["xla"], stack_seeds=stack_seeds)
        seconds = time.perf_counter() - started
        rates[label] = {"models": len(trials), "seconds": round(seconds, 2),
                        "model_epochs_per_second": round(len(trials) * epochs / seconds, 1)}

    book_rate = book_models * epochs / book_seconds
    result = {
        "epochs": epochs,
        "book_loop": {"models": book_models, "seconds": round(book_seconds, 2),
                      "model_epochs_per_second": round(book_rate, 1)},
        **rates,
        "ratio": round(rates["population"]["model_epochs_per_second"] / book_rate, 1),
        "ratio_stacked": round(rates["population_stacked_seeds"]["model_epochs_per_second"] / book_rate, 1),
        "runtime": common["runtime"],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
