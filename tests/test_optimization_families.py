"""The optimization families (book 2, 3, 4, 11): learning-rate logic, loss/label conventions,
the reference Adam against Keras's, and bad input.

Everything trains with the real engine on tiny settings. The families read their data through
``load_prepared``; a fixture writes the prepared variants, made by the real generate/prepare
code, into a temporary root so the tests do not depend on a pipeline run.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import repo_params, with_change, write_prepared

from trainlab import params as P
from trainlab.families import check_family, common
from trainlab.stats import findings as F
from trainlab.stats import results as R

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("blobs3", "circles", "regression_standard_all")


@pytest.fixture(scope="module")
def prepared_root(tmp_path_factory):
    """data/prepared/<variant>.npz for the variants these families use, under a temporary root."""
    root = tmp_path_factory.mktemp("root")
    write_prepared(root, repo_params(), VARIANTS)
    old = Path.cwd()
    os.chdir(root)  # project_root() is the working directory: where load_prepared looks
    try:
        yield root
    finally:
        os.chdir(old)


def family_cfg(name: str, **changes) -> tuple:
    """The family and its checked section at the repo's params, with ``changes`` to that section."""
    params = repo_params()
    for key, value in changes.items():
        params = with_change(params, f"families.{name}.{key}", value)
    return check_family(params, name)


def family_trials(name: str, epochs: int, seeds=(1,), **changes):
    """The family's own trials at the repo's params, shortened to ``epochs``."""
    family, cfg = family_cfg(name, **changes)
    trials = family.trials(cfg, list(seeds))
    return cfg, [dataclasses.replace(t, epochs=epochs) for t in trials]


def train(trials):
    from trainlab.engine.population import train_population
    from trainlab.engine.trial import group_into_populations

    results = {}
    for population in group_into_populations(trials):
        for r in train_population(population):
            results[r.config, r.seed] = r
    return [results[t.config, t.seed] for t in trials]


# -- learning-rate logic ------------------------------------------------------------------------

def test_inverse_time_decay_gives_the_exact_rate_after_n_updates(prepared_root):
    # 500 rows in batches of 32 = 16 updates per epoch (the last one short); update t (from 0) uses
    # lr0 / (1 + decay * t), so epoch e's last update is t = 16 e - 1.
    family, cfg = family_cfg("learning_rate", epochs=3, late_epochs=3)
    assert cfg["updates_per_epoch"] == 16
    # Eight seeds: every seed has the same rates, and the finding's sign tests (every part must hold, so each is
    # tested at the whole alpha = 0.05) need 2 * 0.5**n < 0.05 to call that a holds: 6 seeds or more.
    seeds = list(range(1, 9))
    decays = [dataclasses.replace(t, epochs=3) for t in family.trials(cfg, seeds) if t.config.study == "decay"]
    assert {str(t.config) for t in decays} == {"decay=0.1", "decay=0.01", "decay=0.001", "decay=0.0001"}
    results = train(decays)
    for trial, result in zip(decays, results):
        expected = [0.01 / (1 + trial.config.value * (16 * e - 1)) for e in (1, 2, 3)]
        np.testing.assert_allclose(result.history["lr"], expected, rtol=1e-6)
    # The finding's expected end rates come from epochs x updates per epoch: they match these 3 epochs.
    end_rates = next(f for f in family.findings(cfg) if f.id == "decay_end_rates")
    assert end_rates.claim.startswith("After 48 updates")
    verdict, = F.judge([end_rates], R.history_frame(results), family.configs(cfg), "families.learning_rate")
    assert verdict["verdict"] == F.HOLDS, verdict
    # The book's numbers for 200 epochs (3,200 updates): 0.1 ends near 3.1e-5, 1e-4 near 0.0076.
    optimizer = common.make_optimizer(common.check_optimizer({"name": "sgd", "decay": 0.1}, "o"))
    assert float(optimizer.learning_rate) == pytest.approx(0.01)
    assert float(optimizer._learning_rate(3199)) == pytest.approx(0.01 / (1 + 0.1 * 3199), rel=1e-6)


def keras_plateau(monitored: np.ndarray, lr0: float, patience: int, factor: float, min_delta: float) -> list[float]:
    """ReduceLROnPlateau(mode=min, cooldown=0, min_lr=0) by hand: the rate each epoch trains at."""
    rates, lr, best, wait = [], lr0, math.inf, 0
    for value in monitored:
        rates.append(lr)
        if value < best - min_delta:
            best, wait = value, 0
        else:
            wait += 1
            if wait >= patience:
                lr, wait = lr * factor, 0
    return rates


def test_each_trial_reduces_its_own_rate_on_its_own_validation_loss(prepared_root):
    # Patience 1 and 2 at lr 0.5 make plateaus within a few epochs; seeds differ, so do the drops.
    from trainlab.engine.trial import Plateau

    cfg, trials = family_trials("learning_rate", epochs=10, seeds=(1, 2, 3), patiences=[1, 2],
                              optimizer={"name": "sgd", "learning_rate": 0.5})
    from trainlab.families import learning_rate

    plateau = [t for t in trials if t.config.study == "patience"]
    assert plateau[0].plateau == Plateau(patience=1, factor=0.1, min_delta=1e-7, monitor="val_loss")
    results = train(plateau)
    traces = set()
    for trial, result in zip(plateau, results):
        expected = keras_plateau(result.history["val_loss"], 0.5, trial.plateau.patience, 0.1, 1e-7)
        np.testing.assert_allclose(result.history["lr"], expected, rtol=1e-6)
        traces.add(tuple(np.round(result.history["lr"], 8)))
        # The trial's metrics count those cuts; never cut: first_reduced_epoch is epochs + 1 (trainlab.curves).
        cuts = [e for e in range(2, 11) if expected[e - 1] < expected[e - 2]]
        metrics = learning_rate.trial_metrics(result, cfg)
        assert metrics["lr_reductions"] == len(cuts)
        assert metrics["first_reduced_epoch"] == (cuts[0] if cuts else 11)
    assert len(traces) > 1  # the trials did not share one schedule
    assert any(r.history["lr"][-1] < 0.5 for r in results)


def test_configurations_that_are_one_experiment_are_trained_once(prepared_root):
    family, cfg = check_family(repo_params(), "learning_rate")
    trials = family.trials(cfg, [1, 2])
    trained = []

    def execute(batch):
        trained.extend(batch)
        return [_fake_result(t) for t in batch]

    results = family.run(cfg, [1, 2], execute)
    assert len(results) == len(trials) and [r.config for r in results] == [t.config for t in trials]
    # SGD(0.01) appears as learning_rate=0.01, momentum=0 and optimizer=sgd: trained once per seed.
    assert len(trained) == len(trials) - 2 * 2
    same = {str(r.config): r for r in results if r.seed == 1}
    assert same["momentum=0"].weights is same["learning_rate=0.01"].weights is same["optimizer=sgd"].weights


def _fake_result(trial):
    from trainlab.engine.trial import TrialResult

    return TrialResult(trial.config, trial.seed, {"lr": np.zeros(1)}, None, [np.zeros(1)], dict(trial.tags))


# -- batch size -----------------------------------------------------------------------------

def test_batch_size_trials_record_updates_per_epoch_and_in_all(prepared_root):
    from trainlab.families import batch_size

    cfg, trials = family_trials("batch_size", epochs=200)
    tags = {str(t.config): t.tags for t in trials}
    assert (tags["descent=batch"]["updates_per_epoch"], tags["descent=batch"]["total_updates"]) == (1, 200)
    assert (tags["descent=stochastic"]["updates_per_epoch"], tags["descent=stochastic"]["total_updates"]) == \
        (500, 100_000)
    assert tags["descent=stochastic_lr0.001"]["learning_rate"] == 0.001
    assert (tags["batch_size=32"]["updates_per_epoch"], tags["batch_size=450"]["updates_per_epoch"]) == (16, 2)
    short = [dataclasses.replace(t, epochs=2) for t in trials if str(t.config) in ("descent=batch", "batch_size=450")]
    for result in train(short):
        metrics = batch_size.trial_metrics(result, cfg | {"late_epochs": 2})
        assert metrics["total_updates"] == metrics["updates_per_epoch"] * 200
        assert 1 <= metrics["epochs_to_val_accuracy_0.8"] <= 3  # 3: not reached in 2 epochs
        assert metrics["updates_to_val_accuracy_0.8"] == metrics["epochs_to_val_accuracy_0.8"] * \
            metrics["updates_per_epoch"]


def test_batch_size_speed_counts_a_run_that_never_learns_as_one_epoch_past_the_end():
    from trainlab.engine.trial import TrialResult
    from trainlab.families import batch_size

    family, cfg = check_family(repo_params(), "batch_size")
    config = batch_size.BATCH_SIZE(4)
    tags = {"updates_per_epoch": 125, "total_updates": 500}

    def metrics(accuracy):
        result = TrialResult(config, 1, {"val_accuracy": np.array(accuracy)}, None, [], tags)
        return batch_size.trial_metrics(result, cfg | {"threshold": 0.8, "late_epochs": 3})

    learned, never = metrics([0.1, 0.5, np.nan, 0.81]), metrics([0.1, 0.5, 0.6, 0.7])
    assert (learned["epochs_to_val_accuracy_0.8"], learned["updates_to_val_accuracy_0.8"]) == (4, 500)
    assert (never["epochs_to_val_accuracy_0.8"], never["updates_to_val_accuracy_0.8"]) == (5, 625)
    assert never["volatility_val_accuracy"] == pytest.approx(0.1)  # |0.6-0.5|, |0.7-0.6| over the last 3


# -- loss functions and their labels ------------------------------------------------------------

def test_loss_functions_pair_each_loss_with_its_output_labels_and_metric(prepared_root):
    _, trials = family_trials("loss_functions", epochs=2)
    by = {str(t.config): t for t in trials}
    hinge, bce = by["binary=hinge"], by["binary=binary_crossentropy"]
    assert set(np.unique(hinge.data.y_train)) == {-1.0, 1.0} and hinge.metric == "sign_accuracy"
    assert set(np.unique(bce.data.y_train)) == {0.0, 1.0} and bce.metric == "binary_accuracy"
    assert hinge.build_model().layers[-1].activation.__name__ == "tanh"
    assert bce.build_model().layers[-1].activation.__name__ == "sigmoid"
    assert by["multiclass=sparse_categorical_crossentropy"].data.y_train.ndim == 1
    assert by["multiclass=kl_divergence"].data.y_train.shape[1] == 3
    regression = by["regression=mean_squared_logarithmic_error"]
    assert regression.metric == "mse" and (regression.data.y_train < 0).mean() > 0.3  # standardised target
    results = train(trials)
    for trial, result in zip(trials, results):
        assert not result.diverged, trial.config
        metric = "mse" if trial.config.study == "regression" else "accuracy"
        assert {"loss", metric, "val_loss", f"val_{metric}"} <= set(result.history)
    # Same seed, same one-hot/integer labels: sparse and categorical cross-entropy train identically.
    cce, sparse = (results[[str(t.config) for t in trials].index(f"multiclass={loss}")]
                   for loss in ("categorical_crossentropy", "sparse_categorical_crossentropy"))
    np.testing.assert_allclose(cce.history["val_accuracy"], sparse.history["val_accuracy"])


def test_sign_accuracy_counts_sign_agreement_and_round_accuracy_needs_half_way():
    import tensorflow as tf

    from trainlab.engine.metrics import sign_accuracy
    from trainlab.families.loss_functions import round_accuracy

    labels = np.array([1.0, 1.0, -1.0, -1.0], dtype=np.float32)
    outputs = np.array([[0.3], [-0.2], [-0.7], [-0.9]], dtype=np.float32)
    assert float(tf.reduce_mean(sign_accuracy(tf.constant(labels), tf.constant(outputs)))) == 0.75
    # Keras 2's round(tanh) == label: 0.3 rounds to 0, so only the two confident outputs count.
    # A relu -> tanh model whose output is tanh(x): hidden relu(x), relu(-x); output weights 1, -1.
    weights = [np.array([[1.0, -1.0]]), np.zeros(2), np.array([[1.0], [-1.0]]), np.zeros(1)]
    assert round_accuracy(weights, np.arctanh(outputs.astype(np.float64)), labels) == 0.5


def test_msle_clips_negatives_at_epsilon_and_hinge_uses_plus_minus_one_labels():
    import keras

    y = np.array([[-1.5], [0.2], [2.0]], dtype=np.float32)
    p = np.array([[0.5], [-0.3], [1.0]], dtype=np.float32)
    eps = keras.backend.epsilon()
    expected = (np.log(np.maximum(p, eps) + 1) - np.log(np.maximum(y, eps) + 1)) ** 2
    np.testing.assert_allclose(keras.losses.mean_squared_logarithmic_error(y, p), expected[:, 0], rtol=1e-5)
    signed = np.array([[1.0], [-1.0], [-1.0]], dtype=np.float32)
    np.testing.assert_allclose(keras.losses.hinge(signed, p), np.maximum(0, 1 - signed * p)[:, 0], rtol=1e-6)
    np.testing.assert_allclose(keras.losses.squared_hinge(signed, p), np.maximum(0, 1 - signed * p)[:, 0] ** 2,
                               rtol=1e-6)


# -- the reference Adam ---------------------------------------------------------------------------

def keras_adam_path(gradients: np.ndarray, theta0: np.ndarray, **adam) -> np.ndarray:
    """Keras's Adam applied to one variable, gradient by gradient; the variable after each step."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.Adam(**adam)
    variable = keras.Variable(theta0.astype(np.float32))
    optimizer.build([variable])
    path = []
    for g in gradients:
        optimizer.apply_gradients([(tf.constant(g, dtype=tf.float32), variable)])
        path.append(np.array(variable.numpy()))
    return np.stack(path)


@pytest.mark.parametrize("adam", [
    {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
    {"learning_rate": 0.1, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 0.1},
    {"learning_rate": 0.01, "beta_1": 0.0, "beta_2": 0.99, "epsilon": 1.0},
], ids=["paper defaults", "fast and loose", "large epsilon"])
def test_reference_adam_matches_keras_adam_step_for_step(adam):
    from trainlab.families.adam import reference_adam

    rng = np.random.default_rng(3)
    gradients = rng.normal(0.3, 1.0, size=(60, 4)) * np.array([1e-3, 1.0, 10.0, 1e3])
    theta0 = rng.normal(size=4)
    keras_path = keras_adam_path(gradients, theta0, **adam)
    ours = reference_adam(gradients, theta0, form="efficient", **adam)  # Keras's ordering: its epsilon is eps_hat
    np.testing.assert_allclose(keras_path, ours, rtol=1e-5, atol=1e-6)
    # Algorithm 1 as printed: the same steps while sqrt(v_hat) >> epsilon (here: the paper's defaults).
    paper = reference_adam(gradients, theta0, form="paper", **adam)
    if adam["epsilon"] < 1e-6:
        np.testing.assert_allclose(keras_path, paper, rtol=1e-5, atol=1e-6)


def test_epsilon_sits_differently_in_keras_and_in_algorithm_1_for_tiny_gradients():
    from trainlab.families.adam import reference_adam, step_sizes

    gradients = np.full((20, 1), 1e-8)
    keras_path = keras_adam_path(gradients, np.zeros(1), learning_rate=0.001, epsilon=1e-8)
    np.testing.assert_allclose(keras_path, reference_adam(gradients, 0.0, epsilon=1e-8, form="efficient"),
                               rtol=1e-5)
    paper = step_sizes(gradients[:, 0], form="paper", epsilon=1e-8)
    keras = step_sizes(gradients[:, 0], form="efficient", epsilon=1e-8)
    assert paper[0] == pytest.approx(0.5)  # g / (|g| + eps) with g = eps
    assert keras[0] < 0.05  # eps_hat = 1e-8 against sqrt(v_1) = sqrt(0.001) * 1e-8
    # Whatever the gradient's scale, a constant gradient moves the parameter by about alpha per step.
    for scale in (1e-4, 1.0, 1e4):
        np.testing.assert_allclose(step_sizes(np.full(10, scale)), 1.0, rtol=1e-3)


# -- bad input ------------------------------------------------------------------------------------

BAD = [
    ("families.loss_functions.multiclass.losses", ["categorical_crossentropy", "hinge"],
     "families.loss_functions.multiclass.losses[1]: 'hinge' is a binary loss and does not fit the multiclass task"),
    ("families.loss_functions.regression.losses", ["binary_crossentropy"],
     "families.loss_functions.regression.losses[0]: 'binary_crossentropy' is a binary loss"),
    ("families.loss_functions.binary.data", "blobs3",
     "families.loss_functions.binary.data: expected a binary data set, got 'blobs3' (blobs3: 3 classes)"),
    ("families.batch_size.loss", "hinge", "families.batch_size.loss: expected one of 'categorical_crossentropy'"),
    ("families.learning_rate.loss", "mean_squared_error", "families.learning_rate.loss: expected one of"),
    ("families.learning_rate.optimizer.name", "adamw", "families.learning_rate.optimizer.name: expected one of 'sgd'"),
    ("families.learning_rate.optimizers.rmsprop", {"name": "rmsdrop"},
     "families.learning_rate.optimizers.rmsprop.name: expected one of 'sgd'"),
    ("families.learning_rate.learning_rates", [0.1, 0.0], "families.learning_rate.learning_rates[1]: expected a "
                                                           "number > 0, got 0.0"),
    ("families.learning_rate.optimizer.learning_rate", -0.01,
     "families.learning_rate.optimizer.learning_rate: expected a number > 0"),
    ("families.batch_size.descent.stochastic", {"batch_size": 1, "learning_rate": 0},
     "families.batch_size.descent.stochastic.learning_rate: expected a number > 0"),
    ("families.adam.vary.learning_rate", [0.001, -1], "families.adam.vary.learning_rate[1]: expected a number > 0"),
    ("families.adam.optimizer", {"name": "sgd", "learning_rate": 0.01},
     "families.adam.optimizer.name: expected 'adam'"),
    ("families.batch_size.sweep", [4, 501], "families.batch_size.sweep[1]: expected a batch size from 1 to 500 "
                                            "(the train split of blobs3), got 501"),
    ("families.batch_size.sweep", [0, 4], "families.batch_size.sweep[0]: expected an integer ≥ 1, got 0"),
    ("families.batch_size.descent.batch", {"batch_size": 1000},
     "families.batch_size.descent.batch.batch_size: expected a batch size from 1 to 500"),
    ("families.learning_rate.batch_size", 600, "families.learning_rate.batch_size: expected a batch size from 1 "
                                               "to 500"),
    ("families.adam.batch_size", 0, "families.adam.batch_size: expected an integer ≥ 1, got 0"),
    ("families.loss_functions.batch_size", 501, "families.loss_functions.batch_size: expected a batch size from 1 "
                                                "to 500"),
]


@pytest.mark.parametrize("key,value,message", BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD])
def test_bad_params_are_rejected_before_training_naming_the_key(key, value, message):
    params = with_change(repo_params(), key, value)
    family = key.split(".")[1]
    with pytest.raises(P.ParamsError) as err:
        check_family(params, family)
    assert message in str(err.value)


def test_train_stage_exits_2_and_writes_nothing_when_a_loss_does_not_fit(tmp_path):
    import subprocess
    import sys

    from conftest import copy_repo

    repo = copy_repo(tmp_path)
    metrics = repo / "reports" / "metrics" / "loss_functions.json"
    before = metrics.read_text() if metrics.exists() else None  # a committed summary, if any, stays as it was
    params = with_change(repo_params(), "families.loss_functions.multiclass.losses", ["hinge"])
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = subprocess.run([sys.executable, "-m", "stages.train", "loss_functions"], cwd=repo,
                            capture_output=True, text=True, timeout=120,
                            env={**{k: v for k, v in os.environ.items() if k != "DVC_ROOT"},
                                 "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: families.loss_functions.multiclass.losses[0]: 'hinge'")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (repo / "data" / "runs" / "loss_functions").exists()
    assert (metrics.read_text() if metrics.exists() else None) == before
    assert not (tmp_path / "mlflow.db").exists()


# -- findings bound to the params -------------------------------------------------------------------

FAMILIES = ("batch_size", "loss_functions", "learning_rate", "adam")


@pytest.mark.parametrize("name", FAMILIES)
def test_at_the_repo_params_every_finding_can_be_judged_and_every_book_number_is_trained(name):
    family, cfg = check_family(repo_params(), name)
    declared = family.configs(cfg)
    assert len(set(map(str, declared))) == len(declared)  # one canonical id per configuration
    for finding in family.findings(cfg):
        assert finding.statement.unmet(declared, f"families.{name}") == [], finding.id
    assert set(family.book) <= set(declared)


LEFT_OUT = [  # a value the params drop -> the finding that needs it, and the note naming the key
    ("learning_rate", "learning_rates", [1.0, 0.1, 0.01, 0.001, 1e-6], "lr_1e6_1e7_learn_nothing",
     "`families.learning_rate.learning_rates` has no 1e-07"),
    ("learning_rate", "optimizers", {"sgd": {"name": "sgd"}, "adam": {"name": "adam"}}, "adaptive_learn_within_50",
     "`families.learning_rate.optimizers` has no rmsprop"),
    ("batch_size", "descent", {"batch": {"batch_size": 500}}, "sgd_far_noisier_than_batch",
     "`families.batch_size.descent` has no stochastic"),
    ("batch_size", "sweep", [32], "smaller_batches_learn_sooner", "`families.batch_size.sweep` has fewer than two"),
    ("loss_functions", "binary.losses", ["binary_crossentropy", "squared_hinge"], "squared_hinge_worst",
     "`families.loss_functions.binary.losses` has no hinge"),
    ("adam", "vary.learning_rate", [0.001, 1e-5], "larger_alpha_learns_faster_at_first",
     "`families.adam.vary.learning_rate` has no 0.3"),
]


@pytest.mark.parametrize("name,key,value,finding,note", LEFT_OUT, ids=[f"{c[0]}.{c[1]}" for c in LEFT_OUT])
def test_a_configuration_the_params_leave_out_is_not_judged_and_the_key_is_named(name, key, value, finding, note):
    family, cfg = family_cfg(name, **{key: value})
    empty = pd.DataFrame(columns=R.COLUMNS)
    verdicts = {v["id"]: v for v in F.judge(family.findings(cfg), empty, family.configs(cfg), f"families.{name}")}
    assert verdicts[finding]["verdict"] == F.NOT_JUDGED
    assert note in verdicts[finding]["note"]


def test_thresholds_windows_and_update_counts_come_from_the_params():
    family, cfg = family_cfg("learning_rate", threshold=0.9, late_epochs=30, epochs=100, batch_size=50)
    texts = {f.id: (f.claim, f.statement.text) for f in family.findings(cfg)}
    assert "≥ 0.9" in texts["smaller_lr_slower"][1] and "90% test accuracy" in texts["smaller_lr_slower"][0]
    assert "last 30 epochs" in texts["lr_1_oscillates"][1]
    # 500 rows in batches of 50: 10 updates per epoch, 1,000 in all; the last update is t = 999.
    assert texts["decay_end_rates"][0].startswith("After 1,000 updates")
    rate = 0.01 / (1 + 0.1 * 999)
    assert f"> {rate * 0.98:g}" in texts["decay_end_rates"][1] and f"< {rate * 1.02:g}" in texts["decay_end_rates"][1]
    family, cfg = family_cfg("batch_size", threshold=0.7, late_epochs=20)
    texts = {f.id: f.statement.text for f in family.findings(cfg)}
    assert "≥ 0.7" in texts["batch_gd_converges_by_100"] and "last 20 epochs" in texts["sgd_far_noisier_than_batch"]
    family, cfg = family_cfg("loss_functions", late_epochs=10)
    assert "last 10 epochs" in next(f.statement.text for f in family.findings(cfg) if f.id == "mae_good_but_bumpy")
