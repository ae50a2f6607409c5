"""Data scaling (book chapter 5): how scaling the inputs and the target changes a regression MLP.

Data: the 20-feature regression problem, scaled by the ``prepare`` stage with scalers fit
on the train split (one variant per configuration). Model: Dense(25, relu, he_uniform) ->
Dense(1, linear), MSE, SGD(0.01, momentum 0.9), 100 epochs, batch 32, repeated 30 times.
The unscaled target diverges; a standardised target learns; with it, min-max inputs are
compared with unscaled and standardised ones in a box plot of the final test MSE.
Errors are reported in scaled units (the history) and in the target's original units
(``*_original`` in the metrics JSON: MSE x y_scale², y_scale being the target scaler's std).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from stages import curves
from stages import params as P
from stages.configs import ConfigId, Study
from stages.data import load_prepared
from stages.engine.trial import Trial, TrialResult
from stages.families import common
from stages.family import Family
from stages.figures import diverged_epochs, final_values, plot_curves
from stages.findings import Finding, above, below, diverged, final, less, similar, wider
from stages.variants import check_variant

FIELDS = common.training_fields(
    hidden=P.Field(int, minimum=1),
    variants=P.Field(dict, allowed="a mapping {configuration name: a variant under prepare:}"),
)
SCALING = Study("scaling", param="variants")  # scaling=<configuration name under variants:>


def check(section: dict, key: str, params: dict) -> dict:
    cfg = common.check_training(section, key, params, FIELDS)
    dataset = check_variant(params, cfg["data"])["dataset"]
    if not cfg["variants"]:
        raise P.ParamsError(f"{key}.variants: expected at least one configuration")
    scalers = {}
    for name, variant in cfg["variants"].items():
        where = f"{key}.variants.{name}"
        if not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise P.ParamsError(f"{where}: configuration names are letters, digits and '_'")
        if not isinstance(variant, str) or variant not in params.get("prepare", {}):
            raise P.ParamsError(f"{where}: expected one of {', '.join(params.get('prepare', {}))} "
                                f"(the variants under prepare:), got {variant!r}")
        spec = check_variant(params, variant)  # an unknown scaler is reported here, by its key
        if spec["dataset"] != dataset:
            raise P.ParamsError(f"{where}: prepare.{variant} scales {spec['dataset']!r}, but {key}.data "
                                f"({cfg['data']}) is {dataset!r}; every configuration must scale the same data")
        scalers[name] = {k: spec[k] for k in ("x", "y", "fit_on")}
    cfg["scalers"] = scalers  # logged with the family's params: what each configuration's variant did
    return cfg


def model(n_inputs: int, hidden: int):
    return common.mlp(n_inputs, [hidden], 1, activation="relu", hidden_init="he_uniform",
                      output_activation="linear")


def configs(cfg: dict) -> list[ConfigId]:
    """One configuration per entry of ``variants``, named by its key."""
    return SCALING.of(list(cfg["variants"]))


def trials(cfg: dict, seeds: list[int]) -> list[Trial]:
    out = []
    for config in configs(cfg):
        variant = cfg["variants"][config.value]
        data = load_prepared(variant).split("raw")
        tags = {"variant": variant, **{f"{k}_scaler" if k != "fit_on" else k: v
                                       for k, v in cfg["scalers"][config.value].items()}}
        out += [Trial(config=config, seed=seed, data=data,
                      build_model=partial(model, data.x_train.shape[1], cfg["hidden"]),
                      build_optimizer=common.optimizer_factory(cfg["optimizer"]),
                      loss=cfg["loss"], metric="mse", batch_size=cfg["batch_size"], epochs=cfg["epochs"],
                      grad_stats=cfg["grad_stats"], tags=tags)
                for seed in seeds]
    return out


def trial_metrics(result: TrialResult, cfg: dict) -> dict[str, float]:
    """Final train/test MSE in the target's original units (a diverged seed's epoch is in MLflow and the figure)."""
    y_scale = load_prepared(result.tags["variant"]).y_scale
    return {
        "mse_original": curves.final(result.history["mse"]) * y_scale ** 2,
        "val_mse_original": curves.final(result.history["val_mse"]) * y_scale ** 2,
    }


# -- figures: curves that show where seeds diverged (stages.figures.plot_curves) ---------------------


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    import matplotlib.pyplot as plt

    trained = set(history["config"].unique())
    shown = [c for c in configs(cfg) if str(c) in trained]
    seeds = history["seed"].nunique()
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    plot_curves(axes[0], history, shown, "loss")
    plot_curves(axes[1], history, shown, "val_mse")
    axes[1].legend(fontsize="small")

    finals = [final_values(history, c, "val_mse") for c in shown]
    names = [c.value for c in shown]
    axes[2].boxplot([v if len(v) else [np.nan] for v in finals], showmeans=True)
    axes[2].set_xticks(range(1, len(names) + 1), names, rotation=15, fontsize="small")
    for i, config in enumerate(shown, 1):
        lost = len(diverged_epochs(history, config))
        if lost:
            axes[2].annotate(f"{lost}/{seeds}\ndiverged", (i, 0.5), xycoords=("data", "axes fraction"),
                             ha="center", color="red", fontsize="small")
    axes[2].set_yscale("log")
    axes[2].set_ylabel("final test MSE (scaled target units)")
    axes[2].grid(alpha=0.3, axis="y")
    fig.suptitle(f"Data scaling: regression MLP, scalers fit on the train split\n"
                 f"curves: mean over the seeds still finite ({seeds} seeds), band = ±1 std, x = divergence epoch; "
                 f"box: final test MSE per seed")
    fig.tight_layout()
    return {SCALING.name: fig}


# -- findings ----------------------------------------------------------------------------------------


def findings(cfg: dict) -> list[Finding]:
    """What the book concludes, for the configurations named as the book names them under ``variants``."""
    def test_mse(name: str):  # final test MSE (scaled units) of scaling=<name>, per seed
        return final(SCALING(name), "val_mse")

    return [
        Finding("unscaled_target_diverges", "With X and y unscaled the weights blow up: the loss becomes NaN/inf "
                "(book: Train nan, Test nan)", above(diverged(SCALING("raw")), 0.5)),
        Finding("standardised_target_learns", "With the target standardised (X unscaled) the model learns: test "
                "MSE below 0.05 in scaled units (book 0.007)", below(test_mse("y_standard"), 0.05)),
        Finding("minmax_inputs_beat_standardised", "Min-max inputs reach a lower test MSE than standardised inputs "
                "(book 0.001 vs 0.008)", less(test_mse("x_minmax_y_standard"), test_mse("x_standard_y_standard"))),
        Finding("minmax_inputs_beat_unscaled", "Min-max inputs reach a lower test MSE than unscaled inputs "
                "(book 0.001 vs 0.007)", less(test_mse("x_minmax_y_standard"), test_mse("y_standard"))),
        Finding("unscaled_and_standardised_inputs_alike", "Unscaled and standardised inputs give nearly the same "
                "test MSE: within ±0.002 (book 0.007 vs 0.008)",
                similar(test_mse("y_standard"), test_mse("x_standard_y_standard"), 0.002)),
        Finding("minmax_inputs_tighter", "Min-max inputs give a tighter spread of test MSE over repeats than "
                "standardised ones (book std 0.000 vs 0.004)",
                wider(test_mse("x_standard_y_standard"), test_mse("x_minmax_y_standard"))),
    ]


# The book's 30 repeats: mean (std) of the final test MSE, in scaled target units.
BOOK = {
    SCALING("y_standard"): {"val_mse": (0.007, 0.004)},
    SCALING("x_minmax_y_standard"): {"val_mse": (0.001, 0.000)},
    SCALING("x_standard_y_standard"): {"val_mse": (0.008, 0.004)},
}

# On other data (a regression data set of your own, with variants that scale it) these are listed as "book data
# only"; "min-max inputs beat unscaled ones" (scaling the inputs helps) is general and judged on that data.
BOOK_ONLY = {
    "unscaled_target_diverges": "the raw target of the book's regression problem (a spread of hundreds) blows up SGD "
                                "at lr 0.01; another target need not",
    "standardised_target_learns": "the 0.05 test MSE is what the book's noise-free regression problem allows",
    "minmax_inputs_beat_standardised": "which input scaler wins depends on the inputs' distribution",
    "unscaled_and_standardised_inputs_alike": "the book's inputs are already standard normal, so scaling them "
                                              "changes little; real inputs are not",
    "minmax_inputs_tighter": "the spread over repeats is read off the book's problem",
}

FAMILY = Family(
    name="data_scaling", doc=__doc__, fields=FIELDS, check=check, configs=configs,
    trials=trials, figures=figures, findings=findings, book=BOOK, trial_metrics=trial_metrics,
    book_only=BOOK_ONLY,
)
