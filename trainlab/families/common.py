"""What the families share: the training keys of params.yaml and the Keras pieces they name.

Builders here return picklable callables (``functools.partial`` of module-level
functions), so a trial can be sent to a worker process and built there. Keras is
imported inside the builders: params are checked, and the runtime flags applied,
before TensorFlow loads.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from trainlab import params as P
from trainlab.data import datasets
from trainlab.data.prepared import Split, load_prepared

OPTIMIZERS = ("sgd", "rmsprop", "adagrad", "adam")
LOSSES = (
    "categorical_crossentropy", "sparse_categorical_crossentropy", "kl_divergence",
    "binary_crossentropy", "hinge", "squared_hinge",
    "mean_squared_error", "mean_squared_logarithmic_error", "mean_absolute_error",
)
ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear", "softmax", "elu", "selu", "leaky_relu", "gelu", "swish")
INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
                "lecun_normal", "random_uniform_0_1", "zeros")

MULTICLASS = {  # loss -> (target encoding, accuracy): the losses that fit a softmax over the classes
    "categorical_crossentropy": ("onehot", "categorical_accuracy"),
    "kl_divergence": ("onehot", "categorical_accuracy"),
    "sparse_categorical_crossentropy": ("sparse", "sparse_categorical_accuracy"),
}

# loss -> (the task it is for, the targets it needs): the one rule every family's losses are checked by.
LOSS_FIT = {
    "categorical_crossentropy": ("multiclass", "onehot"),
    "kl_divergence": ("multiclass", "onehot"),
    "sparse_categorical_crossentropy": ("multiclass", "sparse"),
    "binary_crossentropy": ("binary", "raw"),  # {0, 1} labels under a sigmoid
    "hinge": ("binary", "signed"),  # {-1, 1} labels under a tanh
    "squared_hinge": ("binary", "signed"),
    "mean_squared_error": ("regression", "raw"),
    "mean_squared_logarithmic_error": ("regression", "raw"),
    "mean_absolute_error": ("regression", "raw"),
}

POSITIVE = {"minimum": 0, "exclusive_minimum": True}
UNIT = {"minimum": 0, "maximum": 1}

# Keras's own defaults where a key is left out.
OPTIMIZER_FIELDS = {
    "name": P.Field(str, choices=OPTIMIZERS),
    "learning_rate": P.Field(float, default=None, **POSITIVE),
    "momentum": P.Field(float, default=0.0, minimum=0, maximum=1, exclusive_minimum=False),
    "nesterov": P.Field(bool, default=False),
    "decay": P.Field(float, default=0.0, minimum=0,
                     allowed="a number ≥ 0: per-update inverse-time decay, lr / (1 + decay * updates)"),
    "rho": P.Field(float, default=0.9, **UNIT),
    "beta_1": P.Field(float, default=0.9, **UNIT),
    "beta_2": P.Field(float, default=0.999, **UNIT),
    "epsilon": P.Field(float, default=1e-7, **POSITIVE),
    "clipnorm": P.Field(float, default=None, **POSITIVE),
    "clipvalue": P.Field(float, default=None, **POSITIVE),
    "global_clipnorm": P.Field(float, default=None, **POSITIVE),
}
DEFAULT_LEARNING_RATE = {"sgd": 0.01, "rmsprop": 0.001, "adagrad": 0.001, "adam": 0.001}
ONLY_FOR = {"momentum": ("sgd", "rmsprop"), "nesterov": ("sgd",), "rho": ("rmsprop",),
            "beta_1": ("adam",), "beta_2": ("adam",), "epsilon": ("rmsprop", "adagrad", "adam")}


def check_optimizer(spec: Any, key: str) -> dict:
    """Validate an optimizer mapping: known name, keys that fit it, positive rates."""
    if not isinstance(spec, dict):
        raise P.ParamsError(f"{key}: expected a mapping like {{name: sgd, learning_rate: 0.01}}, got {spec!r}")
    given = {k: v for k, v in spec.items() if v is not None}
    cfg = P.check(given, key, OPTIMIZER_FIELDS)
    for option, names in ONLY_FOR.items():
        if option in given and cfg["name"] not in names:
            raise P.ParamsError(f"{key}.{option}: only for {', '.join(names)}, not {cfg['name']!r}")
    if cfg["global_clipnorm"] is not None and (cfg["clipnorm"] is not None or cfg["clipvalue"] is not None):
        raise P.ParamsError(f"{key}.global_clipnorm: cannot be combined with clipnorm or clipvalue (Keras refuses it)")
    if cfg["learning_rate"] is None:
        cfg["learning_rate"] = DEFAULT_LEARNING_RATE[cfg["name"]]
    return cfg


def make_optimizer(cfg: dict):
    """The Keras optimizer an optimizer mapping names (call inside the trial's process)."""
    import keras

    learning_rate: Any = cfg["learning_rate"]
    if cfg["decay"]:
        # Keras 2's SGD(decay=d): lr_t = lr / (1 + d * t), t counted in updates.
        learning_rate = keras.optimizers.schedules.InverseTimeDecay(learning_rate, decay_steps=1,
                                                                     decay_rate=cfg["decay"])
    clip = {k: cfg[k] for k in ("clipnorm", "clipvalue", "global_clipnorm") if cfg[k] is not None}
    name = cfg["name"]
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=cfg["momentum"], nesterov=cfg["nesterov"], **clip)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, rho=cfg["rho"], momentum=cfg["momentum"],
                                        epsilon=cfg["epsilon"], **clip)
    if name == "adagrad":
        return keras.optimizers.Adagrad(learning_rate, epsilon=cfg["epsilon"], **clip)
    return keras.optimizers.Adam(learning_rate, beta_1=cfg["beta_1"], beta_2=cfg["beta_2"],
                                 epsilon=cfg["epsilon"], **clip)


class OptimizerFactory(partial):
    """``make_optimizer`` bound to one optimizer mapping (picklable), and the settings it applies as ``params``."""

    @property
    def params(self) -> dict[str, Any]:
        return optimizer_params(self.args[0])


def optimizer_factory(cfg: dict) -> OptimizerFactory:
    """The trial's optimizer builder; ``Trial.params`` reads the effective settings from it."""
    return OptimizerFactory(make_optimizer, dict(cfg))


def optimizer_params(cfg: dict) -> dict[str, Any]:
    """The settings an optimizer mapping actually applies, named as a user searches them:
    ``optimizer`` (its name), ``learning_rate``, and only the keys that optimizer takes (no Adam betas on
    SGD); unset clipping and a zero decay are left out."""
    out: dict[str, Any] = {"optimizer": cfg["name"], "learning_rate": cfg["learning_rate"]}
    for key, value in cfg.items():
        if key in ("name", "learning_rate") or value is None:
            continue
        if key in ONLY_FOR and cfg["name"] not in ONLY_FOR[key]:
            continue
        if key == "decay" and not value:
            continue
        out[key] = value
    return out


def initializer(name: str):
    """A Keras initializer by name; ``random_uniform_0_1`` is the book's RandomUniform(0, 1)."""
    import keras

    if name == "random_uniform_0_1":
        return keras.initializers.RandomUniform(minval=0.0, maxval=1.0)
    return name


def mlp(n_inputs: int, hidden: list[int], n_outputs: int, activation: str = "relu",
        hidden_init: str = "he_uniform", output_activation: str = "softmax",
        output_init: str = "glorot_uniform"):
    """The book's multilayer perceptron: Dense hidden layers, then a Dense output layer."""
    import keras

    layers: list = [keras.Input((n_inputs,))]
    for width in hidden:
        layers.append(keras.layers.Dense(width, activation=activation, kernel_initializer=initializer(hidden_init)))
    layers.append(keras.layers.Dense(n_outputs, activation=output_activation,
                                     kernel_initializer=initializer(output_init)))
    return keras.Sequential(layers)


def training_fields(**defaults: Any) -> dict[str, P.Field]:
    """The keys every family's section has; a family adds its own study keys."""
    return {
        "data": P.Field(str, allowed="the name of a variant under prepare:"),
        "epochs": P.Field(int, minimum=1),
        "batch_size": P.Field(int, minimum=1),
        "optimizer": P.Field(dict),
        "loss": P.Field(str, choices=LOSSES),
        "seeds": P.Field(int, default=None, minimum=1, maximum=1000,
                         allowed="an integer from 1 to 1000: a fixed number of seeds (one look) for this family"),
        "sequential": P.Field(dict, default=None, fields=P.SEQUENTIAL_FIELDS,
                              allowed="a mapping with any of start, block, cap, spending, alpha "
                                      "(overrides the top-level sequential for this family)"),
        "grad_stats": P.Field(bool, default=False,
                              allowed="true or false: record each layer's gradient mean |g| and norm per epoch"),
        "xla": P.Field(bool, default=None, allowed="true or false: overrides runtime.xla for this family"),
        **defaults,
    }


TWO_CLASS = "two-class"  # real data with two classes: a sigmoid over one output or a softmax over two both fit
TASK_FITS = {TWO_CLASS: ("binary", "multiclass")}  # the LOSS_FIT tasks a data set's task accepts (else itself)


def data_info(params: dict, variant: str) -> datasets.Info | None:
    """Task, classes and train rows of a prepare variant's data set (None when it is not declared)."""
    name, _ = dataset_of(params, variant)
    return datasets.info(params, name) if name in datasets.names(params) else None


def task_of(params: dict, variant: str) -> tuple[str | None, str, dict]:
    """What a prepare variant's data set asks for (regression, binary, multiclass), in words, and its settings."""
    name, spec = dataset_of(params, variant)
    info = data_info(params, variant)
    if info is None or (info.task == "classification" and not isinstance(info.classes, int)):
        return None, f"{name}: unknown", spec
    if info.task == "regression":
        return "regression", f"{name}: regression", spec
    task = "binary" if info.classes == 2 else "multiclass"
    if task == "binary" and not info.book:  # the book's binary problems keep the book's sigmoid rule
        task = TWO_CLASS
    return task, f"{name}: {info.classes} classes", spec


def check_loss(loss: str, key: str, task: str | None, what: str, targets: tuple[str, ...]) -> None:
    """A loss fits when it is for the task and needs targets the family feeds (``LOSS_FIT``)."""
    tasks = TASK_FITS.get(task, (task,))
    fits = [name for name, (for_task, needs) in LOSS_FIT.items() if for_task in tasks and needs in targets]
    if loss not in fits:
        raise P.ParamsError(f"{key}: {loss!r} does not fit {what} (a {task or 'unknown'} task, trained here on "
                            f"{' or '.join(targets)} targets); expected one of {', '.join(fits) or '(none)'}")


def check_section(section: dict, key: str, fields: dict[str, P.Field]) -> dict:
    """A family section's keys checked against ``fields``; ``seeds``, ``xla`` and ``sequential`` may be null
    ("as the top level / runtime says"), and a ``sequential`` given is checked key by key."""
    given = {k: v for k, v in section.items() if not (v is None and k in ("seeds", "xla", "sequential"))} \
        if isinstance(section, dict) else section
    cfg = P.check(given, key, fields)
    if cfg.get("sequential") is not None:
        cfg["sequential"] = P.check_sequential(section["sequential"], f"{key}.sequential")
    return cfg


def check_training(section: dict, key: str, params: dict, fields: dict[str, P.Field],
                   targets: tuple[str, ...] = ("onehot", "raw"), task: tuple[str, str] | None = None) -> dict:
    """Validate a family section: its keys, its optimizer, that its data variant exists, that its loss fits
    the data's task and the ``targets`` its trials feed (``common.mlp`` families: one-hot classes or raw
    values; ``task``: (task, in words) when the loss is for something else than the data's labels, e.g. an
    autoencoder), and that its batch fits the train split."""
    cfg = check_section(section, key, fields)
    cfg["optimizer"] = check_optimizer(cfg["optimizer"], f"{key}.optimizer")
    variants = params.get("prepare", {})
    if cfg["data"] not in variants:
        raise P.ParamsError(f"{key}.data: expected one of {', '.join(variants)} (the variants under prepare:), "
                            f"got {cfg['data']!r}")
    found, described, _ = task_of(params, cfg["data"])
    check_loss(cfg["loss"], f"{key}.loss", *(task or (found, f"{cfg['data']} ({described})")), targets)
    check_batch_size(cfg["batch_size"], f"{key}.batch_size", params, cfg["data"])
    info = data_info(params, cfg["data"])
    # Derived: the findings tied to the book's numbers are judged on the book's data only (trainlab.stats.findings)
    cfg["book_data"] = info is None or info.book
    return cfg


def dataset_of(params: dict, variant: str) -> tuple[str, dict]:
    """The data set behind a prepare variant, and its params ({} if not declared)."""
    name = (params.get("prepare") or {}).get(variant, {}).get("dataset", variant)
    spec = None
    for top in datasets.SECTIONS:
        spec = (params.get(top) or {}).get(name) if spec is None else spec
    return name, spec if isinstance(spec, dict) else {}


def check_batch_size(value: int, key: str, params: dict, variant: str) -> None:
    """A batch is at least one row and at most the whole train split."""
    name, _ = dataset_of(params, variant)
    info = data_info(params, variant)
    if info is not None and not 1 <= value <= info.n_train:
        raise P.ParamsError(f"{key}: expected a batch size from 1 to {info.n_train} (the train split of {name}), "
                            f"got {value}")


def check_multiclass_study(cfg: dict, key: str, params: dict) -> None:
    """The book's optimisation studies on blobs-3: a multi-class data set (or any classification data set that
    is not the book's: its lessons are general), a batch that fits its train split, and a late-epoch window
    (``late_epochs``) no longer than the run."""
    name, spec = dataset_of(params, cfg["data"])
    info = data_info(params, cfg["data"])
    if info is not None and not info.book:
        if info.task != "classification":
            raise P.ParamsError(f"{key}.data: expected a classification data set, got {cfg['data']!r} ({name}: "
                                f"{info.task})")
    elif spec.get("generator") != "blobs" or spec.get("centers", 0) < 3:
        raise P.ParamsError(f"{key}.data: expected a multi-class (blobs, ≥ 3 centers) data set for "
                            f"{cfg['loss']}, got {cfg['data']!r} ({name})")
    if cfg["late_epochs"] > cfg["epochs"]:
        raise P.ParamsError(f"{key}.late_epochs: expected at most epochs={cfg['epochs']}, got {cfg['late_epochs']}")


MULTICLASS_TARGETS = ("onehot", "sparse")  # what multiclass_data feeds: the encoding the loss asks for


def multiclass_data(cfg: dict) -> tuple[Split, str, int]:
    """The section's data encoded for its multi-class loss, the accuracy that fits it, and the class count."""
    target, metric = MULTICLASS[cfg["loss"]]
    data = load_prepared(cfg["data"]).split(target)
    n_classes = int(max(data.y_train.max(), data.y_val.max())) + 1 if target == "sparse" else data.y_train.shape[1]
    return data, metric, n_classes


def deepen(model, previous: list[Any]):
    """Start ``model`` from ``previous``, the weights of the same stack one hidden layer shallower.

    The book's greedy layer-wise pretraining (chapter 9): its older hidden layers take the previous
    hidden weights and are frozen; its newest hidden layer keeps its fresh initial weights; its output
    layer continues from the previous output layer. Only the newest hidden layer and the output learn.
    """
    pairs = [previous[i:i + 2] for i in range(0, len(previous), 2)]  # (kernel, bias) per Dense layer
    *hidden, output = pairs
    if len(model.layers) != len(pairs) + 1:
        raise ValueError(f"cannot deepen a {len(pairs)}-layer stack into a {len(model.layers)}-layer model")
    for layer, weights in zip(model.layers, hidden):
        layer.set_weights(weights)
        layer.trainable = False
    model.layers[-1].set_weights(output)
    return model


def updates_per_epoch(params: dict, variant: str, batch_size: int, key: str) -> int:
    """Weight updates in one pass over a variant's train split (the last batch may be short), from the
    params alone: the data set's ``n_train`` rows in batches of ``batch_size``."""
    name, _ = dataset_of(params, variant)
    info = data_info(params, variant)
    if info is None:
        raise P.ParamsError(f"{key}: data set {name!r} is not declared; its train rows count the updates per epoch")
    return math.ceil(info.n_train / batch_size)
