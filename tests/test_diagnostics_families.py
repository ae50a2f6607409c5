"""The LR range test's rules on synthetic curves whose answers are known, and the loss landscape's
filter normalization and batched grid against hand computations and plain Keras."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO

from trainlab import params as P
from trainlab.families import lr_range
from trainlab.stats import findings as F


@pytest.fixture(scope="module")
def params():
    return P.load(REPO / P.PARAMS_FILE)


def test_minimum_rule_picks_a_tenth_of_the_known_best_rate():
    lrs = np.logspace(-7, 1, 81)  # 10 points per decade: 1e-3 is lrs[40]
    losses = (np.log10(lrs) + 3.0) ** 2  # lowest loss at lr = 1e-3
    assert lr_range.minimum(lrs, losses) == pytest.approx(1e-4)


def test_steep_rule_picks_the_steepest_descent_of_a_known_curve():
    lrs = np.logspace(-7, 1, 81)
    centre = (np.log10(lrs[30]) + np.log10(lrs[31])) / 2  # the loss falls fastest between lrs[30] and lrs[31]
    losses = 1.0 - np.tanh(np.log10(lrs) - centre)
    assert lr_range.steep(lrs, losses) == lrs[30]


def test_valley_rule_follows_fastai_on_a_known_valley():
    lrs = np.logspace(-7, 1, 60)
    losses = np.concatenate([2.0 + 0.01 * np.arange(20),        # rising: one of these can open the valley
                             np.linspace(1.9, 1.0, 30),         # the valley: 30 falling points, indices 20..49
                             np.linspace(1.1, 2.0, 10)])        # rising again
    # Longest decreasing run: one rising point + the 30 falling ones = 31, ending at index 49; fastai's
    # start = 49 - 31 = 18 and index = 18 + int(31 / 3) + int(31 / 6) = 33.
    assert lr_range.valley(lrs, losses) == lrs[33]


def test_smoothing_is_fastais_debiased_average_and_the_stop_is_four_times_the_best():
    losses = np.array([1.0, 2.0, 3.0])
    beta = 0.5
    expected = [1.0, (0.25 * 1 + 0.5 * 2) / 0.75, (0.125 * 1 + 0.25 * 2 + 0.5 * 3) / 0.875]
    np.testing.assert_allclose(lr_range.smooth(losses, beta), expected)
    assert lr_range.stop_index(np.array([2.0, 1.0, 3.9, 4.1, 1.0]), 4.0) == 3
    assert lr_range.stop_index(np.array([2.0, 1.0, np.nan, 1.0]), 4.0) == 2
    assert lr_range.stop_index(np.array([2.0, 1.0, 1.5]), 4.0) == 2


def test_rates_grow_exponentially_from_start_to_end():
    r = lr_range.rates(1e-7, 10.0, 100)
    assert r[0] == pytest.approx(1e-7) and r[-1] == pytest.approx(10.0)
    np.testing.assert_allclose(r[1:] / r[:-1], (1e8) ** (1 / 99))


def test_lr_range_rejects_an_end_below_its_start(params):
    section = dict(params["families_on_results"]["lr_range"], start=1.0, end=0.1)
    with pytest.raises(P.ParamsError, match=r"families_on_results.lr_range.end: expected a rate above start=1"):
        lr_range.check(section, "families_on_results.lr_range", params)


def test_lr_range_must_read_a_family_with_a_learning_rate_sweep(params):
    section = dict(params["families_on_results"]["lr_range"], reads="capacity")
    with pytest.raises(P.ParamsError, match=r"families_on_results.lr_range.reads: expected a family under families: "
                                            r"with a `learning_rates` sweep"):
        lr_range.check(section, "families_on_results.lr_range", params)


def test_the_finding_reads_the_sweeps_best_rate_by_its_configurations(tmp_path):
    path = tmp_path / "learning_rate.json"
    path.write_text(json.dumps({"learning_rate=0.1": {"val_accuracy": {"mean": 0.80}},
                                "learning_rate=0.01": {"val_accuracy": {"mean": 0.82}},
                                "momentum=0.9": {"val_accuracy": {"mean": 0.99}}}))
    assert lr_range.sweep_best(path, [0.1, 0.01, 0.001]) == 0.01
    with pytest.raises(F.MissingResults, match="missing"):
        lr_range.sweep_best(tmp_path / "none.json", [0.1])


def _tiny_model(batch_norm: bool = False):
    import keras

    layers = [keras.Input((2,)), keras.layers.Dense(3, activation="tanh")]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    layers.append(keras.layers.Dense(2, activation="softmax"))
    return keras.Sequential(layers)


def test_filter_normalization_scales_each_neurons_direction_to_its_weights_norm():
    from trainlab.families import loss_landscape as L

    model = _tiny_model(batch_norm=True)
    kernel = np.array([[3.0, 0.0, 1.0], [4.0, 2.0, 1.0]], dtype=np.float32)  # neuron norms 5, 2, sqrt(2)
    model.layers[0].set_weights([kernel, np.ones(3, np.float32)])
    weights = model.get_weights()
    direction = L.filter_normalized(weights, L.plan(model), np.random.default_rng(0))
    raw = np.random.default_rng(0).standard_normal(kernel.shape)  # the first draw is the first kernel's
    by_hand = raw / np.linalg.norm(raw, axis=0) * np.array([5.0, 2.0, np.sqrt(2.0)])
    np.testing.assert_allclose(direction[0], by_hand, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(direction[0], axis=0), [5.0, 2.0, np.sqrt(2.0)], rtol=1e-5)
    assert all(not d.any() for d in direction[1:6])  # the bias and batch normalization's four arrays: zero
    assert direction[6].shape == weights[6].shape and direction[6].any()  # the output kernel has a direction
    assert not direction[7].any()  # the output bias


@pytest.mark.parametrize("batch_norm", [False, True])
def test_a_grid_point_is_the_loss_of_that_perturbed_model_alone(batch_norm):
    import keras

    from trainlab.families import loss_landscape as L

    keras.utils.set_random_seed(3)
    model = _tiny_model(batch_norm)
    if batch_norm:  # moving statistics away from their defaults, so inference mode matters
        bn = model.layers[1]
        bn.moving_mean.assign([0.1, -0.2, 0.3])
        bn.moving_variance.assign([0.5, 2.0, 1.5])
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 2)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 40)]
    weights, layers = model.get_weights(), L.plan(model)
    d1, d2 = (L.filter_normalized(weights, layers, rng) for _ in range(2))
    grid = np.array([[a, b] for b in np.linspace(-1, 1, 5) for a in np.linspace(-1, 1, 5)])
    losses = L.grid_losses(weights, [d1, d2], grid, x, y, L.evaluator(layers, "categorical_crossentropy"), chunk=7)
    for p in (0, 7, 12, 24):
        a, b = grid[p]
        model.set_weights([w + a * u + b * v for w, u, v in zip(weights, d1, d2)])
        alone = keras.losses.CategoricalCrossentropy()(y, model(x, training=False))
        assert losses[p] == pytest.approx(float(alone), rel=1e-5)


def test_sharpness_is_the_mean_rise_at_the_radius():
    from trainlab.families import loss_landscape as L

    a = np.linspace(-1, 1, 51)
    assert L.sharpness(2.0 + 3.0 * np.abs(a), 1.0, 0.5) == pytest.approx(1.5)  # piecewise linear: exact
    assert L.sharpness(2.0 + 3.0 * a, 1.0, 0.5) == pytest.approx(0.0)  # a slope, no valley: no rise
