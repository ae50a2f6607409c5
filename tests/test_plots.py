"""`dvc plots show` pages people can read offline: Vega inlined (no CDN), small, one y-scale per panel, a band
over seeds; rendered in headless Chromium with every network request refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO
from test_report import browser

from trainlab.evaluation import PLOT_POINTS, plot_table
from trainlab.stats.results import COLUMNS

BIN = Path(sys.executable).parent


def show(out: Path) -> Path:
    result = subprocess.run([str(BIN / "dvc"), "plots", "show", "-o", str(out)], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out / "index.html"


def test_plot_table_has_the_study_a_band_and_at_most_the_allowed_points():
    rows = [("nodes=1", "nodes", seed, epoch, "loss", float(seed * epoch)) for seed in (1, 2, 3) for epoch in
            range(1, 501)]
    table = plot_table(pd.DataFrame(rows, columns=COLUMNS), "loss")
    assert list(table.columns) == ["epoch", "study", "config", "low", "high", "loss"]
    assert len(table) <= PLOT_POINTS + 1 and table["epoch"].iloc[-1] == 500 and table["epoch"].iloc[0] == 1
    last = table.iloc[-1]
    assert last["loss"] == 1000 and last["low"] == 500 and last["high"] == 1500  # mean ± std over the seeds


def test_bands_stay_in_the_metrics_range_and_a_family_without_finite_values_says_every_seed_diverged():
    rows = [("clipping=none", "clipping", seed, epoch, "val_mse", float("nan")) for seed in (1, 2) for epoch in (1, 2)]
    rows += [("clipvalue=1", "clipvalue", seed, epoch, "val_mse", 0.1 * seed + (1e6 if epoch == 1 else 0.0))
             for seed in (1, 2, 3) for epoch in range(1, 61)]
    table = plot_table(pd.DataFrame(rows, columns=COLUMNS), "val_mse")
    assert (table["low"].dropna() >= 0).all()
    studies = set(table["study"])
    assert "clipping: clipping=none diverged on all 2 seeds" in studies
    clipped = next(s for s in studies if s.startswith("clipvalue"))
    assert "y clipped at" in clipped and table["val_mse"].max() < 1e6


def test_the_template_gives_each_panel_its_own_y_scale_and_draws_a_band():
    template = json.loads((REPO / ".dvc" / "plots" / "learning_curves.json").read_text())
    assert template["resolve"]["scale"]["y"] == "independent"
    marks = [layer["mark"]["type"] for layer in template["spec"]["layer"]]
    assert marks == ["area", "line"]


@pytest.mark.slow  # headless Chromium
def test_plots_page_renders_offline_and_stays_small(tmp_path):
    page = show(tmp_path / "plots")
    text = page.read_text()
    assert len(text) < 6_000_000, f"{len(text) / 1e6:.1f} MB"
    assert not re.search(r"<script[^>]+src=", text), "the page loads a script from elsewhere"
    expected = len(list((REPO / "reports" / "plots").glob("*/*.csv")))
    # Every request to anywhere goes to a closed port: only what the page holds can render.
    dom = subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
                          "--proxy-bypass-list=<-loopback>", "--virtual-time-budget=20000", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=180).stdout
    rendered = len(re.findall(r"<canvas", dom))
    assert expected and rendered == expected, f"{rendered} of {expected} plots rendered"
