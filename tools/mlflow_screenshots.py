"""The MLflow screenshots of docs/mlflow-ui.md, taken from a real (small) family in headless Chromium.

Trains a learning-rate study in small (SGD at four rates and Adam, 5 seeds, 100 epochs, the book's
blobs problem), logs it with ``trainlab.tracking.log_family`` into a temporary store, starts
``mlflow server`` on 127.0.0.1 and saves, in ``docs/screenshots/``:
``runs.png`` (the model-training runs table), ``grouped_curves.png`` (seed runs grouped by
``seed_of``: mean and band of each configuration's test accuracy per epoch) and ``compare.png``
(the compare view of the configurations' parent runs).

Usage: ``python -m tools.mlflow_screenshots [--out docs/screenshots] [--chromium chromium]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from functools import partial
from pathlib import Path

import numpy as np

from tools.cdp import Browser


def log_small_family(folder: Path) -> dict[str, str]:
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from sklearn.datasets import make_blobs

    from trainlab import tracking
    from trainlab.data.prepared import Split, encode
    from trainlab.engine.executor import run_trials
    from trainlab.engine.trial import Trial
    from trainlab.families import common
    from trainlab.stats.results import summarize

    x, y = make_blobs(n_samples=1000, centers=3, n_features=2, cluster_std=2, random_state=2)
    y_train, y_test = encode(y[:500], y[500:], "onehot")
    x = x.astype(np.float32)
    split = Split(x[:500], y_train, x[500:], y_test, name="blobs3", source="data/prepared/blobs3.npz")
    section = {"name": "sgd", "learning_rate": 0.01}
    configs = {f"learning_rate={lr:g}": section | {"learning_rate": lr} for lr in (1.0, 0.1, 0.01, 0.001)}
    configs["optimizer=adam"] = {"name": "adam"}
    trials = [Trial(config=config, seed=seed, data=split, build_model=partial(common.mlp, 2, [50], 3),
                    build_optimizer=common.optimizer_factory(common.check_optimizer(spec, "optimizer")),
                    loss="categorical_crossentropy", metric="categorical_accuracy", batch_size=32, epochs=100)
              for config, spec in configs.items() for seed in range(1, 6)]
    results = run_trials(trials, {"xla": False, "stack_seeds": True}, label="screenshots")
    return tracking.log_family("learning_rate", results, summarize(results), stage="train@learning_rate",
                               section={"learning_rate": {"optimizer": section, "epochs": 100, "batch_size": 32}},
                               params={"runtime.stack_seeds": "True"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--chromium", default="chromium")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        parents = log_small_family(folder)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
                                   os.environ["MLFLOW_TRACKING_URI"], "--host", "127.0.0.1", "--port", str(port),
                                   "--workers", "1"], cwd=folder, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        browser = None
        try:
            for _ in range(360):
                try:
                    urllib.request.urlopen(f"{url}/health", timeout=2)
                    break
                except OSError:
                    time.sleep(0.5)
            else:
                raise RuntimeError("mlflow server did not answer /health within 3 minutes")
            browser = Browser(args.chromium, folder / "profile", 1400, 820)
            shoot(browser, url, parents, args.out)
        finally:
            if browser is not None:
                browser.close()
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:  # its workers did not stop on SIGTERM
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=20)
    for png in sorted(args.out.glob("*.png")):
        print(f"{png}: {png.stat().st_size // 1024} KB")
    return 0


def shoot(browser: Browser, url: str, parents: dict[str, str], out: Path) -> None:
    page = f"{url}/#/experiments/1?workflowType=machine_learning"
    browser.go(page)
    try:
        browser.wait("document.body.innerText.includes('learning_rate=1')", timeout=120)
    except TimeoutError:
        browser.screenshot(out / "failed.png")
        print(browser.js("location.href + ' ' + document.body.innerText.slice(0, 500)"), file=sys.stderr)
        raise
    key = 'MLflowLocalStorage-1.1-ExperimentPage-["1"]-ReactComponentState'
    state = json.loads(browser.js(f"localStorage.getItem({json.dumps(key)})") or "{}")

    def show(ui: dict, address: str, ready: str) -> None:
        browser.js(f"localStorage.setItem({json.dumps(key)}, {json.dumps(json.dumps(state | ui))});"
                   "localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false')")
        browser.go("about:blank")
        browser.go(address)
        try:
            browser.wait(ready)
        except TimeoutError as err:
            print(f"warning: {err}", file=sys.stderr)
        time.sleep(3)  # charts draw after the data arrives

    show({"selectedColumns": ["attributes.`Dataset`", "attributes.`Duration`", "metrics.`val_accuracy`",
                              "params.`learning_rate`", "params.`optimizer`", "params.`batch_size`"],
          "runsHiddenMode": "SHOW_ALL", "groupBy": None},
         page, "document.body.innerText.includes('learning_rate=0.001')")
    browser.screenshot(out / "runs.png")

    show({"groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": "seed_of"}]},
          "searchFilter": "tags.`run.kind` = 'seed'", "runsHiddenMode": "SHOW_ALL", "chartsSearchFilter": "val_",
          "useGroupedValuesInCharts": True},
         page, "document.body.innerText.includes('Group by: seed_of')")
    browser.click(296, 119)  # the chart view button beside the table view button
    try:  # both charts drawn (plotly), no spinner left
        browser.wait("document.querySelectorAll('.js-plotly-plot path.js-line').length >= 2", timeout=150)
    except TimeoutError as err:
        print(f"warning: {err}", file=sys.stderr)
    time.sleep(5)
    browser.screenshot(out / "grouped_curves.png")

    runs = json.dumps(list(parents.values()))
    experiments = urllib.request.quote('["1"]')
    browser.go(f"{url}/#/compare-runs?runs={urllib.request.quote(runs)}&experiments={experiments}"
               "&workflowType=machine_learning")
    browser.wait("document.body.innerText.includes('learning_rate=0.001')", timeout=120)
    time.sleep(3)
    browser.click(226, 108)  # fold "Visualizations": the table of params and metrics per configuration moves up
    time.sleep(3)
    browser.screenshot(out / "compare.png")


if __name__ == "__main__":
    raise SystemExit(main())
