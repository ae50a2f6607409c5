"""Families that reuse trained weights: greedy pretraining (supervised, unsupervised) and transfer.

What must hold: frozen weights never change in the population trainer; each pretraining
phase starts from the last one's weights and trains only its new layer and the output;
the source model survives the save/load round trip with identical predictions, and
every transfer repeat starts from it; bad inputs stop a stage with one clear message,
exit 2 and no outputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, write_prepared

from trainlab import params as P
from trainlab.families import check_family, section_key
from trainlab.stats import findings as F
from trainlab.stats.results import history_frame

RUNTIME = {"xla": False, "stack_seeds": True, "seed_block": 0}


def write_project(root: Path, change=None) -> Path:
    """A workspace the stages can run in: tiny params, and the two blobs-3 problems prepared."""
    params = P.load(REPO / "params.yaml")
    params["seeds"] = 2
    params["sources"]["transfer"].update(epochs=3, models=2)  # the book's source and one more (seed 2)
    params["families_from_source"]["transfer"].update(epochs=2, seeds=2)
    for family in ("pretraining_supervised", "pretraining_unsupervised"):
        params["families"][family].update(epochs=2, depth=3, width=4)
    if change:
        change(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_prepared(root, params, ("blobs3", "blobs3_problem1"))
    return root


def run_main(root: Path, store: str, stage: str, *args: str) -> int:
    """A stage's ``main`` run in ``root`` (stages read and write their working directory); its exit code."""
    import importlib

    main = importlib.import_module(f"stages.{stage}").main
    previous, uri = Path.cwd(), os.environ.get("MLFLOW_TRACKING_URI")
    os.chdir(root)
    os.environ["MLFLOW_TRACKING_URI"] = store
    try:
        return main(list(args))
    finally:
        os.chdir(previous)
        if uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI")
        else:
            os.environ["MLFLOW_TRACKING_URI"] = uri


def errors(captured) -> list[str]:
    return [line for line in captured.err.splitlines() if line.startswith("error:")]


def outputs(root: Path) -> list[str]:
    """Files a stage wrote (the prepared inputs and the MLflow store are not outputs)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
                  and p.parent.name != "prepared" and not p.name.startswith(("mlflow.db", "params.yaml")))


def pairs(weights: list[np.ndarray]) -> list[list[np.ndarray]]:
    """(kernel, bias) of each Dense layer."""
    return [weights[i:i + 2] for i in range(0, len(weights), 2)]


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return write_project(tmp_path_factory.mktemp("reuse"))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One MLflow store for the module's stage runs (creating one takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def source(project, store) -> Path:
    """The source stage, run once for the module; its model file."""
    assert run_main(project, store, "source", "transfer") == 0
    return project / "data" / "models" / "transfer.keras"


# -------------------------------------------------------------- greedy pretraining


@pytest.fixture(scope="module")
def phased(project):
    """A pretraining family trained in the project over seeds 1 and 2 (each once per module): (family, cfg, results)."""
    from trainlab.engine.executor import run_trials

    done = {}

    def train(name: str):
        if name not in done:
            previous = Path.cwd()
            os.chdir(project)
            try:
                family, cfg = check_family(P.load(), name)
                done[name] = family, cfg, family.run(cfg, [1, 2], lambda trials: run_trials(trials, RUNTIME))
            finally:
                os.chdir(previous)
        return done[name]
    return train


def test_each_supervised_phase_trains_only_the_new_layer_and_the_output(phased):
    from trainlab.families.pretraining_supervised import LAYERS

    family, cfg, results = phased("pretraining_supervised")
    by = {(r.config, r.seed): r for r in results}
    assert list(dict.fromkeys(r.config for r in results)) == family.configs(cfg) == LAYERS.of([1, 2, 3])
    for seed in (1, 2):
        for depth in (2, 3):
            before = pairs(by[(LAYERS(depth - 1), seed)].weights)
            after = pairs(by[(LAYERS(depth), seed)].weights)
            assert len(after) == depth + 1
            for k in range(depth - 1):  # every older hidden layer: frozen, bit for bit
                assert same(after[k], before[k]), f"hidden layer {k + 1} changed in phase {depth}"
            assert not same(after[-1], before[-1]), "the output layer did not learn"
            assert after[-2][0].shape == (cfg["width"], cfg["width"])  # the new layer sits under the output


def test_unsupervised_classifier_sits_on_the_frozen_encoder_of_its_depth(phased):
    from trainlab.families.pretraining_unsupervised import AUTOENCODER, CLASSIFIER

    family, cfg, results = phased("pretraining_unsupervised")
    by = {r.config: r for r in results if r.seed == 1}
    assert [(r.config, r.seed) for r in results] == [(c, seed) for c in family.configs(cfg) for seed in (1, 2)]
    assert [str(c) for c in family.configs(cfg)] == [
        "autoencoder=1", "classifier=1", "autoencoder=2", "classifier=2", "autoencoder=3", "classifier=3"]
    assert set(by[AUTOENCODER(1)].history) >= {"mse", "val_mse"}
    assert set(by[CLASSIFIER(1)].history) >= {"accuracy", "val_accuracy"}
    for depth in (1, 2, 3):
        encoder, head = pairs(by[AUTOENCODER(depth)].weights), pairs(by[CLASSIFIER(depth)].weights)
        assert all(same(head[k], encoder[k]) for k in range(depth)), "the classifier changed its encoder"
        assert head[-1][0].shape == (cfg["width"], 3) and encoder[-1][0].shape == (cfg["width"], 2)
        if depth > 1:
            shallower = pairs(by[AUTOENCODER(depth - 1)].weights)
            assert all(same(encoder[k], shallower[k]) for k in range(depth - 1))


@pytest.mark.parametrize("name", ["pretraining_supervised", "pretraining_unsupervised"])
def test_every_finding_is_judged_on_what_the_phases_trained(phased, name):
    family, cfg, results = phased(name)
    judged = F.judge(family.findings(cfg), history_frame(results), family.configs(cfg), f"families.{name}")
    assert [j["verdict"] for j in judged if j["verdict"] == F.NOT_JUDGED] == [], judged


@pytest.mark.parametrize("name,study", [("pretraining_supervised", "LAYERS"),
                                        ("pretraining_unsupervised", "CLASSIFIER")])
@pytest.mark.parametrize("depth", [4, 7])
def test_the_deepest_model_a_finding_compares_is_the_deepest_the_params_train(name, study, depth):
    import importlib

    deepest = getattr(importlib.import_module(f"trainlab.families.{name}"), study)(depth)
    params = P.load(REPO / "params.yaml")
    params["families"][name]["depth"] = depth
    family, cfg = check_family(params, name)
    read = {c for f in family.findings(cfg) for c in f.statement.configs()}
    assert deepest in read and read <= set(family.configs(cfg))
    assert any(f"({depth} hidden layers" in f.claim for f in family.findings(cfg))


NOT_JUDGED = [  # params that leave out a configuration a finding needs -> (finding, the note naming the key)
    ("pretraining_supervised", ("families", "depth", 1), "test_accuracy_flat_with_depth",
     "not judged: `families.pretraining_supervised.depth` has no 2"),
    ("pretraining_supervised", ("families", "depth", 1), "train_accuracy_drifts_up",
     "not judged: `families.pretraining_supervised.depth` has fewer than two values"),
    ("pretraining_unsupervised", ("families", "depth", 1), "deepest_encoder_classifies_worse",
     "not judged: `families.pretraining_unsupervised.depth` has no 2"),
    ("transfer", ("families_from_source", "frozen", [0, 1]), "freezing_both_worse_than_none",
     "not judged: `families_from_source.transfer.frozen` has no transfer_frozen2"),
    ("transfer", ("families_from_source", "standalone", False), "transfer_beats_standalone_on_average",
     "not judged: `families_from_source.transfer.standalone` has no standalone"),
]


@pytest.mark.parametrize("name,edit,finding,note", NOT_JUDGED, ids=[f"{n[0]}-{n[2]}" for n in NOT_JUDGED])
def test_a_configuration_the_params_leave_out_is_not_judged_naming_the_key(name, edit, finding, note):
    top, key, value = edit
    params = P.load(REPO / "params.yaml")
    params[top][name][key] = value
    family, cfg = check_family(params, name)
    judged = {j["id"]: j for j in F.judge(family.findings(cfg), history_frame([]), family.configs(cfg),
                                          section_key(params, name))}
    assert judged[finding]["verdict"] == F.NOT_JUDGED and judged[finding]["note"] == note


def test_a_model_on_a_diverged_encoder_scores_no_accuracy():
    from trainlab.engine.trial import TrialResult
    from trainlab.families.pretraining_unsupervised import CLASSIFIER, undefined_after_divergence

    curves = {"loss": np.array([1.0, np.nan, np.nan]), "accuracy": np.array([0.5, 0.342, 0.342]),
              "lr": np.array([0.01, 0.01, 0.01])}
    result = undefined_after_divergence(TrialResult(CLASSIFIER(2), 1, curves, 2, []))
    np.testing.assert_array_equal(result.history["accuracy"], [0.5, np.nan, np.nan])
    np.testing.assert_array_equal(result.history["lr"], [0.01, 0.01, 0.01])


# -------------------------------------------------------------- the source model and transfer


def test_saved_model_loads_with_identical_predictions_and_identical_bytes(blobs_split, tmp_path):
    import keras

    from trainlab.engine import saved_models as models
    from trainlab.sources import source_model

    def build():
        keras.utils.set_random_seed(3)
        return source_model(2, 3, [5, 5], "relu", "he_uniform")

    model, twin = build(), build()  # the same model as two objects (other memory addresses)
    path = models.model_path("m", tmp_path)
    path.parent.mkdir(parents=True)
    models.save_model(model, path)
    loaded = models.load_model("m", tmp_path)
    assert np.array_equal(loaded.predict(blobs_split.x_val, verbose=0), model.predict(blobs_split.x_val, verbose=0))
    again = tmp_path / "again.keras"
    models.save_model(twin, again)
    assert again.read_bytes() == path.read_bytes()  # no date or memory address inside: DVC sees no change


def test_source_stage_writes_the_model_its_metrics_and_logs_the_model_to_mlflow(project, store, source):
    from mlflow.tracking import MlflowClient

    model = source
    assert zipfile.ZipFile(model).testzip() is None
    assert (project / "reports" / "metrics" / "sources" / "transfer.json").exists()
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("sources")
    [run] = client.search_runs([experiment.experiment_id], "tags.config = 'source=transfer' and "
                               "tags.mlflow.parentRunId IS NULL")
    further = project / "data" / "models" / "transfer" / "seed-2.keras"  # sources.transfer.models: 2
    assert sorted(p.name for p in further.parent.iterdir()) == ["seed-2.keras"]
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id, "model")) == \
        ["model/seed-2.keras", "model/transfer.keras"]
    for name, file in (("transfer.keras", model), ("seed-2.keras", further)):
        downloaded = client.download_artifacts(run.info.run_id, f"model/{name}", str(project / "tmp"))
        assert Path(downloaded).read_bytes() == file.read_bytes()
    assert not same(load_weights(model), load_weights(further))  # two sources, two models
    assert run.data.params["hidden"] == "[5, 5]" and run.data.metrics["val_accuracy"] > 0


def load_weights(path: Path) -> list[np.ndarray]:
    import keras

    return keras.models.load_model(path, compile=False).get_weights()


def test_each_transfer_repeat_starts_from_its_own_source_model_and_frozen_layers_stay_fixed(project, source,
                                                                                              monkeypatch):
    """Two source models: repeat 1 starts from the book's (seed 1), repeat 2 from the one of seed 2."""
    from trainlab.engine.population import train_population
    from trainlab.engine.saved_models import load_model
    from trainlab.families.transfer import standalone, transferred

    monkeypatch.chdir(project)
    family, cfg = check_family(P.load(), "transfer")
    trials = family.trials(cfg, [1, 2])
    saved = {1: load_model("transfer").get_weights(), 2: load_model("transfer", seed=2).get_weights()}
    assert list(dict.fromkeys(t.config for t in trials)) == family.configs(cfg)
    assert [str(c) for c in family.configs(cfg)] == ["model=standalone", "model=transfer_frozen0",
                                                     "model=transfer_frozen1", "model=transfer_frozen2"]
    for trial in trials:
        start = trial.build_model().get_weights()
        assert same(start, saved[trial.seed]) == (trial.config != standalone())
        assert not same(start, saved[3 - trial.seed])
        if trial.config != standalone():
            assert trial.tags["source_model"] == ("data/models/transfer.keras" if trial.seed == 1
                                                  else "data/models/transfer/seed-2.keras")

    results = {(r.config, r.seed): r for r in train_population(trials)}
    for frozen in (0, 1, 2):
        for seed in (1, 2):
            end = pairs(results[(transferred(frozen), seed)].weights)
            for k, layer in enumerate(pairs(saved[seed])):
                assert same(end[k], layer) == (k < frozen), f"frozen={frozen}, seed {seed}: layer {k + 1}"


# -------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("family", ["pretraining_supervised", "pretraining_unsupervised"])
def test_a_depth_below_one_is_rejected_naming_the_key(family):
    params = P.load(REPO / "params.yaml")
    params["families"][family]["depth"] = 0
    with pytest.raises(P.ParamsError, match=rf"families\.{family}\.depth: expected an integer ≥ 1 .*got 0"):
        check_family(params, family)


def test_freezing_more_layers_than_the_source_has_is_rejected_naming_the_key():
    params = P.load(REPO / "params.yaml")
    params["families_from_source"]["transfer"]["frozen"] = [0, 3]
    with pytest.raises(P.ParamsError, match=r"families_from_source\.transfer\.frozen: the source model "
                                            r"sources\.transfer has 2 hidden layers, so at most 2 .* got 3"):
        check_family(params, "transfer")


def test_freezing_more_layers_than_the_saved_model_has_is_rejected(project, source, monkeypatch):
    monkeypatch.chdir(project)
    params = P.load()
    params["sources"]["transfer"]["hidden"] = [5, 5, 5]  # params that no longer match the saved file
    params["families_from_source"]["transfer"]["frozen"] = [3]
    family, cfg = check_family(params, "transfer")
    with pytest.raises(P.ParamsError, match=r"transfer\.keras has 2 hidden layers, so at most 2 .* got 3"):
        family.trials(cfg, [1])


@pytest.mark.parametrize("stage,edit,message", [
    ("pretraining_supervised", ("families", "pretraining_supervised", "depth", 0),
     "error: families.pretraining_supervised.depth: expected an integer ≥ 1"),
    ("pretraining_unsupervised", ("families", "pretraining_unsupervised", "depth", -1),
     "error: families.pretraining_unsupervised.depth: expected an integer ≥ 1"),
    ("transfer", ("families_from_source", "transfer", "frozen", [1, 5]),
     "error: families_from_source.transfer.frozen: the source model sources.transfer has 2 hidden layers"),
    ("source", ("sources", "transfer", "hidden", []), "error: sources.transfer.hidden: expected a non-empty list"),
])
def test_bad_params_exit_2_with_one_line_and_no_outputs(tmp_path, store, capsys, stage, edit, message):
    top, name, key, value = edit
    root = write_project(tmp_path, lambda params: params[top][name].__setitem__(key, value))
    code = run_main(root, store, "source", "transfer") if stage == "source" else \
        run_main(root, store, "train", stage)
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1, err
    assert outputs(root) == []


def test_the_source_stage_process_exits_2_on_bad_params(tmp_path):
    root = write_project(tmp_path, lambda params: params["sources"]["transfer"].__setitem__("epochs", 0))
    result = subprocess.run([sys.executable, "-m", "stages.source", "transfer"], cwd=root, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    assert result.stderr.strip() == "error: sources.transfer.epochs: expected an integer ≥ 1, got 0"
    assert outputs(root) == []


@pytest.mark.slow
def test_the_source_stage_as_a_process_trains_in_the_worker_pool_to_the_same_model(tmp_path):
    """``python -m stages.source`` builds its model with a function of its own ``__main__`` module: the pool's
    server must find it there too, and the workers train the same bytes as the stage's own process."""
    root = write_project(tmp_path)
    saved = {}
    for placement in ("local", "process"):
        env = {**os.environ, "PYTHONPATH": str(REPO), "TRAINLAB_EXECUTOR": placement, "TRAINLAB_WORKERS": "2",
               "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
        result = subprocess.run([sys.executable, "-m", "stages.source", "transfer"], cwd=root, capture_output=True,
                                text=True, timeout=600, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        saved[placement] = (root / "data" / "models" / "transfer.keras").read_bytes()
    assert "shard" in result.stderr  # the second run trained in the pool
    assert saved["process"] == saved["local"]


DAMAGE = {
    "missing": None,
    "not_a_model": lambda b: b"not a model",
    "truncated": lambda b: b[: len(b) // 2],
    "altered": lambda b: b[:100] + bytes(255 - x for x in b[100:200]) + b[200:],
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_missing_or_corrupt_source_model_stops_transfer_naming_the_file(source, store, tmp_path, capsys, damage):
    root = write_project(tmp_path)
    model = root / "data" / "models" / "transfer.keras"
    if DAMAGE[damage] is not None:
        model.parent.mkdir(parents=True)
        model.write_bytes(DAMAGE[damage](source.read_bytes()))
    assert run_main(root, store, "train", "transfer") == 2
    [error] = errors(capsys.readouterr())
    assert str(model) in error
    if damage == "missing":
        assert "does not exist: run `dvc repro source@transfer` first" in error
    else:
        assert "is not a readable Keras model" in error and "dvc repro source@transfer" in error
    assert [p for p in outputs(root) if not p.startswith("data/models")] == []
