"""Transfer learning (book chapter 10) between two blobs-3 problems.

Problem 1 (random_state 1) and problem 2 (random_state 2) share the input space and
its scale but not the cluster centres. The source model (5 relu, 5 relu, softmax;
plain SGD 0.01 without momentum; 100 epochs) is trained once on problem 1 by the
stage ``source@<source>`` (params ``sources.<source>``) and saved as
``data/models/<source>.keras``; with ``sources.<source>.models`` = K > 1 the stage also trains
K - 1 further source models (seeds ``seed + 1``, ...) into ``data/models/<source>/``.

On problem 2, each repeat trains with a fresh SGD optimizer either a fresh model of
the source's architecture (``model=standalone``) or a saved model with its first k
hidden layers frozen (``model=transfer_frozen<k>``; k = 0: the source only sets the
initial weights, k = 2: only the output layer learns). The book starts every repeat from
its one source model, so its verdicts are about that model; here repeat (seed) s starts from
source model (s - 1) mod K, the book's own first, so the findings are judged over sources ×
repeats (paired with the standalone repeat of the same seed), and the figure shows the spread
between sources: each source's mean over its repeats.
"""

from __future__ import annotations

import hashlib
from functools import partial

from trainlab import params as P
from trainlab.configs import ConfigId, Study
from trainlab.data.prepared import load_prepared
from trainlab.engine.saved_models import load_model, model_path, more_models
from trainlab.engine.trial import Trial
from trainlab.families import common
from trainlab.family import Family
from trainlab.stats.findings import Finding, all_of, final, greater, less, wider

KEY = "families_from_source.transfer"  # where trainlab.families.section_key finds this family's params

FIELDS = common.training_fields(
    source=P.Field(str, allowed="the name of a model under sources:"),
    frozen=P.Field(list, item=P.Field(int, minimum=0), check=lambda v: len(set(v)) == len(v),
                   allowed="a non-empty list of distinct integers ≥ 0 (hidden layers kept fixed)"),
    standalone=P.Field(bool, default=True, allowed="true or false: also train fresh models on problem 2"),
)


def check(section: dict, key: str, params: dict) -> dict:
    cfg = common.check_training(section, key, params, FIELDS)
    sources = params.get("sources") if isinstance(params.get("sources"), dict) else {}
    if cfg["source"] not in sources:
        raise P.ParamsError(f"{key}.source: expected one of {', '.join(sources) or '(none declared)'} "
                            f"(the models under sources:), got {cfg['source']!r}")
    hidden = sources[cfg["source"]].get("hidden") if isinstance(sources[cfg["source"]], dict) else None
    if isinstance(hidden, list):  # the saved file is checked again when the trials are built
        check_frozen(cfg["frozen"], len(hidden), f"{key}.frozen", f"sources.{cfg['source']}")
    return cfg


def check_frozen(frozen: list[int], hidden: int, key: str, model: str) -> None:
    too_many = [n for n in frozen if n > hidden]
    if too_many:
        raise P.ParamsError(f"{key}: the source model {model} has {hidden} hidden layers, so at most {hidden} "
                            f"can be frozen (its output layer must learn), got {too_many[0]}")


# -- the models: the source's architecture, fresh or from the saved weights -------------------


def fresh_model(spec: str):
    """The source's architecture with new initial weights (drawn from the trial's seed)."""
    import keras

    return keras.models.model_from_json(spec)


def transferred_model(spec: str, weights: list, frozen: int):
    """The source model with its weights, its first ``frozen`` layers kept fixed."""
    model = fresh_model(spec)
    model.set_weights(weights)
    for layer in model.layers[:frozen]:
        layer.trainable = False
    return model


# -- configurations: model=standalone (params `standalone`), model=transfer_frozen<k> (`frozen`) --

STANDALONE = Study("model", param="standalone")
FROZEN = Study("model", param="frozen")


def standalone() -> ConfigId:
    """A fresh model of the source's architecture, trained on problem 2 alone."""
    return STANDALONE("standalone")


def transferred(frozen: int) -> ConfigId:
    """The source model trained on problem 2 with its first ``frozen`` hidden layers fixed."""
    return FROZEN(f"transfer_frozen{frozen}")


def labels(cfg: dict) -> dict[ConfigId, str]:
    """Each configuration the params define, with its name on the figures (in their order)."""
    return ({standalone(): "standalone"} if cfg["standalone"] else {}) | \
        {transferred(n): f"transfer\nfrozen={n}" for n in cfg["frozen"]}


def configs(cfg: dict) -> list[ConfigId]:
    return list(labels(cfg))


def sources_of(cfg: dict) -> list[int | None]:
    """The saved source models the repeats start from: None (the first, ``<source>.keras``), then the
    seeds of the further ones."""
    return [None, *more_models(cfg["source"])]


def source_index(seed: int, count: int) -> int:
    """Which of ``count`` source models the repeat with this seed starts from (seed 1: the book's)."""
    return (seed - 1) % count


def trials(cfg: dict, seeds: list[int]) -> list[Trial]:
    data = load_prepared(cfg["data"]).split("onehot")
    sources = []
    for source_seed in sources_of(cfg):
        try:
            source = load_model(cfg["source"], seed=source_seed)
        except ValueError as err:
            raise P.ParamsError(f"{KEY}.source: {err}") from None
        path = model_path(cfg["source"], seed=source_seed)
        hidden = len(source.layers) - 1
        check_frozen(cfg["frozen"], hidden, f"{KEY}.frozen", str(path))
        shape = (source.input_shape[-1], source.output_shape[-1])
        if shape != (data.x_train.shape[1], data.y_train.shape[1]):
            raise P.ParamsError(f"{KEY}.data: the source model {path} maps {shape[0]} inputs to {shape[1]} "
                                f"classes, but {cfg['data']} has {data.x_train.shape[1]} inputs and "
                                f"{data.y_train.shape[1]} classes")
        tags = {"source_model": path.relative_to(P.project_root()).as_posix(),
                "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16]}
        sources.append((source.to_json(), source.get_weights(), tags))

    frozen_layers = {transferred(n): n for n in cfg["frozen"]}

    def build(config: ConfigId, seed: int) -> tuple:
        spec, weights, source_tags = sources[source_index(seed, len(sources))]
        if config == standalone():
            return partial(fresh_model, spec), {"start": "random", "frozen_layers": 0}
        n = frozen_layers[config]
        return partial(transferred_model, spec, weights, n), {"start": "source", "frozen_layers": n, **source_tags}

    return [
        Trial(config=config, seed=seed, data=data, build_model=model, tags=tags,
              build_optimizer=common.optimizer_factory(cfg["optimizer"]),
              loss=cfg["loss"], metric="categorical_accuracy",
              batch_size=cfg["batch_size"], epochs=cfg["epochs"], grad_stats=cfg["grad_stats"])
        for config in configs(cfg) for seed in seeds for model, tags in [build(config, seed)]
    ]


# -- findings --------------------------------------------------------------------------------


def findings(cfg: dict) -> list[Finding]:
    """What the book concludes about its 30 repeats; "both hidden layers" is the book's 2-hidden-layer source."""
    def accuracy(config: ConfigId):  # final test accuracy on problem 2, per repeat
        return final(config, "val_accuracy")

    frozen = cfg["frozen"]
    return [
        Finding("transfer_less_spread_than_standalone",
                "Starting from the source model makes the repeats far less spread than standalone training, "
                f"whatever is frozen ({', '.join(map(str, frozen))} hidden layers; book std 0.101 vs 0.004-0.014)",
                all_of(*(wider(accuracy(standalone()), accuracy(transferred(n))) for n in frozen))),
        Finding("freezing_both_worse_than_none",
                "Freezing both hidden layers gives a lower test accuracy than freezing none (book 0.750 vs 0.805)",
                less(accuracy(transferred(2)), accuracy(transferred(0)))),
        Finding("transfer_beats_standalone_on_average",
                "Transfer with nothing frozen beats standalone training on average (book 0.805 vs 0.787)",
                greater(accuracy(transferred(0)), accuracy(standalone()))),
        Finding("freezing_one_beats_none",
                "Freezing the first hidden layer beats freezing none (book 0.817 vs 0.805)",
                greater(accuracy(transferred(1)), accuracy(transferred(0)))),
    ]


# The book's 30 repeats on problem 2: test accuracy (mean, std).
BOOK = {
    standalone(): {"val_accuracy": (0.787, 0.101)},
    transferred(0): {"val_accuracy": (0.805, 0.004)},
    transferred(1): {"val_accuracy": (0.817, 0.005)},
    transferred(2): {"val_accuracy": (0.750, 0.014)},
}

FAMILY = Family(
    name="transfer", doc=__doc__, fields=FIELDS, check=check, configs=configs, trials=trials,
    findings=findings, book=BOOK,
    needs_book_data=("it transfers between the book's two blobs problems (a source model trained on problem 1)"),
)
