"""The population trainer: many plain Keras models stepped together in one compiled loop.

Per step, every trial gathers its own shuffled batch, runs its own model in
training mode, and the sum of the trials' losses goes through one GradientTape.
The gradient of that sum with respect to one model's weights is that model's own
gradient, so each trial's own Keras optimizer applies exactly what ``model.fit``
would have applied (clipping, momentum, Adam, schedules, frozen layers and
BatchNormalization included). The compiled function runs a whole epoch, so the
framework is entered once per epoch for the whole population instead of once per
batch per model: the models are tiny and dispatch, not arithmetic, is the cost.

The seeds of a configuration are stacked into one model with a leading seed axis
(``trainlab.engine.stacked``) wherever that trains each seed as it would train alone,
so a step costs the ops of one model per configuration, not one per trial. A unit
below is either such a stack or one trial's own Keras model.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from trainlab.engine.metrics import HISTORY_NAME, METRICS
from trainlab.engine.stacked import SeedRate, StackedModel, can_stack
from trainlab.engine.trial import Trial, TrialResult, seed_blocks

Progress = Callable[[int, int], None]  # (epochs done, epochs in all)


def _loss_function(loss: str | Callable) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """A Keras loss per row, its target aligned as ``compile(loss=...)`` aligns it; units average it."""
    per_sample = keras.losses.get(loss) if isinstance(loss, str) else loss

    def per_row(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        # Keras aligns a (n,) target with a (n, 1) output before the loss.
        if y_true.shape.rank == y_pred.shape.rank - 1 and y_pred.shape[-1] == 1:
            y_true = tf.expand_dims(y_true, -1)
        y_true = tf.cast(y_true, y_pred.dtype) if y_true.dtype.is_floating else y_true
        return per_sample(y_true, y_pred)

    return per_row


Evaluated = tuple[tf.Tensor, tf.Tensor]  # per seed: the loss (batch mean) and the metric summed over rows


class _KerasUnit:
    """One trial's own Keras model, called as ``fit`` calls it: for what cannot be stacked."""

    def __init__(self, trial: Trial, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
        self.trials, self.model, self.optimizer = [trial], model, optimizer
        model.compile(optimizer=optimizer)  # lets Keras callbacks find model.optimizer
        optimizer.build(model.trainable_variables)
        self.trainable_variables = model.trainable_variables
        self.kernel_index = [i for i, v in enumerate(self.trainable_variables) if v.path.endswith("kernel")]
        callback = _plateau_callback(trial, model)
        self.plateaus = [callback] if callback else []
        self.per_row, self.metric = _loss_function(trial.loss), METRICS[trial.metric]

    def seed_rates(self) -> None:
        return None

    def applied(self, gradients: list[tf.Tensor]) -> list[tf.Tensor]:
        return gradients

    def learning_rates(self) -> tf.Tensor:
        return tf.cast(self.optimizer.learning_rate, tf.float32)[None]

    def evaluate(self, x: tf.Tensor, y: tf.Tensor, training: bool) -> Evaluated:
        """On inputs [1, rows, ...]. The loss sees the model's own output tensor: Keras reads the logits
        of a softmax or sigmoid output from it, as in ``fit``."""
        y_pred = self.model(x[0], training=training)
        loss = tf.reduce_mean(self.per_row(y[0], y_pred))
        if self.model.losses:
            loss += tf.add_n(self.model.losses)
        return loss[None], tf.reduce_sum(self.metric(y[0], y_pred))[None]

    def final_weights(self) -> list[list[np.ndarray]]:
        return [[np.asarray(w) for w in self.model.get_weights()]]


class _StackedUnit:
    """The seeds of one configuration as one stacked model, updated by the configuration's optimizer."""

    def __init__(self, trials: list[Trial], models: list[keras.Model],
                 optimizer: keras.optimizers.Optimizer) -> None:
        self.trials, self.optimizer = trials, optimizer
        self.model = StackedModel(models)
        optimizer.build(self.model.trainable_variables)
        self.trainable_variables = self.model.trainable_variables
        self.kernel_index = self.model.kernel_index
        self.per_row, self.metric = _loss_function(trials[0].loss), METRICS[trials[0].metric]
        # A plateau per seed (plain SGD only, see trainlab.engine.stacked): its rate is a gradient scale.
        self.plateaus, self.rates = [], None
        if trials[0].plateau is not None:
            start = float(optimizer.learning_rate)
            for trial in trials:
                self.plateaus.append(_plateau_callback(trial, SeedRate(start)))
            self.rates = keras.Variable(np.full(len(trials), np.float32(start)), trainable=False, name="seed_rates")

    def seed_rates(self) -> None:
        """After the plateaus have looked at an epoch: each seed's rate into the graph."""
        if self.rates is not None:
            self.rates.assign(np.array([c.model.optimizer.learning_rate for c in self.plateaus], np.float32))

    def applied(self, gradients: list[tf.Tensor]) -> list[tf.Tensor]:
        """The gradients the configuration's SGD applies: each seed's scaled to its own plateau rate."""
        if self.rates is None:
            return gradients
        scale = self.rates / tf.cast(self.optimizer.learning_rate, tf.float32)
        return [g * tf.reshape(scale, [-1] + [1] * (g.shape.rank - 1)) for g in gradients]

    def learning_rates(self) -> tf.Tensor:
        if self.rates is not None:
            return tf.identity(self.rates)
        return tf.fill([len(self.trials)], tf.cast(self.optimizer.learning_rate, tf.float32))

    def evaluate(self, x: tf.Tensor, y: tf.Tensor, training: bool) -> Evaluated:
        """On inputs [seeds, rows, ...]; can_stack refuses regularized layers, so there is no extra loss."""
        y_pred = self.model(x, training=training)
        loss = self.per_row(y, y_pred)
        seeds = len(self.trials)
        return (tf.reduce_mean(loss, axis=list(range(1, loss.shape.rank))),
                tf.reduce_sum(tf.reshape(self.metric(y, y_pred), [seeds, -1]), axis=1))

    def final_weights(self) -> list[list[np.ndarray]]:
        return self.model.unstacked_weights()


def _plateau_callback(trial: Trial, model: keras.Model | SeedRate) -> keras.callbacks.Callback | None:
    if trial.plateau is None:
        return None
    p = trial.plateau
    callback = keras.callbacks.ReduceLROnPlateau(
        monitor=p.monitor, factor=p.factor, patience=p.patience,
        min_delta=p.min_delta, cooldown=p.cooldown, min_lr=p.min_lr, verbose=0,
    )
    callback.set_model(model)
    callback.on_train_begin()
    return callback


@contextlib.contextmanager
def _private_python_random(seed: int) -> Iterator[None]:
    """Keras draws an unseeded initializer's seed from Python's global ``random``. In a Dask worker the
    event-loop thread uses that generator too, so a draw of its own could land between
    ``set_random_seed`` and the build and change the initial weights. Builds therefore draw from a
    private generator seeded alike: the very draws the global one gives right after ``random.seed(seed)``."""
    from keras.src.random import seed_generator

    shared = seed_generator.python_random
    seed_generator.python_random = random.Random(seed)
    try:
        yield
    finally:
        seed_generator.python_random = shared


def _units(trials: Sequence[Trial], stack_seeds: bool, seed_block: int = 0) -> list[_KerasUnit | _StackedUnit]:
    """Build every trial's model (initial weights from its seed alone) and group the stackable seeds."""
    groups: dict[object, list] = {}
    for index, (trial, block) in enumerate(zip(trials, seed_blocks(trials, seed_block))):
        keras.utils.set_random_seed(trial.seed)
        with _private_python_random(trial.seed):
            model, optimizer = trial.build_model(), trial.build_optimizer()
        stackable = stack_seeds and can_stack(trial, model, optimizer)
        key = (block, id(trial.data), trial.loss, trial.metric, trial.grad_stats) if stackable else index
        groups.setdefault(key, []).append((trial, model, optimizer, stackable))
    units: list[_KerasUnit | _StackedUnit] = []
    for members in groups.values():
        if members[0][3]:
            units.append(_StackedUnit([m[0] for m in members], [m[1] for m in members], members[0][2]))
        else:
            units += [_KerasUnit(trial, model, optimizer) for trial, model, optimizer, _ in members]
    return units


def _as_tensor(array: np.ndarray) -> tf.Tensor:
    if np.issubdtype(array.dtype, np.floating):
        return tf.constant(array, dtype=tf.float32)
    return tf.constant(array)


class Population:
    """Trials that share the number of training rows, the batch size and the epochs."""

    def __init__(self, trials: Sequence[Trial], jit_compile: bool = False, stack_seeds: bool = True,
                 seed_block: int = 0) -> None:
        keys = {trial.population_key for trial in trials}
        if len(keys) != 1:
            raise ValueError(f"a population needs one (n_train, batch_size, epochs), got {sorted(keys)}")
        self.n_train, self.batch_size, self.epochs = keys.pop()
        self.started = time.time()  # wall clock: the trials' runs start when their models are built
        self.units = _units(trials, stack_seeds, seed_block)
        self.trials = [trial for unit in self.units for trial in unit.trials]  # in unit order

        # Units that share arrays share one constant in the graph.
        constants: dict[int, tf.Tensor] = {}

        def constant(array: np.ndarray) -> tf.Tensor:
            if id(array) not in constants:
                constants[id(array)] = _as_tensor(array)
            return constants[id(array)]

        data = [unit.trials[0].data for unit in self.units]
        self.x_train = [constant(d.x_train) for d in data]
        self.y_train = [constant(d.y_train) for d in data]
        self.x_val = [constant(d.x_val) for d in data]
        self.y_val = [constant(d.y_val) for d in data]
        sizes = [len(unit.trials) for unit in self.units]  # each unit's rows in the batch-order matrix
        self.rows_of = list(zip(itertools.accumulate([0] + sizes), sizes))  # (first row, rows)
        self.shufflers = [np.random.default_rng(trial.seed) for trial in self.trials]
        self.jit_compile = jit_compile
        self._epoch_fn = tf.function(self._train_epoch, jit_compile=jit_compile, autograph=False)

    # -- the compiled epoch ------------------------------------------------------------

    def _empty_totals(self) -> list[dict[str, tf.Tensor]]:
        """Per unit, per seed, sums over the epoch's steps: loss (x rows), metric, and per kernel its
        gradient's mean |g| and norm (zeros unless the trial records gradient statistics)."""
        return [{"loss": tf.zeros([len(u.trials)]), "metric": tf.zeros([len(u.trials)]),
                 "grad_mean_abs": tf.zeros([len(u.trials), len(u.kernel_index)]),
                 "grad_norm": tf.zeros([len(u.trials), len(u.kernel_index)])} for u in self.units]

    def _step(self, batch_index: tf.Tensor, totals: list[dict[str, tf.Tensor]]
              ) -> tuple[list[dict[str, tf.Tensor]], list[tf.Tensor]]:
        """One update of every trial on its own batch (rows ``batch_index[t]`` for trial t)."""
        rows = tf.cast(tf.shape(batch_index)[1], tf.float32)
        with tf.GradientTape() as tape:
            losses, metrics = [], []
            for i, (start, size) in enumerate(self.rows_of):
                index = batch_index[start:start + size]
                x, y = tf.gather(self.x_train[i], index), tf.gather(self.y_train[i], index)
                loss, metric = self.units[i].evaluate(x, y, training=True)
                losses.append(loss)
                metrics.append(metric)
            total_loss = tf.add_n([tf.reduce_sum(loss) for loss in losses])
        variables = [v for unit in self.units for v in unit.trainable_variables]
        gradients = tape.gradient(total_loss, variables)

        new_totals, learning_rates, start = [], [], 0
        for i, unit in enumerate(self.units):
            own = gradients[start:start + len(unit.trainable_variables)]
            start += len(unit.trainable_variables)
            seeds = len(unit.trials)
            learning_rates.append(unit.learning_rates())  # this update's rate, one per seed
            unit.optimizer.apply_gradients(zip(unit.applied(own), unit.trainable_variables))
            step = {"loss": losses[i] * rows, "metric": metrics[i]}
            if unit.trials[0].grad_stats and unit.kernel_index:
                # a Keras unit's gradients have no seed axis: give them one
                kernels = [tf.reshape(own[k], [seeds, -1]) for k in unit.kernel_index]
                step["grad_mean_abs"] = tf.stack([tf.reduce_mean(tf.abs(g), axis=1) for g in kernels], axis=1)
                step["grad_norm"] = tf.stack([tf.sqrt(tf.reduce_sum(tf.square(g), axis=1)) for g in kernels], axis=1)
            new_totals.append({name: total + step[name] if name in step else total
                               for name, total in totals[i].items()})
        return new_totals, learning_rates

    def _train_epoch(self, order: tf.Tensor) -> list[dict[str, tf.Tensor]]:
        """Train one epoch on the batch order ``order`` [trials, n_train]; return each unit's statistics
        by name, one value per seed (``grad_*``: one column per kernel)."""
        steps = math.ceil(self.n_train / self.batch_size)
        trials = len(self.trials)
        totals = self._empty_totals()
        learning_rates = [tf.zeros([len(u.trials)]) for u in self.units]

        def batches(first: int, count: int, size: int | None, totals, learning_rates):
            """Run ``count`` updates from batch ``first`` on; ``size=None`` lets the last batch be short."""
            def body(step, totals, learning_rates):
                start = step * self.batch_size
                rows = self.batch_size if size is not None else tf.minimum(self.batch_size, self.n_train - start)
                totals, learning_rates = self._step(tf.slice(order, [0, start], [trials, rows]), totals)
                return step + 1, totals, learning_rates

            _, totals, learning_rates = tf.while_loop(
                lambda step, *_: step < first + count, body, (tf.constant(first), totals, learning_rates))
            return totals, learning_rates

        if self.jit_compile:
            # XLA needs static shapes: the full batches in the loop, the short last one after it.
            full_batches, tail = divmod(self.n_train, self.batch_size)
            totals, learning_rates = batches(0, full_batches, self.batch_size, totals, learning_rates)
            if tail:
                totals, learning_rates = self._step(order[:, full_batches * self.batch_size:], totals)
        else:
            # One traced step serves every batch (tracing is the fixed cost of a population).
            totals, learning_rates = batches(0, steps, None, totals, learning_rates)

        results = []
        for i, unit in enumerate(self.units):
            seeds = len(unit.trials)
            x_val = tf.broadcast_to(self.x_val[i][None], tf.concat([[seeds], tf.shape(self.x_val[i])], 0))
            y_val = tf.broadcast_to(self.y_val[i][None], tf.concat([[seeds], tf.shape(self.y_val[i])], 0))
            val_loss, val_metric = unit.evaluate(x_val, y_val, training=False)
            n_val = tf.cast(tf.shape(self.x_val[i])[0], tf.float32)
            t = totals[i]
            results.append({"loss": t["loss"] / self.n_train, "metric": t["metric"] / self.n_train,
                            "val_loss": val_loss, "val_metric": val_metric / n_val, "lr": learning_rates[i],
                            "grad_mean_abs": t["grad_mean_abs"] / steps, "grad_norm": t["grad_norm"] / steps})
        return results

    # -- the epoch loop -------------------------------------------------------------

    def run(self, progress: Progress | None = None) -> list[TrialResult]:
        """Train every trial for ``epochs`` epochs and return their curves (in unit order)."""
        # per unit: history name -> [seeds, epochs] (the metric under its Keras name, e.g. accuracy)
        curves: list[dict[str, np.ndarray]] = []
        for unit in self.units:
            metric = HISTORY_NAME[unit.trials[0].metric]
            names = ["loss", metric, "val_loss", f"val_{metric}", "lr"]
            if unit.trials[0].grad_stats:
                layers = range(1, len(unit.kernel_index) + 1)
                names += [f"grad_mean_abs/{k}" for k in layers] + [f"grad_norm/{k}" for k in layers]
            curves.append({name: np.full((len(unit.trials), self.epochs), np.nan) for name in names})
        diverged: list[list[int | None]] = [[None] * len(u.trials) for u in self.units]
        epoch_ends: list[float] = []

        for epoch in range(self.epochs):
            order = np.stack([rng.permutation(self.n_train) for rng in self.shufflers]).astype(np.int32)
            epoch_stats = self._epoch_fn(tf.constant(order))
            for i, unit in enumerate(self.units):
                stats = {name: value.numpy() for name, value in epoch_stats[i].items()}
                metric = HISTORY_NAME[unit.trials[0].metric]
                named = {"loss": stats["loss"], metric: stats["metric"], "val_loss": stats["val_loss"],
                         f"val_{metric}": stats["val_metric"], "lr": stats["lr"]}
                for k in range(stats["grad_norm"].shape[1]):
                    named[f"grad_mean_abs/{k + 1}"] = stats["grad_mean_abs"][:, k]
                    named[f"grad_norm/{k + 1}"] = stats["grad_norm"][:, k]
                for name, curve in curves[i].items():
                    curve[:, epoch] = named[name]
                # diverged: the training or test loss is no longer finite (it never recovers)
                broken = ~(np.isfinite(stats["loss"]) & np.isfinite(stats["val_loss"]))
                for seed in np.flatnonzero(broken):
                    if diverged[i][seed] is None:
                        diverged[i][seed] = epoch + 1
                for seed, plateau in enumerate(unit.plateaus):
                    if diverged[i][seed] is None:
                        plateau.on_epoch_end(epoch, {name: float(values[seed]) for name, values in named.items()})
                unit.seed_rates()
            epoch_ends.append(time.time())
            if progress is not None:
                progress(epoch + 1, self.epochs)

        results, models = [], {}
        for i, unit in enumerate(self.units):
            if unit.trials[0].config not in models:  # the seeds of a configuration share its architecture
                models[unit.trials[0].config] = describe_model(
                    unit.model if isinstance(unit, _KerasUnit) else unit.model.models[0])
            for seed, (trial, weights) in enumerate(zip(unit.trials, unit.final_weights())):
                results.append(TrialResult(
                    config=trial.config,
                    seed=trial.seed,
                    history={name: curve[seed] for name, curve in curves[i].items()},
                    diverged_epoch=diverged[i][seed],
                    weights=weights,
                    tags=dict(trial.tags),
                    params={**models[trial.config]["params"], **trial.params},
                    dataset=trial.data.describe(),
                    model=models[trial.config],
                    started=self.started,
                    epoch_ends=list(epoch_ends),
                ))
        return results


def describe_model(model: keras.Model) -> dict:
    """A Keras model as the tracking store shows it: its ``summary()`` text, its parameter count, and
    the hidden Dense layers (every Dense but the last) as params."""
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    hidden = [layer.units for layer in dense[:-1]]
    return {"summary": "\n".join(lines), "parameters": int(model.count_params()),
            "params": {"hidden_layers": len(hidden), "hidden_units": hidden} if dense else {}}


def train_population(trials: Sequence[Trial], jit_compile: bool = False, progress: Progress | None = None,
                     stack_seeds: bool = True, seed_block: int = 0) -> list[TrialResult]:
    """Build and train one population; the models live only as long as this call.

    Results come back in the order of ``trials``.
    """
    started = time.perf_counter()
    population = Population(trials, jit_compile=jit_compile, stack_seeds=stack_seeds, seed_block=seed_block)
    results = population.run(progress)
    elapsed = time.perf_counter() - started
    for result in results:
        result.tags.setdefault("population_seconds", round(elapsed, 3))
    position = {id(trial): k for k, trial in enumerate(population.trials)}
    return [results[position[id(trial)]] for trial in trials]


