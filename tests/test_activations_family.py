"""The activations family: dead units counted right, and the family trained end to end by the stages.

Dead-unit counting is checked on a hand-made network whose answer is worked out below, and against
Keras itself (its activations, and a trained relu network's hidden outputs); the family runs through
the real generate/prepare/train/evaluate stages on tiny settings, with only its own module and
params section (no dvc.yaml entry, no other module knows it).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from conftest import repo_params, with_change

from trainlab import params as P
from trainlab.families import activations as A
from trainlab.families import check_family

# Two inputs; hidden layer 1: unit 0 passes x0, unit 1 is always negative, unit 2 is always 0;
# hidden layer 2: one unit -a0 - 0.1; then an output layer (not counted).
X = np.array([[1.0, 0.0], [-1.0, 0.0]], dtype=np.float32)
WEIGHTS = [np.array([[1.0, -1.0, 0.0], [0.0, -1.0, 0.0]]), np.array([0.0, -10.0, 0.0]),
           np.array([[-1.0], [0.0], [0.0]]), np.array([-0.1]),
           np.array([[1.0]]), np.array([0.0])]


@pytest.mark.parametrize("activation, second_layer", [
    ("relu", 1.0),        # a0 = [1, 0]: z = [-1.1, -0.1], never positive: dead
    ("leaky_relu", 0.0),  # a0 = [1, -0.2]: z = [-1.1, 0.1]: alive for the second row
    ("elu", 0.0),         # a0 = [1, -0.63]: z = [-1.1, 0.53]: alive
])
def test_dead_units_are_the_units_never_positive_over_the_inputs_layer_by_layer(activation, second_layer):
    # Layer 1: units 1 (always -10 or less) and 2 (always exactly 0) never exceed 0; unit 0 does.
    assert A.dead_units(WEIGHTS, X, activation) == pytest.approx([2 / 3, second_layer])


def test_numpy_rectifiers_are_the_ones_keras_trains_with():
    import keras

    z = np.linspace(-3, 3, 61, dtype=np.float32)
    for name, numpy_activation in A.RECTIFIERS.items():
        np.testing.assert_allclose(numpy_activation(z), keras.ops.convert_to_numpy(keras.activations.get(name)(z)),
                                   rtol=1e-6, atol=1e-6)


def test_an_activation_keras_lacks_names_the_key():
    params = with_change(repo_params(), "families.activations.activations.relu6", "he_uniform")
    with pytest.raises(P.ParamsError, match=r"families\.activations\.activations\.relu6: expected one of"):
        check_family(params, "activations")


def test_findings_are_judged_at_the_deepest_depth_the_params_list():
    _, cfg = check_family(with_change(repo_params(), "families.activations.depths", [3, 7]), "activations")
    configs = {str(c) for f in A.FAMILY.findings(cfg) for c in f.statement.configs()}
    assert configs == {f"depth7={a}" for a in ("sigmoid", "tanh", "relu", "leaky_relu", "elu")}


# -- end to end: the stages train and evaluate the family from params alone -------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from stages import evaluate, generate, scale, train

    root = tmp_path_factory.mktemp("activations")
    params = repo_params()
    params["seeds"] = 2
    params["runtime"] = {**params["runtime"], "xla": False}
    params["datasets"] = {"circles": params["datasets"]["circles"]}
    params["prepare"] = {"circles_minmax_all": params["prepare"]["circles_minmax_all"]}
    params["families"] = {"activations": {**params["families"]["activations"], "epochs": 2, "depths": [1, 2],
                                          "sequential": None}}  # its own design would override seeds: 2
    params.pop("sources", None), params.pop("families_from_source", None), params.pop("families_on_results", None)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        assert generate.main([]) == 0 and scale.main([]) == 0
        assert train.main(["activations"]) == 0 and evaluate.main(["activations"]) == 0
        yield root, params


def test_the_stages_record_dead_units_of_rectifier_networks_only_and_judge_every_finding(lab):
    root, params = lab
    _, cfg = check_family(params, "activations")
    summary = json.loads((root / "reports" / "results" / "activations.json").read_text())
    assert len(summary) == 10
    for config, (layers, activation, _) in A.architectures(cfg).items():
        entry = summary[str(config)]
        rectifier = activation in A.RECTIFIERS
        expected = {"dead_units", *(f"dead_units/{k}" for k in range(1, layers + 1))} if rectifier else set()
        assert {m for m in entry if m.startswith("dead_units")} == expected, config
        for metric in expected:
            assert entry[metric]["n"] == 2 and 0 <= entry[metric]["mean"] <= 1
    report = json.loads((root / "reports" / "findings" / "activations.json").read_text())
    assert [f["id"] for f in report["findings"]] == [f.id for f in A.FAMILY.findings(
        check_family(repo_params(), "activations")[1])]
    assert all(f["verdict"] != "not judged" and f["samples"] for f in report["findings"])
    for depth in (1, 2):
        assert (root / "reports" / "figures" / "activations" / f"depth{depth}.png").stat().st_size > 10_000


def test_a_relu_unit_counted_dead_outputs_zero_for_every_training_input_in_keras(lab):
    import keras

    from trainlab.data.prepared import load_prepared
    from trainlab.engine.executor import run_trials

    root, params = lab
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        _, cfg = check_family(with_change(params, "families.activations.activations", {"relu": "he_uniform"}),
                              "activations")
        results = A.FAMILY.run(cfg, [1, 2], lambda trials: run_trials(trials, params["runtime"]))
        x = load_prepared(cfg["data"]).split("raw").x_train
    for result in results:
        layers = result.tags["layers"]
        net = keras.Sequential([keras.Input((2,)), *(keras.layers.Dense(cfg["width"], activation="relu")
                                                      for _ in range(layers))])
        net.set_weights(result.weights[:-2])
        hidden = x
        for k, layer in enumerate(net.layers, 1):
            hidden = keras.ops.convert_to_numpy(layer(hidden))
            dead = np.mean(np.all(hidden == 0, axis=0))
            assert result.history[f"dead_units/{k}"] == pytest.approx([dead])
