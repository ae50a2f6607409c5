"""Exploding gradients (book chapter 7): gradient clipping on the unscaled regression problem.

The target spans about -400..400, so SGD(0.01, momentum 0.9) on the mean squared error
overflows the weights: the unclipped baseline diverges, and that divergence is a result
(its epoch is in the history, the figures and each seed's MLflow run; the metrics JSON
counts the diverged seeds). Clipping by norm or by value keeps the same model stable.
Model: Dense(25, relu, he_uniform) -> Dense(1, linear), MSE, 100 epochs, batch 32, raw X and y.

Keras 3 ``clipnorm`` rescales each variable's gradient by its own norm; the book's standalone
Keras used one norm over all gradients, which is Keras 3's ``global_clipnorm`` (its own study).
"""

from __future__ import annotations

from functools import partial

from trainlab import curves
from trainlab import params as P
from trainlab.configs import ConfigId, Study
from trainlab.data.prepared import load_prepared
from trainlab.engine.trial import Trial, TrialResult
from trainlab.families import common
from trainlab.family import Family
from trainlab.stats.findings import Finding, above, all_of, below, diverged, epochs_to, final

CLIPS = ("clipnorm", "clipvalue", "global_clipnorm")
SWEEP = P.Field(list, item=P.Field(float, **common.POSITIVE), nonempty=False,
                allowed="a list of numbers > 0 (clip thresholds; [] skips the study)")

FIELDS = common.training_fields(
    hidden=P.Field(int, minimum=1),
    clipnorm=SWEEP,
    clipvalue=SWEEP,
    global_clipnorm=SWEEP,
    book=P.Field(dict, fields={"clipnorm": P.Field(float, **common.POSITIVE),
                               "clipvalue": P.Field(float, **common.POSITIVE)}),
    mse_threshold=P.Field(float, default=100.0, **common.POSITIVE),
)
# The unclipped baseline (the section's own optimizer), then one study per clipping kind over its thresholds.
BASELINE = Study("clipping", param="optimizer")("none")
CLIPNORM, CLIPVALUE, GLOBAL_CLIPNORM = (Study(clip) for clip in CLIPS)
STUDIES = dict(zip(CLIPS, (CLIPNORM, CLIPVALUE, GLOBAL_CLIPNORM)))


def check(section: dict, key: str, params: dict) -> dict:
    cfg = common.check_training(section, key, params, FIELDS)
    for clip in CLIPS:  # the baseline is unclipped; every clipped run is a configuration
        if cfg["optimizer"][clip] is not None:
            raise P.ParamsError(f"{key}.optimizer.{clip}: leave the baseline unclipped; list thresholds in "
                                f"{key}.{clip} instead")
    for clip, value in cfg["book"].items():
        if value not in cfg[clip]:
            raise P.ParamsError(f"{key}.book.{clip}: {value:g} must be one of {key}.{clip} {cfg[clip]}")
    return cfg


def model(n_inputs: int, hidden: int):
    return common.mlp(n_inputs, [hidden], 1, activation="relu", hidden_init="he_uniform",
                      output_activation="linear")


def optimizers(cfg: dict) -> dict[ConfigId, tuple[dict, dict]]:
    """Each configuration's optimizer and tags: the unclipped baseline, then every clip threshold."""
    found = {BASELINE: (cfg["optimizer"], {"clip": "none"})}
    for clip, study in STUDIES.items():
        for value in cfg[clip]:
            found[study(value)] = ({**cfg["optimizer"], clip: value}, {"clip": clip, "threshold": value})
    return found


def trials(cfg: dict, seeds: list[int]) -> list[Trial]:
    data = load_prepared(cfg["data"]).split("raw")
    return [
        Trial(config=config, seed=seed, data=data,
              build_model=partial(model, data.x_train.shape[1], cfg["hidden"]),
              build_optimizer=common.optimizer_factory(optimizer),
              loss=cfg["loss"], metric="mse", batch_size=cfg["batch_size"], epochs=cfg["epochs"],
              grad_stats=cfg["grad_stats"], tags=tags)
        for config, (optimizer, tags) in optimizers(cfg).items() for seed in seeds
    ]


def trial_metrics(result: TrialResult, cfg: dict) -> dict[str, float]:
    """How fast the test MSE fell: epochs until it is ≤ mse_threshold (never: epochs + 1).

    A diverged seed's epoch is in MLflow (``diverged_epoch`` of its run), the history and the figures.
    """
    t = cfg["mse_threshold"]
    return {f"epochs_to_val_mse_{t:g}": curves.epochs_to(result.history["val_mse"], t, below=True)}


# -- findings ----------------------------------------------------------------------------------------


def findings(cfg: dict) -> list[Finding]:
    """What the book concludes, at the book's thresholds (``book``) and the section's ``mse_threshold``."""
    norm, value, mse = cfg["book"]["clipnorm"], cfg["book"]["clipvalue"], cfg["mse_threshold"]
    norm_text, value_text = float(norm), float(value)  # as the book writes them: clipnorm=1.0

    def mse_reached(config: ConfigId):  # epochs until the test MSE is ≤ mse_threshold (never: epochs + 1)
        return epochs_to(config, "val_mse", mse, below=True)

    return [
        Finding("unclipped_diverges", "Without clipping the unscaled target makes the weights overflow: the loss "
                "becomes NaN/inf (book: Train nan, Test nan)", above(diverged(BASELINE), 0.5)),
        Finding("clipnorm_prevents_divergence", f"clipnorm={norm_text} keeps training finite, with Keras 3's "
                "per-variable norm and with the book's one global norm",
                all_of(below(diverged(CLIPNORM(norm)), 0.5), below(diverged(GLOBAL_CLIPNORM(norm)), 0.5))),
        Finding("clipvalue_prevents_divergence", f"clipvalue={value_text} keeps training finite",
                below(diverged(CLIPVALUE(value)), 0.5)),
        Finding("global_clipnorm_fast", f"With the book's clipnorm (one global norm of {norm_text}) the test MSE falls "
                f"below {mse:g} within about 20 epochs (read as: fewer than 30)",
                below(mse_reached(GLOBAL_CLIPNORM(norm)), 30)),
        Finding("clipnorm_fast", f"With Keras 3's per-variable clipnorm={norm_text} the test MSE falls below {mse:g} "
                "within about 20 epochs (read as: fewer than 30)", below(mse_reached(CLIPNORM(norm)), 30)),
        Finding("clipvalue_below_10", f"With clipvalue={value_text} the final test MSE is below 10 (book 9.985)",
                below(final(CLIPVALUE(value), "val_mse"), 10.0)),
    ]


# The book's single runs, at its thresholds (clipnorm 1.0, clipvalue 5.0). Its clipnorm was one
# global norm, so its number sits beside both ours.
BOOK = {
    CLIPNORM(1.0): {"val_mse": 27.433},
    GLOBAL_CLIPNORM(1.0): {"val_mse": 27.433},
    CLIPVALUE(5.0): {"val_mse": 9.985},
}

FAMILY = Family(
    name="exploding_gradients", doc=__doc__, fields=FIELDS, check=check, configs=lambda cfg: list(optimizers(cfg)),
    trials=trials, findings=findings, book=BOOK, trial_metrics=trial_metrics,
    needs_book_data=("its unclipped baseline diverges because of the book's regression target's scale; the clipping "
                     "lesson needs that divergence"),
)
