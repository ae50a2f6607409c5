"""Adam's figures: learning curves of each hyper-parameter study (``learning_rate``, ``beta_1``, ...), and
``update_rule``: the reference Adam's step sizes on fixed gradient sequences."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainlab.families.adam import VARIED, step_sizes
from trainlab.figures.common import learning_curves


def update_rule_figure(steps: int = 300):
    """What Adam does: about alpha per step whatever the gradient's scale, less when the gradient is noise."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    t = np.arange(1, steps + 1)
    noise = rng.normal(size=steps)
    sequences = {
        "constant g = 1": np.ones(steps),
        "constant g = 1e-4": np.full(steps, 1e-4),
        "constant g = 1e4": np.full(steps, 1e4),
        "g = 0.5 + N(0, 1)": 0.5 + noise,
        "g = N(0, 1)": noise,
        "g = ±1 alternating": np.where(t % 2 == 0, 1.0, -1.0),
    }
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    for label, g in sequences.items():
        left.plot(t, step_sizes(g), label=label, linewidth=1)
    left.set(xlabel="step t", ylabel="|step| / alpha", yscale="log",
             title="paper Adam (alpha=0.001, betas 0.9/0.999, eps=1e-8)")
    tiny = np.full(steps, 1e-8)  # gradients as small as epsilon: where the two forms part
    for form, style in (("paper", "-"), ("efficient", "--")):
        for eps in (1e-8, 1e-7):
            right.plot(t, step_sizes(tiny, form=form, epsilon=eps), style, linewidth=1,
                       label=f"{'Algorithm 1' if form == 'paper' else 'Keras (eps_hat)'}, eps={eps:g}")
    right.set(xlabel="step t", ylabel="|step| / alpha", title="constant g = 1e-8: where epsilon sits matters")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("Adam's update rule on fixed gradient sequences (reference implementation)")
    fig.tight_layout()
    return fig


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    base = ", ".join(f"{k}={cfg['optimizer'][k]:g}" for k in VARIED)
    trained = set(history["study"].unique())
    out = {option: learning_curves(history, option, f"Adam: {option} (others at {base})",
                                   metrics=("loss", "accuracy", "val_accuracy"))
           for option in cfg["vary"] if option in trained}
    return out | {"update_rule": update_rule_figure()}
