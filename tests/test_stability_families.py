"""The stability families (book 5-8): scaling fit on train, gradient statistics, divergence, bad input.

Gradient statistics are checked against a gradient computed by hand in numpy; divergence
and the families' outputs are checked end to end on tiny settings with the real engine,
the real stages and an MLflow store in a temporary directory.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import repo_params, with_change

from trainlab import params as P
from trainlab.configs import Study
from trainlab.data import scaling as prepare
from trainlab.data import variants
from trainlab.data.prepared import Split
from trainlab.engine.trial import Trial
from trainlab.families import check_family, common
from trainlab.stats import findings as F
from trainlab.stats.results import COLUMNS

FAMILIES = ("data_scaling", "vanishing_gradients", "exploding_gradients", "batch_norm")


def raw_data(params: dict, name: str) -> dict[str, np.ndarray]:
    """A data set as ``generate`` writes it (generator call, head/tail split)."""
    from trainlab.data import datasets

    cfg = datasets.check_dataset(params, name)
    x, y = datasets.make(cfg)
    n = cfg["n_train"]
    return {"x_train": x[:n], "y_train": y[:n], "x_test": x[n:], "y_test": y[n:]}


# -- scalers are fit on the train split (unless fit_on: all) ----------------------------------

def test_regression_variants_fit_their_scalers_on_the_train_split_only():
    params = repo_params()
    raw = raw_data(params, "regression")
    for variant in ("regression_y_standard", "regression_x_minmax_y_standard", "regression_x_standard_y_standard"):
        cfg = variants.check_variant(params, variant)
        assert cfg["fit_on"] == "train"
        out = prepare.prepare(raw, cfg)
        mean, std = raw["y_train"].mean(), raw["y_train"].std()
        # Train statistics, applied unchanged to the test rows; y_scale / y_offset undo them.
        np.testing.assert_allclose(out["y_test"], (raw["y_test"] - mean) / std, rtol=1e-12)
        assert out["y_scale"] == pytest.approx(std) and out["y_offset"] == pytest.approx(mean)
        np.testing.assert_allclose(out["y_test"] * out["y_scale"] + out["y_offset"], raw["y_test"], rtol=1e-9)
        assert abs(out["y_train"].mean()) < 1e-12 and abs(out["y_test"].mean()) > 1e-3
    x = prepare.prepare(raw, variants.check_variant(params, "regression_x_minmax_y_standard"))
    np.testing.assert_allclose(x["x_train"].min(0), 0, atol=1e-12)
    np.testing.assert_allclose(x["x_train"].max(0), 1, atol=1e-12)
    assert x["x_test"].min() < 0 or x["x_test"].max() > 1  # the test rows were not seen by the scaler
    lo, hi = raw["x_train"].min(0), raw["x_train"].max(0)
    np.testing.assert_allclose(x["x_test"], (raw["x_test"] - lo) / (hi - lo), rtol=1e-9)


def test_circles_variant_is_scaled_to_minus_one_one_on_all_rows_as_the_book_does():
    params = repo_params()
    raw = raw_data(params, "circles")
    cfg = variants.check_variant(params, "circles_minmax_all")
    out = prepare.prepare(raw, cfg)
    both = np.concatenate([out["x_train"], out["x_test"]])
    np.testing.assert_allclose(both.min(0), -1, atol=1e-12)
    np.testing.assert_allclose(both.max(0), 1, atol=1e-12)
    train_only = prepare.prepare(raw, {**cfg, "fit_on": "train"})
    assert not np.allclose(train_only["x_test"], out["x_test"])


def test_raw_variants_leave_data_and_units_alone():
    params = repo_params()
    raw = raw_data(params, "regression")
    out = prepare.prepare(raw, variants.check_variant(params, "regression_raw"))
    np.testing.assert_array_equal(out["y_train"], raw["y_train"])
    assert (out["y_scale"], out["y_offset"]) == (1.0, 0.0)


# -- gradient statistics against a hand-computed gradient ---------------------------------------

W1 = np.array([[0.5, -0.3, 0.8], [0.2, 0.7, -0.6]], dtype=np.float32)
B1 = np.array([0.1, -0.2, 0.05], dtype=np.float32)
W2 = np.array([[0.9], [-0.4], [0.3]], dtype=np.float32)
B2 = np.array([0.2], dtype=np.float32)


def tiny_model():
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(1)])
    model.set_weights([W1, B1, W2, B2])
    return model


def hand_gradients(x, y, w1, b1, w2, b2):
    """d mean((tanh(x w1 + b1) w2 + b2 - y)^2) / d (w1, b1, w2, b2), by the chain rule."""
    h = np.tanh(x @ w1 + b1)
    d_out = 2.0 * (h @ w2 + b2 - y[:, None]) / len(x)
    d_hidden = (d_out @ w2.T) * (1.0 - h ** 2)
    return x.T @ d_hidden, d_hidden.sum(0), h.T @ d_out, d_out.sum(0)


def one_step_trial(grad_stats: bool = True, **clip) -> Trial:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 2)).astype(np.float32)
    y = rng.normal(size=8).astype(np.float32)
    optimizer = common.check_optimizer({"name": "sgd", "learning_rate": 0.1, **clip}, "test")
    return Trial(config=Study("tiny")(1), seed=1, data=Split(x, y, x, y), build_model=tiny_model,
                 build_optimizer=common.optimizer_factory(optimizer), loss="mean_squared_error", metric="mse",
                 batch_size=8, epochs=2, grad_stats=grad_stats)


def test_gradient_statistics_equal_the_hand_computed_kernel_gradients_each_epoch():
    from trainlab.engine.population import train_population

    trial = one_step_trial()
    history = train_population([trial])[0].history
    x, y = trial.data.x_train.astype(np.float64), trial.data.y_train.astype(np.float64)
    weights = [W1, B1, W2, B2]
    for epoch in range(2):  # one update per epoch: the epoch's mean is that update's gradient
        grads = hand_gradients(x, y, *weights)
        for layer, g in ((1, grads[0]), (2, grads[2])):
            assert history[f"grad_mean_abs/{layer}"][epoch] == pytest.approx(np.abs(g).mean(), rel=1e-5)
            assert history[f"grad_norm/{layer}"][epoch] == pytest.approx(np.linalg.norm(g), rel=1e-5)
        weights = [w - 0.1 * g for w, g in zip(weights, grads)]  # plain SGD step


def test_gradient_statistics_are_taken_before_clipping_and_only_when_asked():
    from trainlab.engine.population import train_population

    clipped, unclipped, off = train_population([one_step_trial(clipvalue=1e-4), one_step_trial(),
                                                one_step_trial(grad_stats=False)])
    assert clipped.history["grad_norm/1"][0] == pytest.approx(unclipped.history["grad_norm/1"][0], rel=1e-6)
    assert clipped.history["grad_norm/1"][1] != pytest.approx(unclipped.history["grad_norm/1"][1], rel=1e-3)
    assert not any(name.startswith("grad_") for name in off.history)


def test_vanishing_models_record_every_kernel_and_use_random_uniform_0_1_on_every_layer():
    from trainlab.engine.population import train_population
    from trainlab.families import vanishing_gradients

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(40, 2)).astype(np.float32)
    y = (np.linalg.norm(x, axis=1) > 0.6).astype(np.float32)
    trial = Trial(config=Study("model")("tanh_3"), seed=3, data=Split(x, y, x, y),
                  build_model=partial(vanishing_gradients.model, 2, 5, 3, "tanh", "random_uniform_0_1",
                                      "random_uniform_0_1"),
                  build_optimizer=common.optimizer_factory(common.check_optimizer({"name": "sgd"}, "t")),
                  loss="binary_crossentropy", metric="binary_accuracy", batch_size=40, epochs=1, grad_stats=True)
    import keras

    keras.utils.set_random_seed(3)
    kernels = [w for w in trial.build_model().get_weights() if w.ndim == 2]
    assert len(kernels) == 4 and all(k.min() >= 0 and k.max() <= 1 for k in kernels)
    history = train_population([trial])[0].history
    assert sorted(n for n in history if n.startswith("grad_")) == \
        [f"grad_mean_abs/{k}" for k in range(1, 5)] + [f"grad_norm/{k}" for k in range(1, 5)]


# -- bad input ------------------------------------------------------------------------------------

BAD = [
    ("data_scaling", "prepare.regression_x_minmax_y_standard.x", "minmaxx",
     "prepare.regression_x_minmax_y_standard.x: expected one of 'none', 'standard', 'minmax', got 'minmaxx'"),
    ("data_scaling", "prepare.regression_y_standard.y", "robust", "prepare.regression_y_standard.y: expected one of"),
    ("data_scaling", "families.data_scaling.variants.minmax", "regression_minmax",
     "families.data_scaling.variants.minmax: expected one of"),
    ("data_scaling", "families.data_scaling.variants.other", "circles",
     "families.data_scaling.variants.other: prepare.circles scales 'circles'"),
    ("exploding_gradients", "families.exploding_gradients.clipnorm", [1.0, 0],
     "families.exploding_gradients.clipnorm[1]: expected a number > 0"),
    ("exploding_gradients", "families.exploding_gradients.clipvalue", [-5.0],
     "families.exploding_gradients.clipvalue[0]: expected a number > 0"),
    ("exploding_gradients", "families.exploding_gradients.global_clipnorm", [0.0],
     "families.exploding_gradients.global_clipnorm[0]: expected a number > 0"),
    ("exploding_gradients", "families.exploding_gradients.book", {"clipnorm": 0, "clipvalue": 5.0},
     "families.exploding_gradients.book.clipnorm: expected a number > 0"),
    ("exploding_gradients", "families.exploding_gradients.optimizer",
     {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "clipnorm": 1.0},
     "families.exploding_gradients.optimizer.clipnorm: leave the baseline unclipped"),
    ("vanishing_gradients", "families.vanishing_gradients.depth.layers", [5, 0],
     "families.vanishing_gradients.depth.layers[1]: expected an integer ≥ 1, got 0"),
    ("vanishing_gradients", "families.vanishing_gradients.models.tanh_5.layers", 0,
     "families.vanishing_gradients.models.tanh_5.layers: expected an integer ≥ 1, got 0"),
    ("vanishing_gradients", "families.vanishing_gradients.models.tanh_5.activation", "tahn",
     "families.vanishing_gradients.models.tanh_5.activation: expected one of 'relu', 'tanh'"),
    ("vanishing_gradients", "families.vanishing_gradients.depth.init", "he_uniformm",
     "families.vanishing_gradients.depth.init: expected one of"),
    ("vanishing_gradients", "families.vanishing_gradients.models.relu_5.output_init", "glorot",
     "families.vanishing_gradients.models.relu_5.output_init: expected one of"),
    ("vanishing_gradients", "families.vanishing_gradients.width", 0,
     "families.vanishing_gradients.width: expected an integer ≥ 1"),
    ("batch_norm", "families.batch_norm.placements", ["after", "middle"],
     "families.batch_norm.placements[1]: expected one of 'none', 'after', 'before'"),
    ("batch_norm", "families.batch_norm.hidden", 0, "families.batch_norm.hidden: expected an integer ≥ 1"),
]


@pytest.mark.parametrize("family,key,value,message", BAD, ids=[f"{b[1]}={b[2]!r}" for b in BAD])
def test_bad_params_name_the_key_and_what_is_allowed(family, key, value, message):
    with pytest.raises(P.ParamsError) as err:
        check_family(with_change(repo_params(), key, value), family)
    assert message in str(err.value)


# How the data_scaling findings read each configuration name: (X scaler, y scaler).
SCALING_READ_AS = {"raw": ("none", "none"), "y_standard": ("none", "standard"),
                   "x_minmax_y_standard": ("minmax", "standard"), "x_standard_y_standard": ("standard", "standard")}


def test_the_scaling_configurations_the_findings_name_scale_what_their_claims_say():
    # A params edit that points a name at another prepare variant would make the claims false.
    family, cfg = check_family(repo_params(), "data_scaling")
    assert {c.value for f in family.findings(cfg) for c in f.statement.configs()} == set(SCALING_READ_AS)
    for name, (x, y) in SCALING_READ_AS.items():
        assert (cfg["scalers"][name]["x"], cfg["scalers"][name]["y"], cfg["scalers"][name]["fit_on"]) == \
            (x, y, "train"), name


# A configuration left out of the params: the findings that need it are not judged, naming the key to extend.
LEFT_OUT = [
    ("batch_norm", "placements", ["after", "before"], "`families.batch_norm.placements` has no none",
     {"bn_after_reaches_80_sooner", "baseline_80_within_40", "bn_before_as_fast_as_baseline"}),
    ("data_scaling", "variants", {"y_standard": "regression_y_standard",
                                  "x_minmax_y_standard": "regression_x_minmax_y_standard",
                                  "x_standard_y_standard": "regression_x_standard_y_standard"},
     "`families.data_scaling.variants` has no raw", {"unscaled_target_diverges"}),
    ("exploding_gradients", "global_clipnorm", [], "`families.exploding_gradients.global_clipnorm` has no 1",
     {"clipnorm_prevents_divergence", "global_clipnorm_fast"}),
    ("vanishing_gradients", "depth.layers", [10, 15], "`families.vanishing_gradients.depth.layers` has no 20",
     {"twenty_relu_layers_fail"}),
]


@pytest.mark.parametrize("family,key,value,note,needing", LEFT_OUT, ids=[f"{c[0]}.{c[1]}" for c in LEFT_OUT])
def test_a_configuration_left_out_of_the_params_leaves_exactly_its_findings_not_judged(family, key, value, note,
                                                                                       needing):

    section = f"families.{family}"
    fam, cfg = check_family(with_change(repo_params(), f"{section}.{key}", value), family)
    verdicts = F.judge(fam.findings(cfg), pd.DataFrame(columns=COLUMNS), fam.configs(cfg), section)
    flagged = {v["id"] for v in verdicts if note in v["note"]}
    assert flagged == needing
    assert all(v["verdict"] == F.NOT_JUDGED for v in verdicts if v["id"] in needing)


def ramp_history(configs, metric: str, values: list[float], seeds=(1, 2, 3)) -> pd.DataFrame:
    """Every configuration and seed with the same curve of one metric (and a finite loss: nothing diverged)."""

    rows = [(str(c), c.study, seed, epoch, name, value)
            for c in configs for seed in seeds
            for name, curve in ((metric, values), ("loss", [1.0] * len(values)))
            for epoch, value in enumerate(curve, 1)]
    return pd.DataFrame(rows, columns=COLUMNS)


THRESHOLDS = [  # family, its threshold key, a new value, the metric, its curve, the first epoch that reaches it
    ("batch_norm", "threshold", 0.65, "val_accuracy", [e / 10 for e in range(1, 11)], 7),
    ("vanishing_gradients", "threshold", 0.35, "val_accuracy", [e / 10 for e in range(1, 11)], 4),
    ("exploding_gradients", "mse_threshold", 250.0, "val_mse", [1000 / e for e in range(1, 11)], 4),
]


@pytest.mark.parametrize("family,key,value,metric,curve,first", THRESHOLDS, ids=[t[0] for t in THRESHOLDS])
def test_findings_count_epochs_to_the_threshold_the_params_set(family, key, value, metric, curve, first):
    section = f"families.{family}"
    fam, cfg = check_family(with_change(repo_params(), f"{section}.{key}", value), family)
    history = ramp_history(fam.configs(cfg), metric, curve)
    verdicts = F.judge(fam.findings(cfg), history, fam.configs(cfg), section)
    counts = [s for v in verdicts for part in [v, *v.get("parts", [])] for s in part["samples"]
              if s["label"].startswith(f"epochs until {metric}")]
    assert counts, "no finding counts epochs to the threshold"
    assert all(s["mean"] == first and s["n"] == 3 for s in counts), counts


# -- end to end on tiny settings: divergence is recorded, every family writes its outputs ------------

def tiny_params() -> dict:
    params = repo_params()
    params["seeds"] = 2
    params["runtime"] = {**params.get("runtime", {}), "xla": False}
    params["datasets"] = {k: params["datasets"][k] for k in ("regression", "circles")}
    keep = ("regression_raw", "regression_y_standard", "regression_x_minmax_y_standard",
            "regression_x_standard_y_standard", "circles_minmax_all", "circles")
    params["prepare"] = {k: params["prepare"][k] for k in keep}
    f = {k: dict(params["families"][k]) for k in FAMILIES}
    scaling = f["data_scaling"]["variants"]
    f["data_scaling"] |= {"epochs": 3, "seeds": 2, "xla": None,
                          "variants": {k: scaling[k] for k in ("raw", "x_minmax_y_standard")}}
    f["vanishing_gradients"] |= {"epochs": 2, "xla": None, "sequential": None,  # its own design overrides seeds
                                 "models": {"tanh_5": f["vanishing_gradients"]["models"]["tanh_5"]},
                                 "depth": {**f["vanishing_gradients"]["depth"], "layers": [2]}}
    f["exploding_gradients"] |= {"epochs": 3, "xla": None, "clipnorm": [1.0], "clipvalue": [5.0],
                                 "global_clipnorm": []}
    f["batch_norm"] |= {"epochs": 2, "xla": None, "placements": ["after"]}
    params["families"] = {k: {kk: vv for kk, vv in v.items() if vv is not None} for k, v in f.items()}
    return params


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A temporary project root with tiny params, where the data stage and train (which evaluates) ran."""
    from stages import evaluate, generate, scale, train

    root = tmp_path_factory.mktemp("lab")
    params = tiny_params()
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # the stages read and write the working directory
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        assert generate.main([]) == 0 and scale.main([]) == 0
        for family in FAMILIES:
            assert train.main([family]) == 0 and evaluate.main([family]) == 0
        yield root


def summary_of(root: Path, family: str) -> dict:
    """The family's per-configuration summary over seeds (``trainlab.stats.results.summarize``)."""
    return json.loads((root / "reports" / "results" / f"{family}.json").read_text())


def test_divergence_epoch_is_recorded_counted_and_tagged(lab):
    from mlflow.tracking import MlflowClient

    summary = summary_of(lab, "exploding_gradients")
    baseline = summary["clipping=none"]
    assert baseline["diverged"] == 2 and baseline["seeds"] == 2
    # A diverged seed's numbers mean nothing: none of them enters the summary, derived ones included.
    assert baseline["val_mse"]["n"] == 0 and "epochs_to_val_mse_100" not in baseline
    for config in ("clipnorm=1", "clipvalue=5"):
        # Every healthy seed counts, those that never reached the threshold as epochs + 1.
        assert summary[config]["diverged"] == 0 and summary[config]["epochs_to_val_mse_100"]["n"] == 2
        assert 1 <= summary[config]["epochs_to_val_mse_100"]["mean"] <= 4

    history = pd.read_parquet(lab / "data" / "runs" / "exploding_gradients" / "history.parquet")
    client = MlflowClient(f"sqlite:///{lab / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("exploding_gradients").experiment_id
    children = client.search_runs([experiment], "tags.config = 'clipping=none' and tags.diverged = 'true'")
    assert len(children) == 3  # the parent run and both seeds
    for run in children:
        if "seed" not in run.data.params:
            continue
        rows = history[(history["config"] == "clipping=none") & (history["seed"] == int(run.data.params["seed"]))
                       & (history["metric"] == "loss")].sort_values("epoch")
        first_bad = int(rows.loc[~np.isfinite(rows["value"]), "epoch"].min())
        assert run.data.metrics["diverged_epoch"] == first_bad
        assert np.isfinite(rows.loc[rows["epoch"] < first_bad, "value"]).all()
    assert (lab / "reports" / "figures" / "exploding_gradients" / "clipping.png").stat().st_size > 10_000


def test_scaling_reports_errors_in_scaled_and_original_units(lab):
    summary = summary_of(lab, "data_scaling")
    assert summary["scaling=raw"]["diverged"] == 2
    y_scale = float(np.load(lab / "data" / "prepared" / "regression_x_minmax_y_standard.npz")["y_scale"])
    assert y_scale == pytest.approx(raw_data(repo_params(), "regression")["y_train"].std())
    for config in ("scaling=x_minmax_y_standard",):
        entry = summary[config]
        assert entry["diverged"] == 0 and entry["val_mse"]["n"] == 2
        assert entry["val_mse_original"]["mean"] == pytest.approx(entry["val_mse"]["mean"] * y_scale ** 2, rel=1e-4)
    assert (lab / "reports" / "figures" / "data_scaling" / "scaling.png").exists()


def test_vanishing_gradients_history_has_per_layer_statistics_and_figures(lab):

    history = pd.read_parquet(lab / "data" / "runs" / "vanishing_gradients" / "history.parquet")
    deep = set(history.loc[history["config"] == "model=tanh_5", "metric"])
    assert {f"grad_mean_abs/{k}" for k in range(1, 7)} | {f"grad_norm/{k}" for k in range(1, 7)} <= deep
    summary = summary_of(lab, "vanishing_gradients")
    assert summary["depth=2"]["grad_mean_abs_first_layer"]["n"] == 2
    report = json.loads((lab / "reports" / "findings" / "vanishing_gradients.json").read_text())
    notes = {f["id"]: f["note"] for f in report["findings"]}
    assert "`families.vanishing_gradients.models` has no tanh_1" in notes["shallow_tanh_learns"]
    for study in ("model", "depth"):
        assert (lab / "reports" / "figures" / "vanishing_gradients" / f"{study}.png").exists()


def test_batch_norm_reports_epochs_to_the_accuracy_threshold(lab):
    summary = summary_of(lab, "batch_norm")
    assert set(summary) == {"placement=after"}
    reached = summary["placement=after"]["epochs_to_val_accuracy_0.8"]
    assert reached["n"] == 2 and 1 <= reached["mean"] <= 3  # 2 epochs: never reached counts as 3
    assert (lab / "reports" / "figures" / "batch_norm" / "placement.png").exists()


def test_a_bad_clip_threshold_stops_the_train_stage_with_exit_2_and_no_outputs(tmp_path, monkeypatch, capsys):
    from stages import train

    params = with_change(tiny_params(), "families.exploding_gradients.clipnorm", [0])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)  # the stages read and write the working directory
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert train.main(["exploding_gradients"]) == 2
    assert "families.exploding_gradients.clipnorm[0]: expected a number > 0" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_an_unknown_scaler_stops_the_scale_stage_with_exit_2_and_no_outputs(tmp_path, monkeypatch, capsys):
    params = with_change(tiny_params(), "prepare.regression_y_standard.y", "quantile")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    from stages import scale

    assert scale.main([]) == 2
    assert "prepare.regression_y_standard.y: expected one of" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
