"""Loss landscape (Li et al. 2018): the training loss around trained weights, along filter-normalized directions.

Setup: each configuration is a model of another family (``models.<label>``: its layers, data, loss, batch,
optimizer), trained here for a few ``epochs`` with the engine (stacked seeds), so the pipeline needs no saved
models and stays cheap. Around each seed's final weights w, two random directions d1, d2 (standard normal,
drawn from the seed) are filter-normalized as Li et al. do for dense layers: each neuron's column of a
direction's kernel is scaled to the norm of that neuron's incoming weights, ||d[:, j]|| = ||w[:, j]||; biases
and batch-normalization parameters get a zero direction. The training loss (all train rows, inference mode)
is evaluated at w + a d1 (1D, ``points_1d`` values of a in [-span, span]) and at w + a d1 + b d2 (2D,
``points_2d`` x ``points_2d`` grid): every grid point is one member of a stack of weights, so a whole grid is
one batched evaluation (a batched matmul per layer, in chunks of ``chunk`` points).

Sharpness: the mean rise of the 1D loss at distance ``radius`` on both sides, (L(w - r d1) + L(w + r d1)) / 2
- L(w) (linear interpolation between grid points), one number per seed.
"""

from __future__ import annotations

import math
import time
from functools import partial

import numpy as np
import pandas as pd

from trainlab import params as P
from trainlab.configs import ConfigId, Study
from trainlab.data.prepared import load_prepared
from trainlab.engine.trial import Trial, TrialResult
from trainlab.families import common
from trainlab.family import Family
from trainlab.stats import findings as F

MODEL = Study("model", param="models")
TARGETS = {"binary_crossentropy": ("raw", "binary_accuracy"), "categorical_crossentropy": ("onehot",
                                                                                         "categorical_accuracy")}
# The models of the other families, by the arguments of their common builder (``common.mlp``), plus batch
# normalization after each hidden layer as batch_norm's placement=after (imported families would be code this
# family's DVC stages do not list as deps).
ARGS = {
    "hidden": P.Field(list, item=P.Field(int, minimum=1), allowed="a non-empty list of hidden widths"),
    "activation": P.Field(str, default="relu", choices=common.ACTIVATIONS),
    "hidden_init": P.Field(str, default="he_uniform", choices=common.INITIALIZERS),
    "output_init": P.Field(str, default="glorot_uniform", choices=common.INITIALIZERS),
    "batch_norm": P.Field(bool, default=False, allowed="true or false: BatchNormalization after each hidden layer"),
}
MODEL_FIELDS = {
    "model": P.Field(dict, allowed="a mapping with hidden and any of activation, hidden_init, output_init, "
                                   "batch_norm"),
    "data": P.Field(str, allowed="the name of a variant under prepare:"),
    "loss": P.Field(str, choices=tuple(TARGETS)),
    "batch_size": P.Field(int, minimum=1),
    "epochs": P.Field(int, minimum=1),
    "optimizer": P.Field(dict),
}
FIELDS = {
    "models": P.Field(dict, allowed="a mapping label -> {model, data, loss, batch_size, epochs, optimizer}"),
    "span": P.Field(float, default=1.0, **common.POSITIVE),
    "points_1d": P.Field(int, default=51, minimum=3),
    "points_2d": P.Field(int, default=51, minimum=3),
    "radius": P.Field(float, default=0.5, **common.POSITIVE),
    "chunk": P.Field(int, default=512, minimum=1, allowed="grid points per batched evaluation (memory)"),
    "seeds": P.Field(int, default=None, minimum=1, maximum=1000),
    "sequential": P.Field(dict, default=None, fields=P.SEQUENTIAL_FIELDS),
    "xla": P.Field(bool, default=None),
}


def check(section: dict, key: str, params: dict) -> dict:
    cfg = common.check_section(section, key, FIELDS)
    if cfg["radius"] > cfg["span"]:
        raise P.ParamsError(f"{key}.radius: expected at most span={cfg['span']:g}, got {cfg['radius']:g}")
    if not cfg["models"]:
        raise P.ParamsError(f"{key}.models: expected at least one model")
    models = {}
    for label, spec in cfg["models"].items():
        where = f"{key}.models.{label}"
        m = P.check(spec, where, MODEL_FIELDS)
        m["model"] = P.check(m["model"], f"{where}.model", ARGS)
        m["optimizer"] = common.check_optimizer(m["optimizer"], f"{where}.optimizer")
        if m["data"] not in params.get("prepare", {}):
            raise P.ParamsError(f"{where}.data: expected one of {', '.join(params.get('prepare', {}))}, "
                                f"got {m['data']!r}")
        found, described, _ = common.task_of(params, m["data"])
        common.check_loss(m["loss"], f"{where}.loss", found, f"{m['data']} ({described})", (TARGETS[m["loss"]][0],))
        common.check_batch_size(m["batch_size"], f"{where}.batch_size", params, m["data"])
        models[str(label)] = m
    cfg["models"] = models
    return cfg


def build(n_inputs: int, n_outputs: int, hidden: list[int], activation: str, hidden_init: str, output_init: str,
          batch_norm: bool):
    """``common.mlp`` (sigmoid output for one unit, else softmax), with BatchNormalization after each hidden layer
    when ``batch_norm``."""
    import keras

    output = "sigmoid" if n_outputs == 1 else "softmax"
    model = common.mlp(n_inputs, hidden, n_outputs, activation, hidden_init, output, output_init)
    if not batch_norm:
        return model
    *dense, last = model.layers
    return keras.Sequential([keras.Input((n_inputs,)),
                             *(x for layer in dense for x in (layer, keras.layers.BatchNormalization())), last])


def trials(cfg: dict, seeds: list[int]) -> list[Trial]:
    out = []
    for label, m in cfg["models"].items():
        target, metric = TARGETS[m["loss"]]
        data = load_prepared(m["data"]).split(target)
        n_outputs = 1 if target == "raw" else data.y_train.shape[1]
        out += [Trial(config=MODEL(label), seed=seed, data=data,
                      build_model=partial(build, data.x_train.shape[1], n_outputs, **m["model"]),
                      build_optimizer=common.optimizer_factory(m["optimizer"]), loss=m["loss"], metric=metric,
                      batch_size=m["batch_size"], epochs=m["epochs"], tags=dict(m["model"]))
                for seed in seeds]
    return out


# -- directions and the batched grid (TensorFlow inside the functions) -----------------------------

def plan(model) -> list[tuple[str, object]]:
    """The model's layers as the evaluation needs them, each with its weights' count in ``get_weights``:
    (``dense``, activation, n), (``bn``, epsilon, n) or (``activation``, function, 0)."""
    import keras

    out = []
    for layer in model.layers:
        n = len(layer.get_weights())
        if isinstance(layer, keras.layers.Dense):
            out.append(("dense", layer.activation, n))
        elif isinstance(layer, keras.layers.BatchNormalization):
            if not (layer.scale and layer.center):
                raise ValueError("batch normalization without scale or centre is not supported")
            out.append(("bn", layer.epsilon, n))
        elif isinstance(layer, keras.layers.Activation):
            out.append(("activation", layer.activation, 0))
        else:
            raise ValueError(f"layer {layer.name} ({type(layer).__name__}) is not a Dense stack")
    return out


def filter_normalized(weights: list[np.ndarray], layers: list[tuple], rng: np.random.Generator) -> list[np.ndarray]:
    """A random direction shaped like ``weights``: a dense kernel's columns (one per neuron) scaled to the
    norms of the weights' columns; biases and batch-normalization arrays zero (Li et al. 2018)."""
    out, i = [], 0
    for kind, _, n in layers:
        for k in range(n):
            w = weights[i + k]
            if kind == "dense" and k == 0:
                d = rng.standard_normal(w.shape).astype(np.float32)
                d *= np.linalg.norm(w, axis=0, keepdims=True) / np.maximum(np.linalg.norm(d, axis=0, keepdims=True),
                                                                             1e-12)
                out.append(d)
            else:
                out.append(np.zeros_like(w))
        i += n
    return out


def evaluator(layers: list[tuple], loss: str):
    """A compiled ``(weights, directions, coefficients, x, y) -> loss per point``: the points are one stack of
    weights w + sum_k c[p, k] d_k, evaluated in one batched pass (inference mode). Traced once per shape, so
    one evaluator serves every seed and chunk of a configuration."""
    import keras
    import tensorflow as tf

    per_sample = keras.losses.get(loss)

    def evaluate(weights, directions, c, x, y):
        stacked = [w[None] + sum(tf.reshape(c[:, k], [-1] + [1] * w.shape.rank) * d[j][None]
                                 for k, d in enumerate(directions)) for j, w in enumerate(weights)]
        h, i = tf.broadcast_to(x[None], tf.concat([tf.shape(c)[:1], tf.shape(x)], 0)), 0
        for kind, extra, n in layers:
            if kind == "dense":
                h = tf.matmul(h, stacked[i]) + (stacked[i + 1][:, None, :] if n > 1 else 0.0)
                h = extra(h)
            elif kind == "bn":
                gamma, beta, mean, variance = (stacked[i + k][:, None, :] for k in range(4))
                h = tf.nn.batch_normalization(h, mean, variance, beta, gamma, extra)
            else:
                h = extra(h)
            i += n
        target = y if y.shape.rank == 2 else y[:, None]
        return tf.reduce_mean(per_sample(tf.broadcast_to(target[None], tf.shape(h)), h), axis=1)

    return tf.function(evaluate, autograph=False)


def grid_losses(weights: list[np.ndarray], directions: list[list[np.ndarray]], coefficients: np.ndarray,
                x: np.ndarray, y: np.ndarray, evaluate, chunk: int = 512) -> np.ndarray:
    """The mean loss over (x, y) at w + sum_k c[p, k] d_k for every row p of ``coefficients``, ``chunk``
    points per batched call of ``evaluate`` (``evaluator``); the last chunk is padded to keep one trace."""
    import tensorflow as tf

    as_tensor = partial(tf.constant, dtype=tf.float32)
    w = [as_tensor(a) for a in weights]
    d = [[as_tensor(a) for a in direction] for direction in directions]
    x, y = as_tensor(x), as_tensor(y)
    size = chunk
    out = []
    for s in range(0, len(coefficients), size):
        part = coefficients[s:s + size]
        padded = np.concatenate([part, np.zeros((size - len(part), part.shape[1]))]) if len(part) < size else part
        out.append(evaluate(w, d, as_tensor(padded), x, y).numpy()[:len(part)])
    return np.concatenate(out)


def landscape(result: TrialResult, trial: Trial, cfg: dict, layers: list[tuple], evaluate) -> dict[str, np.ndarray]:
    """One seed's 1D curve and 2D grid (flattened row by row: b outer, a inner) around its final weights."""
    rng = np.random.default_rng(trial.seed)
    directions = [filter_normalized(result.weights, layers, rng) for _ in range(2)]
    a1 = np.linspace(-cfg["span"], cfg["span"], cfg["points_1d"])
    a2 = np.linspace(-cfg["span"], cfg["span"], cfg["points_2d"])
    one = np.stack([a1, np.zeros_like(a1)], axis=1)
    bb, aa = np.meshgrid(a2, a2, indexing="ij")
    two = np.stack([aa.ravel(), bb.ravel()], axis=1)
    x, y = trial.data.x_train, trial.data.y_train
    started = time.perf_counter()
    surface = grid_losses(result.weights, directions, two, x, y, evaluate, cfg["chunk"])
    seconds = time.perf_counter() - started
    curve = grid_losses(result.weights, directions, one, x, y, evaluate, cfg["chunk"])
    return {"loss_1d": curve, "loss_2d": surface, "grid_seconds": np.array([seconds])}


def sharpness(curve: np.ndarray, span: float, radius: float) -> float:
    """Mean rise of a 1D curve (on linspace(-span, span)) at ±radius over its centre value."""
    a = np.linspace(-span, span, len(curve))
    centre = float(np.interp(0.0, a, curve))
    return float((np.interp(-radius, a, curve) + np.interp(radius, a, curve)) / 2 - centre)


def train(cfg: dict, seeds: list[int], execute) -> list[TrialResult]:
    """Train each model briefly with the engine, then evaluate its landscape per seed."""
    from trainlab.engine import runtime

    planned = trials(cfg, seeds)
    results = execute(planned)
    runtime.load_tensorflow()  # the grids are evaluated here, not in the workers
    out, evaluators = [], {}
    for trial, result in zip(planned, results):
        if trial.config not in evaluators:  # one compiled evaluation per configuration
            layers = plan(trial.build_model())
            evaluators[trial.config] = layers, evaluator(layers, trial.loss)
        maps = landscape(result, trial, cfg, *evaluators[trial.config]) if not result.diverged else {}
        history = dict(result.history) | {k: v for k, v in maps.items() if k != "grid_seconds"}
        tags = dict(result.tags) | ({"grid_seconds": round(float(maps["grid_seconds"][0]), 3)} if maps else {})
        out.append(TrialResult(**{**vars(result), "history": history, "tags": tags}))
    return out


def trial_metrics(result: TrialResult, cfg: dict) -> dict[str, float]:
    curve = result.history.get("loss_1d")
    if curve is None:
        return {"sharpness": math.nan, "grid_seconds": math.nan}
    return {"sharpness": sharpness(curve, cfg["span"], cfg["radius"]),
            "grid_seconds": float(result.tags.get("grid_seconds", math.nan))}


# -- findings -------------------------------------------------------------------------------

def _sharpness(config: ConfigId, cfg: dict) -> F.Quantity:
    def compute(results: F.Results) -> pd.Series:
        table = results.curves(config, "loss_1d")
        return pd.Series({seed: sharpness(row.to_numpy(dtype=float), cfg["span"], cfg["radius"])
                          for seed, row in table.iterrows()})
    return F.custom(f"sharpness of {config} (loss rise at ±{cfg['radius']:g})", [config], compute)


def findings(cfg: dict) -> list[F.Finding]:
    """Only where the book implies a shape: batch normalization lets the book's model train faster and
    stabler (chapter 8), read as a flatter minimum. Needs configurations ``batch_norm`` and ``no_batch_norm``."""
    labels = set(cfg["models"])
    out = []
    if {"batch_norm", "no_batch_norm"} <= labels:
        out.append(F.Finding(
            "batch_norm_flatter", "Batch normalization gives a flatter minimum than the same model without it "
            f"(read as: a smaller loss rise at ±{cfg['radius']:g} along a filter-normalized direction; paired t-test)",
            F.less(_sharpness(MODEL("batch_norm"), cfg), _sharpness(MODEL("no_batch_norm"), cfg))))
    return out


FAMILY = Family(
    name="loss_landscape", doc=__doc__, fields=FIELDS, check=check,
    configs=lambda cfg: MODEL.of(list(cfg["models"])),
    train=train, trial_metrics=trial_metrics, findings=findings,
)
