"""The population trainer: Keras fidelity, independence of trials, divergence, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_trial

from trainlab.engine.population import train_population


def fit_alone(trial):
    """The same model trained by Keras fit, on the batch order the population draws for the trial."""
    import keras

    keras.utils.set_random_seed(trial.seed)
    model = trial.build_model()
    model.compile(optimizer=trial.build_optimizer(), loss=trial.loss, metrics=["accuracy"])
    order = np.random.default_rng(trial.seed)
    data = trial.data
    logs = {}
    for _ in range(trial.epochs):
        rows = order.permutation(data.n_train)
        history = model.fit(data.x_train[rows], data.y_train[rows], batch_size=trial.batch_size, epochs=1,
                            shuffle=False, verbose=0, validation_data=(data.x_val, data.y_val))
        logs = {k: v[-1] for k, v in history.history.items()}
    return model.get_weights(), logs


def assert_same_weights(a, b, tolerance=1e-6):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=tolerance, rtol=0)


def test_trial_in_population_ends_with_the_weights_keras_fit_gives_it(blobs_split):
    # Momentum, gradient clipping and BatchNormalization all follow Keras semantics per trial;
    # 500 rows in batches of 32 also exercises the short last batch. clipnorm keeps these
    # trials on the per-model path (one Keras model each), which is exact.
    trials = [make_trial(blobs_split, "bn", seed=s, batch_norm=True, clipnorm=1.0) for s in (1, 2)]
    trials += [make_trial(blobs_split, "wide", seed=3, hidden=32, clipnorm=10.0)]
    results = train_population(trials)
    for trial, result in zip(trials, results):
        weights, logs = fit_alone(trial)
        assert_same_weights(result.weights, weights)
        assert abs(result.history["loss"][-1] - logs["loss"]) < 1e-5
        assert abs(result.history["val_loss"][-1] - logs["val_loss"]) < 1e-5
        assert abs(result.history["val_accuracy"][-1] - logs["val_accuracy"]) < 1e-6


def test_seeds_stacked_into_one_model_end_like_each_seed_trained_alone_by_fit(blobs_split):
    # Three seeds of one configuration (momentum, BatchNormalization, a short last batch) train
    # as one stacked model; each must end where Keras fit takes that seed, up to float32 rounding
    # (a batched matmul may sum in another order than a plain one).
    from trainlab.engine.population import Population

    trials = [make_trial(blobs_split, "bn", seed=s, batch_norm=True) for s in (1, 2, 3)]
    population = Population(trials)
    assert len(population.units) == 1 and len(population.units[0].trials) == 3
    results = population.run()
    for trial, result in zip(trials, results):
        weights, logs = fit_alone(trial)
        assert_same_weights(result.weights, weights, tolerance=1e-5)
        assert abs(result.history["loss"][-1] - logs["loss"]) < 1e-5
        assert abs(result.history["val_loss"][-1] - logs["val_loss"]) < 1e-5
        assert abs(result.history["val_accuracy"][-1] - logs["val_accuracy"]) < 1e-6


def test_adding_trials_to_a_population_does_not_change_a_trial(blobs_split):
    alone = train_population([make_trial(blobs_split, "a", seed=7)])[0]
    crowd = [make_trial(blobs_split, "b", seed=s, hidden=16) for s in (1, 2, 3)]
    together = train_population(crowd + [make_trial(blobs_split, "a", seed=7)])[-1]
    assert_same_weights(together.weights, alone.weights, tolerance=0)
    for metric, values in alone.history.items():
        np.testing.assert_array_equal(together.history[metric], values)


def test_a_diverging_trial_is_marked_and_the_others_train_on(blobs_split):
    healthy = make_trial(blobs_split, "healthy", seed=1)
    exploding = make_trial(blobs_split, "exploding", seed=1, learning_rate=1e12)
    results = train_population([exploding, healthy])
    assert results[0].diverged and results[0].diverged_epoch >= 1
    assert np.isnan(results[0].history["loss"][-1])
    assert not results[1].diverged
    alone = train_population([make_trial(blobs_split, "healthy", seed=1)])[0]
    assert_same_weights(results[1].weights, alone.weights, tolerance=0)


def test_two_runs_of_the_same_trials_give_identical_metrics(blobs_split):
    trials = [make_trial(blobs_split, "a", seed=s) for s in (1, 2)]
    first, second = train_population(trials), train_population(trials)
    for a, b in zip(first, second):
        for metric in a.history:
            np.testing.assert_array_equal(a.history[metric], b.history[metric])


def test_different_seeds_give_different_initial_weights_and_batch_orders(blobs_split):
    a, b = train_population([make_trial(blobs_split, "a", seed=1, epochs=1), make_trial(blobs_split, "a", seed=2,
                                                                                        epochs=1)])
    assert not np.allclose(a.weights[0], b.weights[0])


def test_history_records_loss_metric_validation_and_learning_rate_per_epoch(blobs_split):
    result = train_population([make_trial(blobs_split, epochs=4)])[0]
    assert set(result.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert all(len(v) == 4 for v in result.history.values())
    np.testing.assert_allclose(result.history["lr"], 0.01, rtol=1e-6)


@pytest.mark.slow
def test_a_process_pool_gives_the_same_results_as_training_in_process(blobs_split):
    from trainlab.engine.executor import run_trials

    # Two batch sizes make two populations, so the pool really runs them in separate workers.
    trials = [make_trial(blobs_split, "small", seed=1, batch_size=32),
              make_trial(blobs_split, "large", seed=1, batch_size=100)]
    # Op determinism on both sides, as the pipeline runs: without it the order in which TensorFlow adds up
    # gradients may follow thread scheduling, and a loaded machine then changes the last bits.
    import tensorflow as tf

    from trainlab.engine.placement import Placement

    runtime = {"onednn": False, "deterministic_ops": True, "xla": False, "stack_seeds": True, "seed_block": 0}
    tf.config.experimental.enable_op_determinism()
    here = run_trials(trials, runtime, placement=Placement("local"))
    pooled = run_trials(trials, runtime, placement=Placement("process", workers=2))
    assert [r.config for r in pooled] == ["small", "large"]
    for a, b in zip(here, pooled):
        assert_same_weights(a.weights, b.weights, tolerance=0)


def test_plateau_seeds_of_plain_sgd_train_stacked_as_they_train_alone(blobs_split):
    """A per-seed ReduceLROnPlateau with plain SGD is a per-seed gradient scale: the seeds stack, each keeps
    its own rate schedule, and the weights match per-model training to float32 rounding."""
    import dataclasses

    from trainlab.engine.population import Population
    from trainlab.engine.trial import Plateau

    trials = [dataclasses.replace(make_trial(blobs_split, "plateau", seed=s, epochs=8, learning_rate=0.05),
                                  plateau=Plateau(patience=1, min_delta=1e-7)) for s in (1, 2, 3)]
    assert [len(u.trials) for u in Population(trials).units] == [3]
    stacked, alone = train_population(trials), train_population(trials, stack_seeds=False)
    schedules = set()
    for a, b in zip(stacked, alone):
        np.testing.assert_array_equal(a.history["lr"], b.history["lr"])
        assert_same_weights(a.weights, b.weights, tolerance=1e-5)
        schedules.add(tuple(a.history["lr"]))
    assert len(schedules) > 1 and min(min(s) for s in schedules) < np.float32(0.05)  # cuts, per seed


def test_stacking_seeds_changes_only_float_rounding_and_not_what_is_stacked(blobs_split):
    from trainlab.engine.population import Population

    trials = [make_trial(blobs_split, "a", seed=s, epochs=5) for s in (1, 2, 3)]
    trials += [make_trial(blobs_split, "clipped", seed=s, epochs=5, clipnorm=1.0) for s in (1, 2)]
    stacked = train_population(trials)
    alone = train_population(trials, stack_seeds=False)
    for a, b in zip(stacked, alone):
        assert (a.config, a.seed) == (b.config, b.seed)
        assert_same_weights(a.weights, b.weights, tolerance=1e-5)
        np.testing.assert_allclose(a.history["val_loss"], b.history["val_loss"], atol=1e-5)
    # clipnorm spans a whole variable, so clipped seeds must not share a stacked variable
    assert [len(u.trials) for u in Population(trials).units] == [3, 1, 1]
