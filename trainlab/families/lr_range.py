"""LR range test (fastai's lr_find; Smith 2015): a learning rate that grows every update, on every seed at once.

Setup: the learning_rate family's (book chapter 4) model and data: Dense(50, relu, he_uniform) -> Dense(3,
softmax), categorical cross-entropy, batch 32, on blobs-3 unscaled; per optimizer configuration (SGD without
momentum, Adam) the rate grows exponentially from ``start`` to ``end`` over ``updates`` updates
(lr_u = start * (end / start) ** (u / (updates - 1)), u = 0 ... updates - 1), every seed of a configuration
one member of the engine's stacked population. Each update's batch loss (taken before the update) is
smoothed as fastai's recorder smooths it: an exponential moving average with factor ``smoothing`` (0.98),
debiased (divided by 1 - smoothing^n). The test stops, as fastai's stop_div does, at the first update whose
smoothed loss exceeds ``stop_factor`` (4) times the lowest so far, or is not finite: that update is the last
recorded (``stopped_update``; the run goes on, its later losses are masked, nothing crashes).

Suggestions, fastai 2.7's rules on the smoothed loss with its first updates // 10 and last 5 recorded points
dropped: ``valley`` (fastai's default): the longest stretch of the curve along which the loss keeps falling
(longest decreasing subsequence, ending at its first maximum-length end), and the rate 1/3 + 1/6 of the way
into it (index start + int(len / 3) + int(len / 6), len = end - start); ``steep``: the rate at the most
negative slope d loss / d ln(lr) between consecutive points; ``minimum``: the rate of the lowest smoothed loss,
divided by 10. Each is one number per seed: the report gives mean and spread over seeds.
"""

from __future__ import annotations

import json
import math
from functools import partial

import numpy as np
import pandas as pd

from trainlab import params as P
from trainlab.configs import ConfigId, Study
from trainlab.engine.trial import Trial, TrialResult
from trainlab.families import common
from trainlab.family import Family
from trainlab.stats import findings as F

SUGGESTIONS = ("valley", "steep", "minimum")
SWEEP = Study("learning_rate", param="learning_rates")  # the study of the `reads` family checked against

FIELDS = {
    "data": P.Field(str, allowed="the name of a variant under prepare:"),
    "batch_size": P.Field(int, minimum=1),
    "loss": P.Field(str, choices=tuple(common.MULTICLASS)),
    "optimizers": P.Field(dict, allowed="a mapping label -> optimizer ({name: sgd}); its learning_rate is "
                                        "replaced by the growing rate"),
    "start": P.Field(float, default=1e-7, **common.POSITIVE),
    "end": P.Field(float, default=10.0, **common.POSITIVE),
    "updates": P.Field(int, default=100, minimum=10),
    "smoothing": P.Field(float, default=0.98, minimum=0, maximum=1,
                         allowed="a number in [0, 1): the moving average's weight on the past (fastai: 0.98)"),
    "stop_factor": P.Field(float, default=4.0, minimum=1, allowed="a number ≥ 1 (fastai: 4)"),
    "hidden": P.Field(int, default=50, minimum=1),
    "reads": P.Field(str, allowed="the name of a family under families: whose learning-rate sweep the finding "
                                  "reads (its reports/results/<name>.json is a DVC dep of this family's stages)"),
    "decade": P.Field(float, default=1.0, **common.POSITIVE,
                      allowed="a number > 0: the finding's tolerance in decades of learning rate"),
    "seeds": P.Field(int, default=None, minimum=1, maximum=1000),
    "sequential": P.Field(dict, default=None, fields=P.SEQUENTIAL_FIELDS),
    "xla": P.Field(bool, default=None),
}
OPTIMIZER = Study("optimizer", param="optimizers")


def check(section: dict, key: str, params: dict) -> dict:
    cfg = common.check_section(section, key, FIELDS)
    if cfg["smoothing"] >= 1:
        raise P.ParamsError(f"{key}.smoothing: expected a number in [0, 1), got {cfg['smoothing']}")
    if cfg["end"] <= cfg["start"]:
        raise P.ParamsError(f"{key}.end: expected a rate above start={cfg['start']:g}, got {cfg['end']:g}")
    if cfg["updates"] // 10 + 5 + 2 > cfg["updates"]:
        raise P.ParamsError(f"{key}.updates: too few to suggest a rate, got {cfg['updates']}")
    if not cfg["optimizers"]:
        raise P.ParamsError(f"{key}.optimizers: expected at least one optimizer")
    cfg["optimizers"] = {str(label): common.check_optimizer(spec, f"{key}.optimizers.{label}")
                         for label, spec in cfg["optimizers"].items()}
    variants = params.get("prepare", {})
    if cfg["data"] not in variants:
        raise P.ParamsError(f"{key}.data: expected one of {', '.join(variants)} (the variants under prepare:), "
                            f"got {cfg['data']!r}")
    _, described, _ = common.task_of(params, cfg["data"])
    common.check_loss(cfg["loss"], f"{key}.loss", common.task_of(params, cfg["data"])[0],
                      f"{cfg['data']} ({described})", common.MULTICLASS_TARGETS)
    common.check_batch_size(cfg["batch_size"], f"{key}.batch_size", params, cfg["data"])
    # What the sweep of the family it reads ran with: the finding compares like with like only.
    sweep = (params.get("families") or {}).get(cfg["reads"])
    if not isinstance(sweep, dict) or not sweep.get(SWEEP.param):
        raise P.ParamsError(f"{key}.reads: expected a family under families: with a `{SWEEP.param}` sweep "
                            f"(e.g. learning_rate), got {cfg['reads']!r}")
    cfg["sweep"] = {"data": sweep.get("data"), "batch_size": sweep.get("batch_size"),
                    "optimizer": (sweep.get("optimizer") or {}).get("name"),
                    "momentum": (sweep.get("optimizer") or {}).get("momentum", 0.0),
                    "rates": [float(r) for r in sweep[SWEEP.param]]}
    return cfg


def rates(start: float, end: float, updates: int) -> np.ndarray:
    """The rate of each update: exponential from ``start`` (update 0) to ``end`` (the last)."""
    return start * (end / start) ** (np.arange(updates) / (updates - 1))


def range_optimizer(spec: dict, start: float, end: float, updates: int):
    """The optimizer of ``spec`` with its rate replaced by the exponential schedule of ``rates``."""
    import keras

    schedule = keras.optimizers.schedules.ExponentialDecay(
        start, decay_steps=1, decay_rate=(end / start) ** (1 / (updates - 1)))
    return common.make_optimizer(spec | {"learning_rate": schedule, "decay": 0.0})


def trials(cfg: dict, seeds: list[int]) -> list[Trial]:
    data, metric, n_classes = common.multiclass_data(cfg)
    build = partial(common.mlp, data.x_train.shape[1], [cfg["hidden"]], n_classes, "relu", "he_uniform")
    return [Trial(config=OPTIMIZER(label), seed=seed, data=data, build_model=build,
                  build_optimizer=partial(range_optimizer, spec, cfg["start"], cfg["end"], cfg["updates"]),
                  loss=cfg["loss"], metric=metric, batch_size=cfg["batch_size"], epochs=1,
                  tags={**{f"optimizer.{k}": v for k, v in spec.items() if v is not None and k != "learning_rate"},
                        "lr_start": cfg["start"], "lr_end": cfg["end"], "updates": cfg["updates"]})
            for label, spec in cfg["optimizers"].items() for seed in seeds]


# -- the curve and the suggestions (pure numpy: tested on synthetic curves) ---------------------------

def smooth(losses: np.ndarray, beta: float) -> np.ndarray:
    """fastai's AvgSmoothLoss: the debiased exponential moving average of the losses so far."""
    out, average = np.empty(len(losses)), 0.0
    for n, loss in enumerate(losses, 1):
        average = beta * average + (1 - beta) * loss
        out[n - 1] = average / (1 - beta ** n)
    return out


def stop_index(smoothed: np.ndarray, factor: float) -> int:
    """The last update recorded: the first whose smoothed loss is not finite or exceeds ``factor`` times
    the lowest before it (fastai's stop_div); the last update when none does."""
    best = math.inf
    for u, value in enumerate(smoothed):
        if not math.isfinite(value) or value > factor * best:
            return u
        best = min(best, value)
    return len(smoothed) - 1


def trimmed(lrs: np.ndarray, losses: np.ndarray, updates: int) -> tuple[np.ndarray, np.ndarray]:
    """What fastai's lr_find hands the suggestion rules: the recorded points without the first
    updates // 10 and the last 5."""
    return lrs[updates // 10:-5], losses[updates // 10:-5]


def valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai's ``valley``: the longest decreasing subsequence of the losses, and the rate at
    start + int(len / 3) + int(len / 6) of it (the loop below is fastai's, index for index)."""
    n = len(losses)
    longest = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
            if longest[max_end] < longest[i]:
                max_end, max_start = i, i - longest[i]
    sections = (max_end - max_start) / 3
    return float(lrs[max_start + int(sections) + int(sections / 2)])


def steep(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai's ``steep``: the rate where d loss / d ln(lr) between consecutive points is most negative."""
    slopes = np.diff(losses) / np.diff(np.log(lrs))
    return float(lrs[int(np.argmin(slopes))])


def minimum(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai's ``minimum``: the rate of the lowest loss, divided by 10."""
    return float(lrs[int(np.argmin(losses))] / 10)


RULES = {"valley": valley, "steep": steep, "minimum": minimum}


def suggest(lrs: np.ndarray, smoothed: np.ndarray, updates: int) -> dict[str, float]:
    """Every rule's rate on one recorded (finite, unmasked) smoothed curve; NaN when too short."""
    finite = np.isfinite(smoothed)
    x, y = trimmed(lrs[finite], smoothed[finite], updates)
    if len(y) < 2:
        return {rule: math.nan for rule in RULES}
    return {rule: f(x, y) for rule, f in RULES.items()}


def train(cfg: dict, seeds: list[int], execute) -> list[TrialResult]:
    """One population of every configuration's seeds, stepped update by update (``trainlab.engine.updates``);
    ``execute`` is not used: it trains whole epochs."""
    from trainlab.engine import runtime

    runtime.load_tensorflow()  # this family steps its population here, not in the workers
    from trainlab.engine.population import describe_model
    from trainlab.engine.updates import train_updates

    ordered, loss, lr, population = train_updates(trials(cfg, seeds), cfg["updates"])
    models = {unit.trials[0].config: describe_model(getattr(unit.model, "models", [unit.model])[0])
              for unit in population.units}
    out = []
    for k, trial in enumerate(ordered):
        smoothed = smooth(loss[k], cfg["smoothing"])
        stop = stop_index(smoothed, cfg["stop_factor"])
        mask = np.arange(cfg["updates"]) > stop
        history = {"batch_loss": np.where(mask, np.nan, loss[k]), "smoothed_loss": np.where(mask, np.nan, smoothed),
                   "lr": lr[k]}
        out.append(TrialResult(config=trial.config, seed=trial.seed, history=history, diverged_epoch=None,
                               weights=[], tags={**trial.tags, "stopped_update": stop + 1},
                               params={**models[trial.config]["params"], **trial.params},
                               dataset=trial.data.describe(), model=models[trial.config],
                               started=population.started))
    order = [(label, seed) for label in cfg["optimizers"] for seed in seeds]  # the trials' order
    return sorted(out, key=lambda r: order.index((r.config.value, r.seed)))


def trial_metrics(result: TrialResult, cfg: dict) -> dict[str, float]:
    h = result.history
    out = {f"{rule}_lr": value for rule, value in suggest(h["lr"], h["smoothed_loss"], cfg["updates"]).items()}
    finite = np.isfinite(h["smoothed_loss"])
    out["stopped_update"] = float(finite.sum())
    out["stopped_lr"] = float(h["lr"][finite][-1]) if finite.any() else math.nan
    out["min_smoothed_loss"] = float(np.nanmin(h["smoothed_loss"])) if finite.any() else math.nan
    return out


# -- the finding ----------------------------------------------------------------------------

def sweep_best(path, rates: list[float]) -> float:
    """The rate of the sweep with the highest mean final test accuracy, read from the swept family's
    results (reports/results/<reads>.json); ``MissingResults`` when there are none."""
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        raise F.MissingResults(f"{path} is missing (run `dvc repro train@{path.stem}` first)")
    summary = json.loads(path.read_text())
    means = {rate: ((summary.get(str(SWEEP(rate))) or {}).get("val_accuracy") or {}).get("mean") for rate in rates}
    means = {rate: m for rate, m in means.items() if m is not None}
    if not means:
        raise F.MissingResults(f"{path} has no {SWEEP.name}=<rate> configuration with a test accuracy")
    return max(means, key=means.get)


def decades_from_best(config: ConfigId, rule: str, cfg: dict, path: str) -> F.Quantity:
    """Per seed: |log10(suggested rate / the sweep's best rate)|; not judged (``MissingResults``) when the
    sweep ran another optimizer, data or batch size than this configuration."""
    spec, sweep = cfg["optimizers"][config.value], cfg["sweep"]
    ours = (spec["name"], spec["momentum"], cfg["data"], cfg["batch_size"])
    theirs = (sweep["optimizer"], sweep["momentum"] or 0.0, sweep["data"], sweep["batch_size"])

    def compute(results: F.Results) -> pd.Series:
        if ours != theirs:
            raise F.MissingResults(f"the {cfg['reads']} sweep ran (optimizer, momentum, data, batch) = {theirs}, "
                                   f"{config} runs {ours}: not the same experiment")
        best = sweep_best(path, sweep["rates"])
        lrs, smoothed = results.curves(config, "lr"), results.curves(config, "smoothed_loss")
        return pd.Series({seed: abs(math.log10(suggest(lrs.loc[seed].to_numpy(), smoothed.loc[seed].to_numpy(),
                                                       cfg["updates"])[rule] / best))
                          for seed in smoothed.index})
    return F.custom(f"decades between {rule} of {config} and the sweep's best rate", [config], compute)


def findings(cfg: dict) -> list[F.Finding]:
    """For the configurations of the sweep's optimizer; judged where they also repeat its momentum, data and
    batch, and its results exist (else not judged, saying why)."""
    path = f"reports/results/{cfg['reads']}.json"
    d = cfg["decade"]
    out = []
    for label, spec in cfg["optimizers"].items():
        if spec["name"] != cfg["sweep"]["optimizer"]:  # no sweep of this optimizer to compare with
            continue
        config = OPTIMIZER(label)
        for rule in ("valley", "steep"):
            out.append(F.Finding(
                f"{rule}_{label}_near_sweep_best",
                f"The range test's {rule} rate for {label} is within {d:g} decade of the best rate of the "
                f"{cfg['reads']} family's sweep on the same data (highest mean final test accuracy, read from "
                f"{path}; read as: |log10(suggested / best)| below {d:g} for most seeds, sign test)",
                F.below(decades_from_best(config, rule, cfg, path), d)))
    return out


FAMILY = Family(
    name="lr_range", doc=__doc__, fields=FIELDS, check=check,
    configs=lambda cfg: OPTIMIZER.of(list(cfg["optimizers"])),
    train=train, trial_metrics=trial_metrics, findings=findings,
)
