"""The long history table: what every family's history.parquet holds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainlab.configs import ConfigId
from trainlab.engine.trial import TrialResult
from trainlab.stats.results import COLUMNS, headline, history_frame


def test_history_has_a_row_per_trial_metric_and_epoch_in_that_order_with_fixed_dtypes():
    results = [TrialResult(config=ConfigId("nodes", n), seed=seed, diverged_epoch=None, weights=[],
                           history={"loss": np.array([1.0, np.nan, 0.5][:epochs]), "lr": [0.1] * epochs})
               for n, seed, epochs in (("5", 1, 3), ("5", 2, 2), ("10", 1, 1))]
    want = pd.DataFrame(
        [("nodes=5", "nodes", 1, 1, "loss", 1.0), ("nodes=5", "nodes", 1, 2, "loss", np.nan),
         ("nodes=5", "nodes", 1, 3, "loss", 0.5), ("nodes=5", "nodes", 1, 1, "lr", 0.1),
         ("nodes=5", "nodes", 1, 2, "lr", 0.1), ("nodes=5", "nodes", 1, 3, "lr", 0.1),
         ("nodes=5", "nodes", 2, 1, "loss", 1.0), ("nodes=5", "nodes", 2, 2, "loss", np.nan),
         ("nodes=5", "nodes", 2, 1, "lr", 0.1), ("nodes=5", "nodes", 2, 2, "lr", 0.1),
         ("nodes=10", "nodes", 1, 1, "loss", 1.0), ("nodes=10", "nodes", 1, 1, "lr", 0.1)], columns=COLUMNS)
    got = history_frame(results)
    pd.testing.assert_frame_equal(got, want)
    assert [str(t) for t in got.dtypes] == ["str", "str", "int64", "int64", "str", "float64"]
    assert list(history_frame([]).columns) == COLUMNS and not len(history_frame([]))


def test_headline_is_a_few_shared_columns_best_accuracy_highest_and_best_loss_lowest():
    summary = {
        "autoencoder=1": {"seeds": 10, "diverged": 2, "val_mse": {"mean": 0.5}, "val_loss": {"mean": 0.5}},
        "autoencoder=2": {"seeds": 10, "diverged": 0, "val_mse": {"mean": 0.2}, "val_loss": {"mean": 0.2}},
        "gone": {"seeds": 10, "diverged": 10, "val_mse": {"mean": None}},
        "clf=a": {"seeds": 20, "diverged": 0, "val_accuracy": {"mean": 0.7}, "val_loss": {"mean": 0.9}},
        "clf=b": {"seeds": 10, "diverged": 0, "val_accuracy": {"mean": 0.8}, "val_loss": {"mean": 0.8}},
    }
    assert headline(summary) == {"seeds": 60, "diverged": 12, "best_acc": 0.8, "best_mse": 0.2}
