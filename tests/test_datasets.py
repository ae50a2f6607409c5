"""Data sets from files and scikit-learn's bundled data sets (trainlab.data.datasets), and families trained on them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

from stages import generate
from trainlab import params as P
from trainlab.data import datasets


def base_params() -> dict:
    params = P.load(REPO / "params.yaml")
    params.pop("sources", None), params.pop("families_from_source", None)
    return params


def write(root, params: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def classes_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = np.repeat(["a", "b", "c"], n // 3)
    centre = {"a": 0.0, "b": 3.0, "c": 6.0}
    x = np.array([centre[k] for k in label])[:, None] + rng.normal(size=(n, 2))
    return pd.DataFrame({"f1": x[:, 0], "f2": x[:, 1], "kind": label})


def run_generate(root, monkeypatch, capsys, frame: pd.DataFrame | None, **entry) -> tuple[int, str, str]:
    if frame is not None:
        frame.to_csv(root / "mine.csv", index=False)
    params = base_params()
    params["datasets_from_files"] = {"mine": {"file": "mine.csv", "target": "kind", **entry}}
    write(root, params)
    monkeypatch.chdir(root)
    code = generate.main(["--file", "mine"])
    out = capsys.readouterr()
    return code, out.out, out.err


BAD_FILES = {  # case -> (edit of a good frame, or None for no file; entry; what the message says)
    "missing file": (None, {}, "file not found"),
    "missing target column": (lambda f: f.drop(columns="kind"), {}, "target column 'kind' not found"),
    "non-numeric features": (lambda f: f.assign(city="x", zone="y"), {}, "non-numeric feature columns: city, zone"),
    "missing values": (lambda f: f.assign(f2=f["f2"].where(f.index % 10 != 0)), {},
                       "column 'f2' has 6 missing values"),
    "a class with one row": (lambda f: pd.concat([f, f.iloc[:1].assign(kind="lonely")]), {},
                             "class 'lonely' of 'kind' has 1 row"),
    "fewer rows than the split needs": (lambda f: f.iloc[[0, 1, 20, 21, 40, 41]], {"n_train": 5},
                                        "fewer than the split needs"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_stops_generate_with_one_line_naming_key_and_file_and_writes_nothing(case, tmp_path, monkeypatch,
                                                                                        capsys):
    edit, entry, says = BAD_FILES[case]
    frame = None if edit is None else edit(classes_frame())
    code, _, err = run_generate(tmp_path, monkeypatch, capsys, frame, **entry)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: datasets_from_files.mine (mine.csv): "), err
    assert says in lines[0]
    assert not (tmp_path / "data").exists()


def test_bad_split_keys_are_refused_at_the_edge():
    params = base_params()
    params["datasets_from_files"] = {"mine": {"file": "mine.csv", "target": "kind", "n_train": 10,
                                              "test_fraction": 0.3}}
    with pytest.raises(P.ParamsError, match=r"datasets_from_files.mine.test_fraction: give n_train or"):
        datasets.check_dataset(params, "mine")
    params["datasets_from_files"]["mine"] = {"file": "mine.xlsx", "target": "kind"}
    with pytest.raises(P.ParamsError, match=r"datasets_from_files.mine.file: expected a relative path"):
        datasets.check_dataset(params, "mine")
    params["datasets"]["wine"]["test_fraction"] = 1.5
    with pytest.raises(P.ParamsError, match=r"datasets.wine.test_fraction: expected a number in \(0, 1\)"):
        datasets.check_dataset(params, "wine")


def test_the_task_is_inferred_from_the_target_and_said():
    assert datasets.infer_task(pd.Series(["a", "b"] * 5))[0] == "classification"
    assert datasets.infer_task(pd.Series([0, 1, 2] * 5))[0] == "classification"
    assert datasets.infer_task(pd.Series([0.0, 1.0, 2.0] * 5))[0] == "classification"  # integral floats
    assert datasets.infer_task(pd.Series(np.linspace(0, 1, 30)))[0] == "regression"
    assert datasets.infer_task(pd.Series(np.arange(100)))[0] == "regression"  # too many distinct integers


def test_a_good_file_is_split_stratified_and_the_inferred_task_is_said(tmp_path, monkeypatch, capsys):
    code, out, err = run_generate(tmp_path, monkeypatch, capsys, classes_frame(), test_fraction=0.5, split_seed=3)
    assert code == 0, err
    assert "classification (inferred: a object target with 3 distinct values)" in out or "inferred" in out
    assert "3 classes (a, b, c → 0 … 2)" in out and "stratified by class" in out
    raw = np.load(tmp_path / "data" / "raw_files" / "mine.npz")
    assert raw["x_train"].shape == (30, 2) and raw["x_test"].shape == (30, 2)
    assert np.bincount(raw["y_train"]).tolist() == [10, 10, 10] == np.bincount(raw["y_test"]).tolist()


@pytest.mark.parametrize("name,features,task,classes", [("breast_cancer", 30, "classification", 2),
                                                         ("wine", 13, "classification", 3),
                                                         ("digits", 64, "classification", 10),
                                                         ("diabetes", 10, "regression", None)])
def test_bundled_data_sets_load_with_their_shapes_and_split(name, features, task, classes):
    params = base_params()
    loaded = datasets.load(params, name)
    rows = {"breast_cancer": 569, "wine": 178, "digits": 1797, "diabetes": 442}[name]
    assert loaded.x_train.shape[1] == loaded.x_test.shape[1] == features
    assert len(loaded.x_train) + len(loaded.x_test) == rows
    assert len(loaded.x_test) == int(np.ceil(0.5 * rows))  # test_fraction 0.5
    assert (loaded.task, loaded.classes) == (task, classes)
    info = datasets.info(params, name)
    assert (info.n_train, info.book) == (len(loaded.x_train), False)


# -- end to end: a CSV made here, through one classification and one regression family ---------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from stages import evaluate, report, scale, train

    root = tmp_path_factory.mktemp("own_data")
    rng = np.random.default_rng(1)
    classes_frame(90).to_csv(root / "kinds.csv", index=False)
    x = rng.normal(size=(80, 3))
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "price": 50 + 10 * x @ [1.0, -2.0, 0.5]}) \
        .to_parquet(root / "prices.parquet")
    params = base_params()
    params["seeds"] = 3
    params["runtime"] = {**params["runtime"], "xla": False}
    params["datasets"] = {}
    params["datasets_from_files"] = {"kinds": {"file": "kinds.csv", "target": "kind", "test_fraction": 0.5},
                                     "prices": {"file": "prices.parquet", "target": "price", "n_train": 50}}
    params["prepare"] = {"kinds": {"dataset": "kinds", "x": "standard"},
                         "prices_raw": {"dataset": "prices"},
                         "prices_standard": {"dataset": "prices", "x": "standard", "y": "standard"}}
    lr = params["families"]["learning_rate"]
    scaling = params["families"]["data_scaling"]
    params["families"] = {
        "learning_rate": {**lr, "data": "kinds", "epochs": 3, "late_epochs": 2, "batch_size": 16,
                          "learning_rates": [0.1, 0.01], "momentums": [0.0, 0.9], "decays": [], "patiences": [],
                          "optimizers": {}, "seeds": None},
        "data_scaling": {**scaling, "data": "prices_raw", "epochs": 3, "batch_size": 16, "seeds": 3,
                         "variants": {"raw": "prices_raw", "x_standard_y_standard": "prices_standard"}},
    }
    write(root, params)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        for name in ("kinds", "prices"):
            assert generate.main(["--file", name]) == 0
        assert generate.main([]) == 0 and scale.main([]) == 0  # the variants, from data/raw_files
        for family in params["families"]:
            assert train.main([family]) == 0 and evaluate.main([family]) == 0
        assert report.main([]) == 0
        yield root


def test_a_csv_trains_a_classification_family_and_its_book_numbers_are_book_data_only(lab):
    found = json.loads((lab / "reports" / "findings" / "learning_rate.json").read_text())
    verdicts = {f["id"]: f for f in found["findings"]}
    assert verdicts["momentum_learns_within_50"]["verdict"] == "book data only"
    assert "blobs-3" in verdicts["momentum_learns_within_50"]["note"]
    general = verdicts["momentum_steadier"]
    assert general["verdict"] not in ("book data only", "not judged") and general["samples"]
    summary = json.loads((lab / "reports" / "results" / "learning_rate.json").read_text())
    assert set(summary) == {"learning_rate=0.1", "learning_rate=0.01", "momentum=0", "momentum=0.9"}
    counts = json.loads((lab / "reports" / "metrics" / "findings.json").read_text())
    every = [f for path in (lab / "reports" / "findings").glob("*.json")
             for f in json.loads(path.read_text())["findings"]]  # the metrics count over every family
    ours = sum(v["verdict"] == "book data only" for v in verdicts.values())
    assert counts["book_data_only"] == sum(f["verdict"] == "book data only" for f in every) >= ours > 0
    assert "book data only" in (lab / "reports" / "README.md").read_text()


def test_a_parquet_file_trains_a_regression_family_end_to_end(lab):
    history = pd.read_parquet(lab / "data" / "runs" / "data_scaling" / "history.parquet")
    assert set(history["seed"]) == {1, 2, 3}
    assert set(history["config"]) == {"scaling=raw", "scaling=x_standard_y_standard"}
    found = json.loads((lab / "reports" / "findings" / "data_scaling.json").read_text())
    assert found["findings"]


# -- params checks: the check stage reads the files; families that need the book's data say so ------------

def test_the_check_stage_refuses_a_bad_file_naming_key_and_file(tmp_path, monkeypatch, capsys):
    from stages import check

    frame = classes_frame().assign(city="x")
    frame.to_csv(tmp_path / "mine.csv", index=False)
    params = base_params()
    params["datasets_from_files"] = {"mine": {"file": "mine.csv", "target": "kind"}}
    write(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    assert check.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: datasets_from_files.mine (mine.csv): non-numeric feature columns: city")
    assert not (tmp_path / "data").exists()


def test_general_families_accept_real_data_and_book_bound_ones_refuse_it_with_the_reason():
    from trainlab.families import check_family

    params = base_params()
    for family, variant in (("learning_rate", "breast_cancer"), ("batch_size", "wine"), ("adam", "digits"),
                            ("capacity", "breast_cancer")):
        params["families"][family]["data"] = variant
        if family == "batch_size":  # batch gradient descent: the whole train split of wine (89 rows)
            params["families"][family]["descent"]["batch"] = {"batch_size": 89}
            params["families"][family]["sweep"] = [4, 8, 16, 32, 64]
        _, cfg = check_family(params, family)
        assert cfg["book_data"] is False
    params["families"]["batch_norm"]["data"] = "breast_cancer"
    with pytest.raises(P.ParamsError, match=r"families.batch_norm.data: 'breast_cancer' is not one of the book's "
                                            r"data sets, and batch_norm runs on the book's data only: "):
        check_family(params, "batch_norm")
    params["families"]["learning_rate"]["data"] = "diabetes"
    with pytest.raises(P.ParamsError, match=r"families.learning_rate.loss: 'categorical_crossentropy' does not fit"):
        check_family(params, "learning_rate")
    assert check_family(base_params(), "learning_rate")[1]["book_data"] is True  # the book's runs are as before


@pytest.mark.slow
def test_editing_a_data_file_makes_dvc_rerun_its_generate_stage_and_scale(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from conftest import copy_repo

    repo = copy_repo(tmp_path / "repo")
    (repo / "dvc.lock").unlink(missing_ok=True)
    classes_frame().to_csv(repo / "mine.csv", index=False)
    params = P.load(REPO / "params.yaml")
    params["datasets_from_files"] = {"mine": {"file": "mine.csv", "target": "kind"}}
    params["prepare"]["mine"] = {"dataset": "mine", "x": "standard"}
    write(repo, params)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}

    def dvc(*args: str) -> str:
        result = subprocess.run([str(bin_dir / "dvc"), *args], cwd=repo, capture_output=True, text=True, env=env,
                                timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    ran = dvc("repro", "scale")  # the file's own stage first: scale depends on data/raw_files
    assert ran.index("Running stage 'generate_file@mine'") < ran.index("Running stage 'scale'")
    assert (repo / "data" / "raw_files" / "mine.npz").exists()
    before = np.load(repo / "data" / "prepared" / "mine.npz")["x_train"]
    assert "up to date" in dvc("status", "--with-deps", "scale")
    classes_frame(seed=5).to_csv(repo / "mine.csv", index=False)
    status = dvc("status", "--with-deps", "scale")
    assert "generate_file@mine" in status and "modified:" in status and "mine.csv" in status
    ran = dvc("repro", "scale")
    assert "Running stage 'generate_file@mine'" in ran and "Running stage 'scale'" in ran
    assert not np.array_equal(np.load(repo / "data" / "prepared" / "mine.npz")["x_train"], before)
    assert "up to date" in dvc("status", "--with-deps", "scale")
