"""The generate and scale stages: every data set and variant, one process each, exactly the params' set."""

from __future__ import annotations

import numpy as np
import yaml
from conftest import REPO

from stages import generate, scale
from trainlab import params as P
from trainlab.data import datasets
from trainlab.data import scaling as prepare
from trainlab.data.variants import check_variant


def small_params() -> dict:
    params = P.load(REPO / "params.yaml")
    params["datasets"] = {name: params["datasets"][name] for name in ("blobs3", "regression", "wine")}
    params["prepare"] = {name: params["prepare"][name] for name in ("blobs3", "regression_y_standard", "wine")}
    params["datasets_from_files"] = {}
    return params


def run(root, params: dict, monkeypatch, capsys) -> tuple[int, str, str]:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(root)
    code = generate.main([]) or scale.main([])
    out = capsys.readouterr()
    return code, out.out, out.err


def files(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_generate_and_scale_write_every_data_set_and_variant_as_the_generate_and_prepare_code_makes_them(
        tmp_path, monkeypatch, capsys):
    params = small_params()
    code, out, err = run(tmp_path, params, monkeypatch, capsys)
    assert code == 0, err
    assert files(tmp_path / "data" / "raw") == ["blobs3.npz", "regression.npz", "wine.npz"]
    assert files(tmp_path / "data" / "prepared") == ["blobs3.npz", "regression_y_standard.npz", "wine.npz"]
    for variant in params["prepare"]:
        cfg = check_variant(params, variant)
        expected = prepare.prepare(datasets.raw(params, cfg["dataset"])[0], cfg)
        with np.load(tmp_path / "data" / "prepared" / f"{variant}.npz") as written:
            assert sorted(written.files) == sorted(expected)
            assert all(np.array_equal(written[k], expected[k]) for k in expected), variant
    assert "regression_y_standard: regression with x=none, y=standard (fit on train)" in out


def test_data_sets_and_variants_gone_from_params_do_not_linger(tmp_path, monkeypatch, capsys):
    params = small_params()
    stale = tmp_path / "data" / "prepared" / "blobs20.npz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from an older params.yaml")
    assert run(tmp_path, params, monkeypatch, capsys)[0] == 0
    assert not stale.exists()
    del params["datasets"]["wine"], params["prepare"]["wine"]
    code, out, _ = run(tmp_path, params, monkeypatch, capsys)
    assert code == 0
    assert files(tmp_path / "data" / "raw") == ["blobs3.npz", "regression.npz"]
    assert files(tmp_path / "data" / "prepared") == ["blobs3.npz", "regression_y_standard.npz"]
    assert "data/prepared: removed wine.npz (no longer in params.yaml)" in out


def test_a_file_data_set_not_generated_yet_names_its_stage_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    params = small_params()
    params["datasets_from_files"] = {"mine": {"file": "mine.csv", "target": "kind"}}
    params["prepare"]["mine"] = {"dataset": "mine", "x": "standard"}
    code, _, err = run(tmp_path, params, monkeypatch, capsys)
    assert code == 2
    assert err.strip() == (f"error: {tmp_path}/data/raw_files/mine.npz does not exist: run "
                           "`dvc repro generate_file@mine` first (datasets_from_files.mine)")
    assert not (tmp_path / "data" / "prepared").exists()  # scale wrote nothing


def test_a_name_in_both_data_set_sections_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    params = small_params()
    params["datasets_from_files"] = {"wine": {"file": "wine.csv", "target": "kind"}}
    code, _, err = run(tmp_path, params, monkeypatch, capsys)
    assert code == 2
    assert err.strip().startswith("error: datasets_from_files.wine: the name 'wine' is also under datasets:")
    assert not (tmp_path / "data").exists()
