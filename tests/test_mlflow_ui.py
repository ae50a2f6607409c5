"""The MLflow UI as a user opens it: `mlflow server` on 127.0.0.1 against a tiny family's store, read by headless
Chromium (skipped where Chromium is absent; .ci/run installs it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_report import browser

pytestmark = pytest.mark.slow  # an MLflow server driven in headless Chromium

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_store):
    """`mlflow server` on a free local port, stopped (its process group, by its own pid) afterwards."""
    port = free_port()
    log = open(tiny_store["folder"] / "server.log", "w")
    process = subprocess.Popen([str(BIN / "mlflow"), "server", "--backend-store-uri", tiny_store["uri"],
                                "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                               cwd=tiny_store["folder"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(360):
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).read() == b"OK":
                    break
            except OSError:
                time.sleep(0.5)
            assert process.poll() is None, (tiny_store["folder"] / "server.log").read_text()[-2000:]
        else:
            pytest.fail("mlflow server did not answer /health within 3 minutes")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:  # its workers did not stop on SIGTERM
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)
        log.close()


def chromium(url: str, scratch: Path, *outputs: str) -> subprocess.CompletedProcess:
    command = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={scratch}",
               "--window-size=1400,900", "--virtual-time-budget=20000", *outputs, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def test_a_familys_experiment_opens_the_model_training_runs_table_listing_its_configurations(
        tiny_store, server, tmp_path):
    from mlflow.tracking import MlflowClient

    experiment = MlflowClient(tiny_store["uri"]).get_experiment_by_name("unit").experiment_id
    # MLflow 3.17 picks the view from the sidebar's GenAI / Model training switch, which the link sets.
    page = f"{server}/#/experiments/{experiment}?workflowType=machine_learning"
    dom = chromium(page, tmp_path / "profile", "--dump-dom").stdout
    assert "Run Name" in dom and "Duration" in dom, dom[-3000:]  # the classic runs table, not the GenAI overview
    assert "Detect Issues" not in dom and "Traces</span>" not in dom.split("Run Name")[1][:20000]
    for config in ("learning_rate=1", "learning_rate=0.01", "optimizer=adam"):
        assert f">{config}<" in dom, f"{config} is not listed"  # a parent's name is its configuration alone
    assert "blobs3" in dom  # the Datasets column
    shot = tmp_path / "runs.png"
    chromium(page, tmp_path / "profile", f"--screenshot={shot}")
    assert shot.stat().st_size > 20_000  # a drawn page, not a blank one
