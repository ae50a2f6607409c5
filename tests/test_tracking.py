"""What the tracking module logs, read back through MLflow's own client from a real SQLite store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainlab.engine.trial import TrialResult

EPOCHS = 300  # more than SEED_CURVE_POINTS and PARENT_CURVE_POINTS: both kinds of curve are thinned
STARTED = 1_700_000_000.0


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module (creating one runs MLflow's migrations, seconds); each test logs its
    own family, so its own experiment."""
    from mlflow import MlflowClient

    from trainlab import tracking

    folder = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        tracking.client()
        yield MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")


def _result(config: str, seed: int, diverged_at: int | None = None, epochs: int = EPOCHS) -> TrialResult:
    rng = np.random.default_rng(seed)
    loss = np.linspace(1.0, 0.5, epochs) + rng.normal(0, 0.01, epochs)
    if diverged_at is not None:
        loss[diverged_at - 1:] = np.nan
    return TrialResult(config=config, seed=seed, diverged_epoch=diverged_at, weights=[],
                       history={"loss": loss, "val_accuracy": np.linspace(0.3, 0.9, epochs) + seed / 100,
                                "grad_norm/1": np.full(epochs, 0.1 * seed)},
                       tags={"nodes": 3}, params={"nodes": 3, "hidden_units": [8, 8]},
                       dataset={"name": "blobs3", "source": "data/prepared/blobs3.npz", "digest": "abc123",
                                "n_train": 500, "n_val": 500, "features": 2},
                       model={"summary": "Model: sequential"},
                       started=STARTED + seed, epoch_ends=[STARTED + seed + e for e in range(1, epochs + 1)])


def _log(family: str, results: list[TrialResult], **kwargs) -> dict[str, str]:
    from trainlab import tracking
    from trainlab.stats.results import summarize

    summary = summarize(results, kwargs.get("trial_metrics"))  # as the train stage summarises a family
    return tracking.log_family(family, results, summary, **kwargs)


def _family_runs(store, family: str) -> tuple[dict, dict]:
    """The family's runs: parents by configuration, children by (configuration, seed)."""
    experiment = store.get_experiment_by_name(family).experiment_id
    runs = store.search_runs([experiment], max_results=1000)
    return ({r.data.tags["config"]: r for r in runs if r.data.tags["run.kind"] == "configuration"},
            {(r.data.tags["config"], int(r.data.tags["seed"])): r for r in runs if r.data.tags["run.kind"] == "seed"})


def _curve(store, run, key: str) -> tuple[list[int], list[float]]:
    history = sorted(store.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
    return [m.step for m in history], [m.value for m in history]


@pytest.fixture(scope="module")
def family(store):
    """One logged family: two configurations, three seeds each, one seed of ``nodes=5`` diverged at epoch 120."""
    results = [_result("nodes=3", s) for s in (1, 2, 3)] + [_result("nodes=5", 1), _result("nodes=5", 2, 120),
                                                           _result("nodes=5", 3)]
    parents = _log("layout", results, stage="train@layout", section={"layout": {"epochs": EPOCHS}},
                   params={"runtime.xla": "False"}, tags={"run.batch": "b1", "extra": "x"},
                   trial_metrics=lambda r: {"best_val_accuracy": float(np.nanmax(r.history["val_accuracy"]))})
    return {"parents": parents, "results": results}


def test_one_parent_per_configuration_and_one_finished_child_per_seed(store, family):
    parents, children = _family_runs(store, "layout")
    assert {c: r.info.run_id for c, r in parents.items()} == family["parents"]
    assert sorted(children) == [(c, s) for c in ("nodes=3", "nodes=5") for s in (1, 2, 3)]
    for (config, seed), child in children.items():
        assert child.data.tags["mlflow.parentRunId"] == parents[config].info.run_id
        assert child.data.tags["seed_of"] == config and child.data.tags["seed"] == str(seed)
        assert child.info.run_name == f"{config} seed={seed}" and child.data.tags["run.batch"] == "b1"
        assert child.info.start_time == round((STARTED + seed) * 1000)
        assert child.info.end_time == round((STARTED + seed + EPOCHS) * 1000)
    for config, parent in parents.items():
        assert parent.info.run_name == config and "seed_of" not in parent.data.tags
    for run in [*parents.values(), *children.values()]:
        assert run.info.status == "FINISHED"
    for run in parents.values():  # the configuration names its data; its seeds share it
        [dataset] = run.inputs.dataset_inputs
        assert (dataset.dataset.name, dataset.dataset.digest) == ("blobs3", "abc123")
    experiment = store.get_experiment_by_name("layout")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.artifact_location.endswith("/mlartifacts/layout")


def test_params_and_tags_on_parents_and_children(store, family):
    from trainlab import tracking

    parents, children = _family_runs(store, "layout")
    for run in [*parents.values(), *children.values()]:
        params, tags = run.data.params, run.data.tags
        assert params["nodes"] == "3" and params["hidden_units"] == "[8, 8]" and params["runtime.xla"] == "False"
        assert tags["dvc.stage"] == "train@layout" and tags["git.commit"] == tracking.git_commit()
        assert tags["params.hash"] == tracking.params_hash({"layout": {"epochs": EPOCHS}})
        assert tags["run.batch"] == "b1" and tags["extra"] == "x"
    assert all(p.data.params["seeds"] == "3" and "seed" not in p.data.params for p in parents.values())
    assert all(c.data.params["seed"] == str(seed) for (_, seed), c in children.items())
    assert parents["nodes=5"].data.tags["diverged"] == "true" and parents["nodes=3"].data.tags["diverged"] == "false"
    assert [k for k, c in children.items() if c.data.tags["diverged"] == "true"] == [("nodes=5", 2)]
    artifacts = {a.path for a in store.list_artifacts(parents["nodes=3"].info.run_id)}
    assert {"params.yaml", "summary.json", "model_summary.txt"} <= artifacts


def test_parents_log_the_mean_over_healthy_seeds_and_its_band_at_evenly_spaced_epochs(store, family):
    from trainlab import tracking

    parents, _ = _family_runs(store, "layout")
    kept = tracking.thin(np.arange(1, EPOCHS + 1), tracking.PARENT_CURVE_POINTS)
    assert len(kept) == tracking.PARENT_CURVE_POINTS < EPOCHS and kept[-1] == EPOCHS
    for config, parent in parents.items():
        healthy = [r for r in family["results"] if r.config == config and not r.diverged]
        assert len(healthy) == (3 if config == "nodes=3" else 2)
        for metric in ("loss", "val_accuracy"):
            seeds = np.stack([r.history[metric] for r in healthy])
            mean, std = seeds.mean(axis=0), seeds.std(axis=0, ddof=1)
            for key, want in ((metric, mean), (f"{metric}_low", mean - std), (f"{metric}_high", mean + std)):
                steps, values = _curve(store, parent, key)
                assert steps == kept.tolist(), key
                np.testing.assert_allclose(values, want[kept - 1], rtol=1e-9, err_msg=key)
            assert parent.data.metrics[metric] == pytest.approx(mean[-1])  # the latest value is the final mean
        # per-layer gradient statistics: the mean curve only
        assert _curve(store, parent, "grad_norm/1")[0] == kept.tolist()
        assert not {"grad_norm/1_low", "grad_norm/1_high"} & set(parent.data.metrics)
        # a column of zeros is not logged: diverged_seeds only where a seed diverged
        assert parent.data.metrics.get("diverged_seeds") == (1 if config == "nodes=5" else None)
        assert parent.data.metrics["best_val_accuracy"] == pytest.approx(
            np.mean([np.max(r.history["val_accuracy"]) for r in healthy]), rel=1e-5)


def test_children_log_the_same_metric_names_thinned_with_the_last_epoch_kept(store, family):
    from trainlab import tracking

    parents, children = _family_runs(store, "layout")
    by_seed = {(r.config, r.seed): r for r in family["results"]}
    for key, child in children.items():
        result = by_seed[key]
        assert {"loss", "val_accuracy", "best_val_accuracy"} <= set(child.data.metrics)
        assert {"loss", "val_accuracy", "best_val_accuracy"} <= set(parents[key[0]].data.metrics)
        assert not [k for k in child.data.metrics if k.startswith("grad_") or k.endswith(("_low", "_high"))]
        steps, values = _curve(store, child, "val_accuracy")
        assert len(steps) == tracking.SEED_CURVE_POINTS < EPOCHS
        assert steps[0] == 1 and steps[-1] == EPOCHS  # the first and the last epoch
        gaps = np.diff(steps)
        assert gaps.max() - gaps.min() <= 1  # evenly spaced
        np.testing.assert_allclose(values, result.history["val_accuracy"][np.array(steps) - 1])
        assert child.data.metrics["val_accuracy"] == pytest.approx(result.history["val_accuracy"][-1])
        stamps = [m.timestamp for m in sorted(store.get_metric_history(child.info.run_id, "val_accuracy"),
                                              key=lambda m: m.step)]
        assert stamps == sorted(stamps) and stamps[-1] == child.info.end_time  # when each epoch ended


def test_a_diverged_seed_logs_its_finite_epochs_and_the_divergence(store, family):
    from trainlab import tracking

    _, children = _family_runs(store, "layout")
    diverged = children[("nodes=5", 2)]
    assert diverged.data.metrics["diverged_epoch"] == 120
    steps, values = _curve(store, diverged, "loss")
    assert len(steps) == tracking.SEED_CURVE_POINTS and steps[0] == 1 and steps[-1] == 119  # the last finite one
    assert all(np.isfinite(values))
    assert len(_curve(store, diverged, "val_accuracy")[0]) == tracking.SEED_CURVE_POINTS  # still finite
    assert "diverged_epoch" not in children[("nodes=5", 1)].data.metrics


def test_thin_keeps_short_curves_and_the_last_epoch_of_long_ones():
    from trainlab.tracking import thin

    assert thin(np.arange(1, 4), 5).tolist() == [1, 2, 3]
    assert thin(np.arange(1, 11), 10).tolist() == list(range(1, 11))
    for n, points in ((11, 10), (201, 50), (5000, 50), (7, 2), (9, 1)):
        kept = thin(np.arange(1, n + 1), points)
        assert len(kept) == points and kept[-1] == n and list(kept) == sorted(set(kept))
    assert thin(np.array([2, 5, 9]), 2).tolist() == [2, 9]


def test_each_rerun_supersedes_the_runs_before_it_once(store):
    """mark_superseded tags the stage's earlier parents and their seeds, never the ones just logged,
    and does not count runs tagged by an earlier rerun again."""
    from trainlab import tracking

    results = [_result("nodes=3", 1, epochs=5), _result("nodes=3", 2, epochs=5)]
    tagged, logged = [], []
    for _ in range(3):
        logged.append(_log("rerun", results, stage="train@rerun")["nodes=3"])
        tagged.append(tracking.mark_superseded("rerun", "train@rerun", {logged[-1]}))
    assert tagged == [0, 3, 3]  # a parent and its two seeds each time
    runs = store.search_runs([store.get_experiment_by_name("rerun").experiment_id], max_results=100)
    assert len(runs) == 9
    for run in runs:
        parent = run.data.tags.get("mlflow.parentRunId", run.info.run_id)
        assert run.data.tags.get(tracking.SUPERSEDED) == (None if parent == logged[-1] else "true")


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_fail_unfinished_fails_orphans_and_leaves_live_owners_running(store):
    from trainlab import tracking

    experiment = tracking._experiment_id(store, "orphans")
    host = tracking.owner_tags()[tracking.OWNER_HOST]
    owners = {"dead": {tracking.OWNER_HOST: host, tracking.OWNER_PID: str(_dead_pid())},
              "none": {},
              "alive": {tracking.OWNER_HOST: host, tracking.OWNER_PID: str(os.getppid())},
              "mine": tracking.owner_tags(),
              "elsewhere": {tracking.OWNER_HOST: host + "-other", tracking.OWNER_PID: "1"}}
    runs = {name: store.create_run(experiment, tags={"dvc.stage": "train@orphans", **tags}).info.run_id
            for name, tags in owners.items()}
    other_stage = store.create_run(experiment, tags={"dvc.stage": "train@else"}).info.run_id

    def status() -> dict:
        return {name: store.get_run(run_id).info.status for name, run_id in runs.items()}

    assert tracking.fail_unfinished("orphans", "train@orphans") == 2
    assert status() == {"dead": "FAILED", "none": "FAILED", "alive": "RUNNING", "mine": "RUNNING",
                        "elsewhere": "RUNNING"}
    assert tracking.fail_unfinished("orphans", "train@orphans", mine=True) == 1
    assert status()["mine"] == "FAILED" and status()["alive"] == "RUNNING"
    assert store.get_run(other_stage).info.status == "RUNNING"
    assert tracking.fail_unfinished("no such family", "train@x") == 0


def test_logging_that_fails_half_way_leaves_every_run_running_for_fail_unfinished(store):
    """Runs are finished only once everything is logged: the stage's cleanup then fails all of them."""
    from trainlab import tracking
    from trainlab.stats.results import summarize

    results = [_result("nodes=3", s, epochs=5) for s in (1, 2, 3)]

    def breaks_on_the_third_seed(result: TrialResult) -> dict:
        if result.seed == 3:
            raise RuntimeError("store went away")
        return {"best": 1.0}

    summary = summarize(results)
    with pytest.raises(RuntimeError, match="store went away"):
        tracking.log_family("broken", results, summary, stage="train@broken", tags=tracking.owner_tags(),
                            trial_metrics=breaks_on_the_third_seed)
    experiment = store.get_experiment_by_name("broken").experiment_id
    assert {r.info.status for r in store.search_runs([experiment])} == {"RUNNING"}
    assert tracking.fail_unfinished("broken", "train@broken", mine=True) == 3  # the parent and two seeds
    assert {r.info.status for r in store.search_runs([experiment])} == {"FAILED"}


def test_log_evaluation_and_figures(store, family, tmp_path):
    from trainlab import tracking

    figure = tmp_path / "study.png"
    figure.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert tracking.log_figures(family["parents"], {"nodes=3": figure}) == 1
    assert [a.path for a in store.list_artifacts(family["parents"]["nodes=3"], "figures")] == ["figures/study.png"]
    findings = [{"id": "f1", "verdict": "holds", "code": 1, "p_value": 0.01, "sequential": {"round": 2, "seeds": 20}},
                {"id": "f2", "verdict": "not judged", "code": None}]
    run_id = tracking.log_evaluation("layout", findings, [figure], {"alpha": "0.05"}, stage="evaluate@layout")
    run = store.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["run.kind"] == "evaluate"
    assert run.data.tags["finding.f1"] == "holds" and run.data.tags["finding.f2"] == "not judged"
    assert run.data.params == {"alpha": "0.05"}


def test_a_file_store_is_refused_with_a_tracking_error(monkeypatch):
    from trainlab import tracking
    from trainlab.io import InputError

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:./mlruns")
    with pytest.raises(tracking.TrackingError, match="file store") as raised:
        tracking.client()
    assert isinstance(raised.value, InputError)


def test_the_module_uses_mlflows_public_api_only():
    source = (Path(__file__).resolve().parents[1] / "trainlab" / "tracking.py").read_text()
    for private in ("sqlalchemy", "dbmodels", "_tracking_client", "sqlite3", "mlflow.store", "mlflow.utils"):
        assert private not in source, private


# -- a tiny family trained for real (tests/conftest.py: tiny_store) --------------------------------------------

def _runs(store) -> tuple[list, list]:
    runs = store.search_runs([store.get_experiment_by_name("unit").experiment_id], max_results=100)
    return ([r for r in runs if r.data.tags["run.kind"] == "configuration"],
            [r for r in runs if r.data.tags["run.kind"] == "seed"])


def test_every_run_logs_its_trials_effective_values_and_only_those(tiny_store):
    """learning_rate=1 shows learning_rate 1 (not the section's 0.01); SGD runs carry no Adam betas."""
    from mlflow import MlflowClient

    store = MlflowClient(tiny_store["uri"])
    parents, children = _runs(store)
    assert len(parents) == 3 and len(children) == 6
    by_config = {t.config: t for t in tiny_store["trials"]}
    for run in parents + children:
        trial = by_config[run.data.tags["config"]]
        params = run.data.params
        assert params["learning_rate"] == str(trial.build_optimizer.args[0]["learning_rate"])
        assert params["optimizer"] == trial.build_optimizer.args[0]["name"]
        assert params["batch_size"] == "50" and params["epochs"] == "3" and params["data"] == "blobs3"
        assert params["hidden_layers"] == "1" and params["hidden_units"] == "[8]"
        assert params["loss"] == "categorical_crossentropy" and params["runtime.xla"] == "False"
        if params["optimizer"] == "sgd":
            assert params["momentum"] == "0.0" and not {"beta_1", "beta_2", "rho", "epsilon"} & set(params)
        else:
            assert params["beta_1"] == "0.9" and "momentum" not in params and "nesterov" not in params
        assert not [k for k in params if k.startswith(("optimizer.", "config.", "optimizers."))]
        assert params.get("seed") == run.data.tags.get("seed")
    lr1 = next(r for r in parents if r.data.tags["config"] == "learning_rate=1")
    assert lr1.data.params["learning_rate"] == "1.0"


def test_parents_and_seeds_share_metric_names_and_parents_hold_the_mean(tiny_store):
    from mlflow import MlflowClient

    store = MlflowClient(tiny_store["uri"])
    parents, children = _runs(store)
    for parent in parents:
        config = parent.data.tags["config"]
        mine = [c for c in children if c.data.tags["mlflow.parentRunId"] == parent.info.run_id]
        assert len(mine) == 2 and all(c.data.tags["seed_of"] == config for c in mine)
        assert "seed_of" not in parent.data.tags  # grouping seeds by seed_of leaves the parent out
        shared = {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "best_val_accuracy"}
        assert shared <= set(parent.data.metrics) and all(shared <= set(c.data.metrics) for c in mine)
        # a final value's mean under its own name, its std beside it; the rest of the spread is summary.json
        assert not [k for k in parent.data.metrics if k.endswith(("_mean", "_n", "_ci95_low", "_ci95_high"))]
        assert "best_val_accuracy_std" in parent.data.metrics and "val_accuracy_std" not in parent.data.metrics
        summary = tiny_store["summary"][config]
        for name in ("val_accuracy", "loss"):
            assert parent.data.metrics[name] == pytest.approx(summary[name]["mean"], rel=1e-5)
            assert parent.data.metrics[name] == pytest.approx(np.mean([c.data.metrics[name] for c in mine]), rel=1e-6)
            metrics = parent.data.metrics
            assert metrics[f"{name}_low"] <= metrics[name] <= metrics[f"{name}_high"]  # the band around the mean
        curve = store.get_metric_history(parent.info.run_id, "val_accuracy")
        assert [m.step for m in curve] == [1, 2, 3]
        artifacts = {a.path for a in store.list_artifacts(parent.info.run_id)}
        assert {"params.yaml", "summary.json", "model_summary.txt"} <= artifacts
        spread = store.download_artifacts(parent.info.run_id, "summary.json", str(tiny_store["folder"]))
        assert '"ci95_low"' in open(spread).read()
        text = open(store.download_artifacts(parent.info.run_id, "model_summary.txt", str(tiny_store["folder"]))).read()
        assert "Dense" in text and "Total params: 51" in text  # 2*8+8 + 8*3+3


def test_run_times_are_the_trainings_own_and_epochs_carry_their_own_timestamps(tiny_store):
    from mlflow import MlflowClient

    store = MlflowClient(tiny_store["uri"])
    parents, children = _runs(store)
    trained_ms = tiny_store["trained_seconds"] * 1000
    by_seed = {(r.config, r.seed): r for r in tiny_store["results"]}
    for run in parents + children:
        duration = run.info.end_time - run.info.start_time
        assert 0.3 * trained_ms < duration <= trained_ms + 5, (duration, trained_ms)
        stamps = [m.timestamp for m in store.get_metric_history(run.info.run_id, "loss")]
        assert stamps == sorted(stamps) and len(set(stamps)) == 3  # one per epoch, as the epochs ended
        assert run.info.start_time < stamps[0] and stamps[-1] <= run.info.end_time
    for child in children:
        result = by_seed[(child.data.tags["config"], int(child.data.tags["seed"]))]
        assert child.info.start_time == round(result.started * 1000)
        assert child.info.end_time == round(result.epoch_ends[-1] * 1000)


def test_runs_carry_provenance_dataset_and_the_model_training_view(tiny_store):
    from mlflow import MlflowClient

    from trainlab import tracking

    store = MlflowClient(tiny_store["uri"])
    experiment = store.get_experiment_by_name("unit")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    parents, children = _runs(store)
    names = [r.info.run_name for r in parents + children]
    assert len(set(names)) == len(names) and not any("@" in n for n in names)
    for run in parents + children:
        tags = run.data.tags
        assert tags["dvc.experiment"] == "tiny-exp" and tags["dvc.stage"] == "train@unit"
        assert tags["git.commit"] == tracking.git_commit() and tags["git.dirty"] in ("true", "false")
        assert len(tags["params.hash"]) == 12 and tags["mlflow.user"] and tags["mlflow.source.name"]
        assert run.info.user_id == tags["mlflow.user"]
    for run in parents:
        [dataset] = run.inputs.dataset_inputs
        assert dataset.dataset.name == "blobs3" and len(dataset.dataset.digest) == 8
        assert "data/prepared/blobs3.npz" in dataset.dataset.source
        assert [(t.key, t.value) for t in dataset.tags] == [("mlflow.data.context", "training")]


def test_the_evaluate_run_has_a_few_count_metrics_and_its_findings_as_tags_and_a_table(store, tmp_path):
    """The runs table's column picker lists counts per outcome, not a number per finding; each finding's
    verdict is a tag in words and its numbers are a row of the findings.json table."""
    import json

    from trainlab import tracking

    findings = [{"id": f"f{i}", "verdict": "holds", "code": 1, "p_value": 0.01, "estimate": {"value": 0.2,
                 "low": 0.1, "high": 0.3}, "sequential": {"round": 2, "seeds": 20}} for i in range(12)]
    findings.append({"id": "open", "verdict": "not judged", "code": None})
    run = store.get_run(tracking.log_evaluation("few_metrics", findings, [], {"alpha": "0.05"}))
    assert run.info.run_name == "evaluate"
    assert set(run.data.metrics) == {f"findings_{v.replace(' ', '_').replace('-', '_')}"
                                     for v in tracking.VERDICT_COUNTS}
    assert run.data.metrics["findings_holds"] == 12 and run.data.metrics["findings_not_judged"] == 1
    assert run.data.tags["finding.f3"] == "holds" and run.data.tags["finding.open"] == "not judged"
    table = json.loads(Path(store.download_artifacts(run.info.run_id, "findings.json", str(tmp_path))).read_text())
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    assert rows[0] == {"finding": "f0", "verdict": "holds", "estimate": 0.2, "estimate_low": 0.1,
                       "estimate_high": 0.3, "one_run": None, "one_run_low": None, "one_run_high": None,
                       "p_value": 0.01, "round": 2, "seeds": 20}
    assert rows[-1]["finding"] == "open" and rows[-1]["verdict"] == "not judged"


@pytest.mark.parametrize(("value", "text"), [(np.float32(0.01), "0.01"), (float(np.float32(0.01)), "0.01"),
                                             (float(np.float32(0.9372)), "0.9372"), (0.1, "0.1"),
                                             (1e-7, "1e-07"), (0.123456789012, "0.123456789012"), (3, "3"),
                                             (True, "True"), ([0.1, 8], "[0.1, 8]"), ("adam", "adam")])
def test_params_are_the_shortest_decimal_that_gives_their_float_back(value, text):
    from trainlab import tracking

    assert tracking.param_text(value) == text
    if isinstance(value, float):  # nothing is lost: the text reads back as the float logged
        assert float(text) == value or float(np.float32(float(text))) == np.float32(value)


def test_a_parent_carries_its_own_seed_count_and_the_spread_of_its_final_values(store, tmp_path):
    """The sequential design gives some configurations more seeds: a parent's ``seeds`` param and its
    params.yaml artifact both name its own count, and each final mean has its std beside it."""
    import yaml

    results = [_result("nodes=3", s, epochs=5) for s in range(1, 4)] + [_result("nodes=7", s, epochs=5)
                                                                      for s in range(1, 7)]
    parents = _log("own_seeds", results, section={"seeds": 6, "own_seeds": {"epochs": 5}},
                   trial_metrics=lambda r: {"best_val_accuracy": float(np.nanmax(r.history["val_accuracy"]))})
    for config, seeds in (("nodes=3", 3), ("nodes=7", 6)):
        run = store.get_run(parents[config])
        assert run.data.params["seeds"] == str(seeds)
        folder = store.download_artifacts(run.info.run_id, "params.yaml", str(tmp_path / config))
        assert yaml.safe_load(Path(folder).read_text())["seeds"] == seeds
        finals = [np.max(r.history["val_accuracy"]) for r in results if r.config == config]
        assert run.data.metrics["best_val_accuracy_std"] == pytest.approx(np.std(finals, ddof=1), rel=1e-4)
