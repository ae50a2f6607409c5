"""Model capacity (book chapter 1): how many nodes, and how many layers, the blobs-20 problem needs.

Nodes study: one hidden layer of 1..7 relu nodes. Layers study: 1..5 hidden layers
of 10 relu nodes. Both: softmax output over the 20 classes, SGD(0.01, momentum 0.9),
categorical cross-entropy, 100 epochs, batch 32, on the unscaled blobs-20 data.
"""

from __future__ import annotations

from functools import partial

from trainlab import params as P
from trainlab.configs import ConfigId, Study
from trainlab.data.prepared import load_prepared
from trainlab.engine.trial import Trial
from trainlab.families import common
from trainlab.family import Family
from trainlab.stats.findings import Finding, above, all_of, below, decreasing, final, greater, increasing, less, rebound

FIELDS = common.training_fields(
    nodes=P.Field(list, item=P.Field(int, minimum=1), allowed="a non-empty list of integers ≥ 1 (hidden nodes)"),
    layers=P.Field(list, item=P.Field(int, minimum=1), allowed="a non-empty list of integers ≥ 1 (hidden layers)"),
    layer_width=P.Field(int, minimum=1),
)
NODES, LAYERS = Study("nodes"), Study("layers")


def model(n_inputs: int, n_classes: int, hidden: list[int]):
    return common.mlp(n_inputs, hidden, n_classes, activation="relu", hidden_init="he_uniform")


def hidden_layers(cfg: dict) -> dict[ConfigId, list[int]]:
    """Each configuration's hidden layer widths."""
    return {NODES(n): [n] for n in cfg["nodes"]} | {LAYERS(n): [cfg["layer_width"]] * n for n in cfg["layers"]}


def trials(cfg: dict, seeds: list[int]) -> list[Trial]:
    data = load_prepared(cfg["data"]).split("onehot")
    n_inputs, n_classes = data.x_train.shape[1], data.y_train.shape[1]
    return [
        Trial(config=config, seed=seed, data=data,
              build_model=partial(model, n_inputs, n_classes, layers),
              build_optimizer=common.optimizer_factory(cfg["optimizer"]),
              loss=cfg["loss"], metric="categorical_accuracy",
              batch_size=cfg["batch_size"], epochs=cfg["epochs"], grad_stats=cfg["grad_stats"],
              tags={"hidden_layers": len(layers), "hidden_nodes": layers[0]})
        for config, layers in hidden_layers(cfg).items() for seed in seeds
    ]


def findings(cfg: dict) -> list[Finding]:
    """What the book concludes. "Solves the problem" is read as a mean test accuracy above 0.95."""
    def accuracy(config: ConfigId):  # its final test accuracy, per seed
        return final(config, "val_accuracy")

    width = cfg["layer_width"]
    return [
        Finding("one_node_fails", "1 node cannot learn the problem: test accuracy below 0.5 (book 0.138)",
                below(accuracy(NODES(1)), 0.5)),
        Finding("six_seven_nodes_near_perfect",
                "6 and 7 nodes solve the problem: test accuracy above 0.95 (book 1.000)",
                all_of(above(accuracy(NODES(6)), 0.95), above(accuracy(NODES(7)), 0.95))),
        Finding("more_nodes_lower_train_loss", "More nodes reach a lower final training loss (curves ordered by width)",
                decreasing(NODES, "loss")),
        Finding("more_nodes_higher_test_accuracy",
                "More nodes give a higher test accuracy (lower generalization error)",
                increasing(NODES, "val_accuracy")),
        Finding("one_to_three_layers_near_perfect",
                f"1 to 3 layers of {width} nodes solve the problem: test accuracy above 0.95 (book 1.000)",
                all_of(*(above(accuracy(LAYERS(n)), 0.95) for n in (1, 2, 3)))),
        Finding("four_five_layers_worse",
                "4 and 5 layers reach a lower test accuracy than 1 layer (book 0.948, 0.794)",
                all_of(*(less(accuracy(LAYERS(n)), accuracy(LAYERS(1))) for n in (4, 5)))),
        Finding("deeper_lower_test_accuracy", "Test accuracy falls as layers are added (and would keep falling)",
                decreasing(LAYERS, "val_accuracy")),
        Finding("deep_training_loss_jumps_back",
                "With 4 and 5 layers the training loss falls, then jumps back up: it climbs further above its "
                "lowest value so far than with 1 layer",
                all_of(*(greater(rebound(LAYERS(n)), rebound(LAYERS(1))) for n in (4, 5)))),
    ]


# The book's printed test accuracies (single runs); our "val_" split is the book's test split.
BOOK = {
    **{NODES(n): {"val_accuracy": a} for n, a in zip(range(1, 8), (0.138, 0.380, 0.582, 0.890, 0.844, 1.0, 1.0))},
    **{LAYERS(n): {"val_accuracy": a} for n, a in zip(range(1, 6), (1.0, 1.0, 1.0, 0.948, 0.794))},
}

# On other data these are listed as "book data only"; the trends over width and depth are general.
BOOK_ONLY = {
    "one_node_fails": "1 node fails on blobs-20's 20 classes; a problem with fewer classes may need fewer nodes",
    "six_seven_nodes_near_perfect": "0.95 test accuracy is what blobs-20 allows",
    "one_to_three_layers_near_perfect": "0.95 test accuracy is what blobs-20 allows",
    "four_five_layers_worse": "the depth where accuracy drops (4 layers of 10 nodes) is blobs-20's",
    "deep_training_loss_jumps_back": "the rebound of the 4- and 5-layer training loss is seen on blobs-20",
}

FAMILY = Family(
    name="capacity", doc=__doc__, fields=FIELDS,
    check=partial(common.check_training, fields=FIELDS),
    configs=lambda cfg: list(hidden_layers(cfg)),
    trials=trials, findings=findings, book=BOOK, book_only=BOOK_ONLY,
)
