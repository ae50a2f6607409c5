"""Greedy layer-wise unsupervised pretraining (book chapter 9b) on blobs-3.

An autoencoder (10 relu nodes, then a linear output the size of the input, mean
squared error) learns to reproduce the inputs. It is deepened the way the supervised
family deepens its model (older hidden layers frozen, a new 10-relu layer under the
same output layer, only the new layer and the output learn) until it has ``depth``
hidden layers. At every depth its encoder (the hidden layers, all frozen) gets a fresh
softmax output trained on the labels: how useful are the learnt features?
SGD(0.01, momentum 0.9), 100 epochs per phase, batch 32, unscaled inputs.

Configurations, k = hidden layers (the book prints k + 1, counting the output):
``autoencoder=k`` (metric ``mse``: the reconstruction error, ``val_mse`` on the test
rows) and ``classifier=k`` (``accuracy`` / ``val_accuracy`` of the softmax head on
the frozen k-layer encoder).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from trainlab import params as P
from trainlab.configs import ConfigId, Study
from trainlab.data.prepared import Split, load_prepared
from trainlab.engine.trial import Trial, TrialResult
from trainlab.families import common
from trainlab.family import Execute, Family
from trainlab.stats.findings import Finding, final, increasing, less

FIELDS = common.training_fields(
    depth=P.Field(int, minimum=1,
                  allowed="an integer ≥ 1 (hidden layers of the deepest autoencoder; 1 = the base one only)"),
    width=P.Field(int, minimum=1),
    classifier_loss=P.Field(str, default="categorical_crossentropy", choices=common.LOSSES),
)
# k hidden layers: the autoencoder after its phase, and the softmax head on its frozen encoder
AUTOENCODER, CLASSIFIER = Study("autoencoder", param="depth"), Study("classifier", param="depth")


def check(section: dict, key: str, params: dict) -> dict:
    # `loss` trains the autoencoders (x -> x); `classifier_loss` the softmax head on the data's classes.
    cfg = common.check_training(section, key, params, FIELDS,
                                task=("regression", "the autoencoder's reconstruction of its inputs"))
    task, described, _ = common.task_of(params, cfg["data"])
    common.check_loss(cfg["classifier_loss"], f"{key}.classifier_loss", task, f"{cfg['data']} ({described})",
                      ("onehot",))
    return cfg


# -- the models: an autoencoder deepened per phase, a classifier head on its encoder ----------


def autoencoder(n_inputs: int, width: int, depth: int, previous: list[np.ndarray] | None = None):
    """``depth`` hidden relu layers and a linear output of the input's size; grown from ``previous``."""
    net = common.mlp(n_inputs, [width] * depth, n_inputs, activation="relu", hidden_init="he_uniform",
                     output_activation="linear")
    return net if previous is None else common.deepen(net, previous)


def classifier(n_inputs: int, n_classes: int, width: int, depth: int, trained: list[np.ndarray]):
    """The autoencoder's hidden layers (weights ``trained``), all frozen, under a new softmax output."""
    net = common.mlp(n_inputs, [width] * depth, n_classes, activation="relu", hidden_init="he_uniform")
    for layer, i in zip(net.layers[:-1], range(0, 2 * depth, 2)):
        layer.set_weights(trained[i:i + 2])
        layer.trainable = False
    return net


def undefined_after_divergence(result: TrialResult) -> TrialResult:
    """NaN every curve from the epoch a trial diverged on.

    With this setup (unscaled inputs, momentum 0.9, squared error) some seeds' autoencoders
    diverge, and every deeper autoencoder and classifier built on them starts from NaN
    weights. Their loss is NaN, but an arg-max of NaN outputs still scores a finite
    "accuracy" (always class 0), which must not count in the means over seeds.
    """
    if result.diverged:
        cut = result.diverged_epoch - 1
        result.history = {name: np.concatenate([values[:cut], np.full(len(values) - cut, np.nan)])
                          if name != "lr" else values for name, values in result.history.items()}
    return result


# -- configurations and their phases ----------------------------------------------------------


def configs(cfg: dict) -> list[ConfigId]:
    """In the book's order: the autoencoder at a depth, then the classifier on it."""
    return [config for k in range(1, cfg["depth"] + 1) for config in (AUTOENCODER(k), CLASSIFIER(k))]


def phase_trials(cfg: dict, labelled: Split, depth: int, trained: dict[int, list[np.ndarray] | None]) -> list[Trial]:
    """Phase ``depth``: the autoencoder with ``depth`` hidden layers and, beside it in the same population
    (both need only the (depth-1)-layer autoencoder, ``trained``), the classifier on the (depth-1)-layer encoder."""
    inputs = Split(labelled.x_train, labelled.x_train, labelled.x_val, labelled.x_val)  # x -> x
    n_inputs, n_classes = labelled.x_train.shape[1], labelled.y_train.shape[1]

    def trial(config: ConfigId, seed: int, data: Split, build, loss: str, metric: str) -> Trial:
        return Trial(config=config, seed=seed, data=data, build_model=build,
                     build_optimizer=common.optimizer_factory(cfg["optimizer"]), loss=loss, metric=metric,
                     batch_size=cfg["batch_size"], epochs=cfg["epochs"], grad_stats=cfg["grad_stats"],
                     tags={"hidden_layers": config.value, "model": config.study})

    trials = []
    if depth <= cfg["depth"]:
        trials += [trial(AUTOENCODER(depth), seed, inputs,
                         partial(autoencoder, n_inputs, cfg["width"], depth, start), cfg["loss"], "mse")
                   for seed, start in trained.items()]
    if depth > 1:
        trials += [trial(CLASSIFIER(depth - 1), seed, labelled,
                         partial(classifier, n_inputs, n_classes, cfg["width"], depth - 1, start),
                         cfg["classifier_loss"], "categorical_accuracy")
                   for seed, start in trained.items()]
    return trials


def trials(cfg: dict, seeds: list[int]) -> list[Trial]:
    """The first phase (the base autoencoder): every later one needs the weights the one before ended with."""
    return phase_trials(cfg, load_prepared(cfg["data"]).split("onehot"), 1, {seed: None for seed in seeds})


def train(cfg: dict, seeds: list[int], execute: Execute) -> list[TrialResult]:
    labelled = load_prepared(cfg["data"]).split("onehot")
    trained: dict[int, list[np.ndarray] | None] = {seed: None for seed in seeds}
    results = []
    for depth in range(1, cfg["depth"] + 2):  # the last phase trains only the classifier on the deepest encoder
        phase = [undefined_after_divergence(r) for r in execute(phase_trials(cfg, labelled, depth, trained))]
        trained = {r.seed: r.weights for r in phase if r.config.study == AUTOENCODER.name}
        results += phase
    order = {config: i for i, config in enumerate(configs(cfg))}
    return sorted(results, key=lambda r: order[r.config])  # stable: seeds keep their order


# -- findings --------------------------------------------------------------------------------


def findings(cfg: dict) -> list[Finding]:
    """What the book concludes. Its "beyond about 5 layers" is read at the deepest encoder the params train."""
    # With depth 1 there is no deeper encoder: the finding is then not judged ("depth has no 2").
    deepest = CLASSIFIER(max(cfg["depth"], 2))
    return [
        Finding("reconstruction_error_grows_with_depth",
                "The reconstruction error grows as layers are added (book test MSE 0.000 -> 2.526)",
                increasing(AUTOENCODER, "val_mse")),
        Finding("deepest_encoder_classifies_worse",
                f"Beyond about 5 layers the model becomes unstable: the classifier on the deepest encoder "
                f"({deepest.value} hidden layers) is less accurate than on the 1-layer one (book 0.760 vs 0.832)",
                less(final(deepest, "val_accuracy"), final(CLASSIFIER(1), "val_accuracy"))),
    ]


# The book's single run; it prints layers = hidden layers + 1 (our k is its k+1).
BOOK = {
    **{AUTOENCODER(k): {"mse": train, "val_mse": test} for k, (train, test) in enumerate([
        (0.000, 0.000), (0.001, 0.002), (0.002, 0.002), (0.016, 0.028), (2.311, 2.694), (2.192, 2.526)], start=1)},
    **{CLASSIFIER(k): {"accuracy": train, "val_accuracy": test} for k, (train, test) in enumerate([
        (0.830, 0.832), (0.826, 0.842), (0.820, 0.838), (0.828, 0.834), (0.764, 0.762), (0.764, 0.760)], start=1)},
}

FAMILY = Family(
    name="pretraining_unsupervised", doc=__doc__, fields=FIELDS,
    check=check,
    configs=configs, trials=trials, train=train, findings=findings, book=BOOK,
    needs_book_data=("its autoencoder and its findings are the book's blobs-3 reconstruction errors and accuracies"),
)
