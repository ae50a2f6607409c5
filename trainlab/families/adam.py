"""Adam (book chapter 11): its hyper-parameters as a study, and its update rule written out.

Data and model as in the learning-rate chapter: blobs-3, unscaled, Dense(50, relu, he_uniform) ->
Dense(3, softmax), categorical cross-entropy, 200 epochs, batch 32. The base is the paper's
Adam(alpha=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8); each study changes one of them
(configuration ``<key>=<value>``). Speed: the first epoch with test accuracy >= ``threshold``;
stability: the mean absolute change of the test accuracy between epochs over the last ``late_epochs``.

``reference_adam`` is Adam as Kingma & Ba (2015) write it, in numpy, for the tests and for the
``update_rule`` figure. Keras implements the paper's faster ordering (end of its section 2): the
step size alpha_t = alpha * sqrt(1 - beta_2^t) / (1 - beta_1^t) multiplies m / (sqrt(v) + eps_hat),
so Keras's ``epsilon`` is the paper's eps_hat, not Algorithm 1's epsilon. The two agree unless
sqrt(v_hat) is near epsilon (tiny gradients, or a large epsilon).
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from trainlab import curves
from trainlab import params as P
from trainlab.configs import ConfigId, Study
from trainlab.engine.trial import Trial, TrialResult
from trainlab.families import common
from trainlab.family import Family
from trainlab.stats import findings as F

VARIED = ("learning_rate", "beta_1", "beta_2", "epsilon")
FIELDS = common.training_fields(
    loss=P.Field(str, choices=tuple(common.MULTICLASS)),
    vary=P.Field(dict, allowed=f"a mapping of Adam keys ({', '.join(VARIED)}) to lists of values"),
    threshold=P.Field(float, default=0.8, minimum=0, maximum=1),
    late_epochs=P.Field(int, default=50, minimum=1),
)
# One study per varied key; the params list its values under ``vary.<key>``.
STUDIES = {option: Study(option, param=f"vary.{option}") for option in VARIED}
LEARNING_RATE = STUDIES["learning_rate"]


def check(section: dict, key: str, params: dict) -> dict:
    cfg = common.check_training(section, key, params, FIELDS, targets=common.MULTICLASS_TARGETS)
    if cfg["optimizer"]["name"] != "adam":
        raise P.ParamsError(f"{key}.optimizer.name: expected 'adam' (the base every study varies), "
                            f"got {cfg['optimizer']['name']!r}")
    common.check_multiclass_study(cfg, key, params)
    vary = {}
    for option, values in cfg["vary"].items():
        if option not in VARIED:
            raise P.ParamsError(f"{key}.vary.{option}: unknown key; allowed keys: {', '.join(VARIED)}")
        values = P.check_value(f"{key}.vary.{option}", P.Field(list), values)
        vary[option] = [P.check_value(f"{key}.vary.{option}[{i}]", common.OPTIMIZER_FIELDS[option], v)
                        for i, v in enumerate(values)]
        if len({str(config) for config in STUDIES[option].of(vary[option])}) != len(values):
            raise P.ParamsError(f"{key}.vary.{option}: each value once, got {values}")
    cfg["vary"] = vary
    return cfg


def configurations(cfg: dict) -> dict[ConfigId, dict]:
    """Each configuration's Adam settings."""
    return {STUDIES[option](value): cfg["optimizer"] | {option: value}
            for option, values in cfg["vary"].items() for value in values}


def model(n_inputs: int, n_classes: int):
    return common.mlp(n_inputs, [50], n_classes, activation="relu", hidden_init="he_uniform")


def trials(cfg: dict, seeds: list[int]) -> list[Trial]:
    data, metric, n_classes = common.multiclass_data(cfg)
    return [Trial(config=config, seed=seed, data=data,
                  build_model=partial(model, data.x_train.shape[1], n_classes),
                  build_optimizer=common.optimizer_factory(optimizer),
                  loss=cfg["loss"], metric=metric, batch_size=cfg["batch_size"], epochs=cfg["epochs"],
                  grad_stats=cfg["grad_stats"], tags={k: optimizer[k] for k in VARIED})
            for config, optimizer in configurations(cfg).items() for seed in seeds]


def same_experiment(trial: Trial) -> tuple:
    # Every study contains the paper's defaults (learning_rate=0.001, beta_1=0.9, ...): trained once.
    return tuple(sorted(trial.tags.items()))


def trial_metrics(result: TrialResult, cfg: dict) -> dict[str, float]:
    t, accuracy = cfg["threshold"], result.history["val_accuracy"]
    return {f"epochs_to_val_accuracy_{t:g}": curves.epochs_to(accuracy, t),  # never reached: epochs + 1
            "volatility_val_accuracy": curves.volatility(accuracy, cfg["late_epochs"])}


# -- the update rule ------------------------------------------------------------------------

def reference_adam(gradients: np.ndarray, theta: np.ndarray | float = 0.0, learning_rate: float = 0.001,
                   beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
                   form: str = "paper") -> np.ndarray:
    """Apply Adam to a fixed gradient sequence ``gradients[t]``; return the parameters after each step.

    ``form="paper"`` is Algorithm 1: m_t = b1 m + (1 - b1) g, v_t = b2 v + (1 - b2) g^2,
    m_hat = m_t / (1 - b1^t), v_hat = v_t / (1 - b2^t), theta -= alpha m_hat / (sqrt(v_hat) + eps).
    ``form="efficient"`` is the reordering the paper gives after it, which Keras implements:
    alpha_t = alpha sqrt(1 - b2^t) / (1 - b1^t), theta -= alpha_t m_t / (sqrt(v_t) + eps_hat).
    """
    if form not in ("paper", "efficient"):
        raise ValueError(f"form: expected 'paper' or 'efficient', got {form!r}")
    gradients = np.asarray(gradients, dtype=np.float64)
    theta = np.broadcast_to(np.asarray(theta, dtype=np.float64), gradients.shape[1:]).copy()
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    path = []
    for t, g in enumerate(gradients, 1):
        m = beta_1 * m + (1 - beta_1) * g  # first moment: a running mean of the gradient
        v = beta_2 * v + (1 - beta_2) * g * g  # second (uncentred) moment: a running mean of g^2
        if form == "paper":
            m_hat, v_hat = m / (1 - beta_1 ** t), v / (1 - beta_2 ** t)  # undo the pull towards the zero start
            theta = theta - learning_rate * m_hat / (np.sqrt(v_hat) + epsilon)
        else:
            alpha_t = learning_rate * math.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
            theta = theta - alpha_t * m / (np.sqrt(v) + epsilon)
        path.append(theta)
    return np.stack(path)


def step_sizes(gradients: np.ndarray, form: str = "paper", **adam) -> np.ndarray:
    """|theta_t - theta_{t-1}| / alpha for a scalar parameter: Adam's effective step in units of alpha."""
    path = reference_adam(np.asarray(gradients, dtype=np.float64)[:, None], 0.0, form=form, **adam)[:, 0]
    return np.abs(np.diff(np.concatenate([[0.0], path]))) / adam.get("learning_rate", 0.001)


# -- the book's statements about the hyper-parameters, judged over seeds (trainlab.stats.findings) ----------

def findings(cfg: dict) -> list[F.Finding]:
    t, epochs, default = cfg["threshold"], cfg["epochs"], LEARNING_RATE(cfg["optimizer"]["learning_rate"])

    def test(config: ConfigId) -> F.Quantity:
        return F.final(config, "val_accuracy")

    def early(config: ConfigId) -> F.Quantity:
        return F.at_epoch(config, "val_accuracy", 5)

    return [
        F.Finding("paper_defaults_learn", f"Adam with the paper's defaults learns the problem ({t:.0%} test accuracy "
                  "at the end)", F.above(test(default), t)),
        F.Finding("larger_alpha_learns_faster_at_first", "A larger step size (0.3) learns faster at first than the "
                  f"default {default.value:g} (test accuracy after 5 epochs)",
                  F.greater(early(LEARNING_RATE(0.3)), early(default))),
        F.Finding("small_alpha_slows_learning", "A small step size (1e-5) slows learning: lower test accuracy after "
                  f"{epochs} epochs than the default {default.value:g}",
                  F.less(test(LEARNING_RATE(1e-5)), test(default))),
    ]


# On other data this is listed as "book data only"; the step-size comparisons are general.
BOOK_ONLY = {"paper_defaults_learn": "the accuracy threshold and epoch count are blobs-3's"}

FAMILY = Family(
    name="adam", doc=__doc__, fields=FIELDS, check=check,
    configs=lambda cfg: list(configurations(cfg)),
    trials=trials, same_experiment=same_experiment, trial_metrics=trial_metrics,
    findings=findings, book_only=BOOK_ONLY,
)
