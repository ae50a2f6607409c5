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

from trainlab import curves
from trainlab import params as P
from trainlab.configs import ConfigId, Study
from trainlab.data.prepared import load_prepared
from trainlab.data.variants import check_variant
from trainlab.engine.trial import Trial, TrialResult
from trainlab.families import common
from trainlab.family import Family
from trainlab.stats.findings import Finding, above, below, diverged, final, less, similar, wider

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
    trials=trials, findings=findings, book=BOOK, trial_metrics=trial_metrics,
    book_only=BOOK_ONLY,
)
