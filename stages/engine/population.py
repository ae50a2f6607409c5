"""The population trainer: many plain Keras models stepped together in one compiled loop.

Per step, every trial gathers its own shuffled batch, runs its own model in
training mode, and the sum of the trials' losses goes through one GradientTape.
The gradient of that sum with respect to one model's weights is that model's own
gradient, so each trial's own Keras optimizer applies exactly what ``model.fit``
would have applied (clipping, momentum, Adam, schedules, frozen layers and
BatchNormalization included). The compiled function runs a whole epoch, so the
framework is entered once per epoch for the whole population instead of once per
batch per model: the models are tiny and dispatch, not arithmetic, is the cost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from stages.engine.metrics import HISTORY_NAME, METRICS
from stages.engine.trial import Trial, TrialResult

Progress = Callable[[int, int], None]  # (epochs done, epochs in all)


def _loss_function(loss: str | Callable) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """A Keras loss reduced like ``compile(loss=...)`` does: the mean over the batch."""
    per_sample = keras.losses.get(loss) if isinstance(loss, str) else loss

    def batch_mean(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        # Keras aligns a (n,) target with a (n, 1) output before the loss.
        if y_true.shape.rank == y_pred.shape.rank - 1 and y_pred.shape[-1] == 1:
            y_true = tf.expand_dims(y_true, -1)
        y_true = tf.cast(y_true, y_pred.dtype) if y_true.dtype.is_floating else y_true
        return tf.reduce_mean(per_sample(y_true, y_pred))

    return batch_mean


def _as_tensor(array: np.ndarray) -> tf.Tensor:
    if np.issubdtype(array.dtype, np.floating):
        return tf.constant(array, dtype=tf.float32)
    return tf.constant(array)


class Population:
    """Trials that share the number of training rows, the batch size and the epochs."""

    def __init__(self, trials: Sequence[Trial], jit_compile: bool = False) -> None:
        keys = {trial.population_key for trial in trials}
        if len(keys) != 1:
            raise ValueError(f"a population needs one (n_train, batch_size, epochs), got {sorted(keys)}")
        self.trials = list(trials)
        self.n_train, self.batch_size, self.epochs = keys.pop()

        self.models, self.optimizers, self.plateaus = [], [], []
        for trial in self.trials:
            keras.utils.set_random_seed(trial.seed)  # initial weights depend on the seed alone
            model = trial.build_model()
            optimizer = trial.build_optimizer()
            model.compile(optimizer=optimizer)  # lets Keras callbacks find model.optimizer
            optimizer.build(model.trainable_variables)
            self.models.append(model)
            self.optimizers.append(optimizer)
            self.plateaus.append(self._plateau_callback(trial, model))
        self.loss_fns = [_loss_function(trial.loss) for trial in self.trials]
        self.metric_fns = [METRICS[trial.metric] for trial in self.trials]
        self.kernel_index = [
            [i for i, v in enumerate(model.trainable_variables) if v.path.endswith("kernel")]
            for model in self.models
        ]

        # Trials that share arrays share one constant in the graph.
        constants: dict[int, tf.Tensor] = {}

        def constant(array: np.ndarray) -> tf.Tensor:
            if id(array) not in constants:
                constants[id(array)] = _as_tensor(array)
            return constants[id(array)]

        self.x_train = [constant(t.data.x_train) for t in self.trials]
        self.y_train = [constant(t.data.y_train) for t in self.trials]
        self.x_val = [constant(t.data.x_val) for t in self.trials]
        self.y_val = [constant(t.data.y_val) for t in self.trials]
        self.shufflers = [np.random.default_rng(trial.seed) for trial in self.trials]
        self.jit_compile = jit_compile
        self._epoch_fn = tf.function(self._train_epoch, jit_compile=jit_compile, autograph=False)

    @staticmethod
    def _plateau_callback(trial: Trial, model: keras.Model) -> keras.callbacks.Callback | None:
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

    # -- the compiled epoch ------------------------------------------------------------

    def _empty_totals(self) -> list[tf.Tensor]:
        """Per trial: [loss sum, metric sum, kernel |g| means..., kernel norms...] over the steps."""
        return [tf.zeros([2 + 2 * len(k)]) for k in self.kernel_index]

    def _step(self, batch_index: tf.Tensor, totals: list[tf.Tensor]
              ) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        """One update of every trial on its own batch (rows ``batch_index[i]`` for trial i)."""
        rows = tf.cast(tf.shape(batch_index)[1], tf.float32)
        with tf.GradientTape() as tape:
            losses, batches = [], []
            for i, model in enumerate(self.models):
                x = tf.gather(self.x_train[i], batch_index[i])
                y = tf.gather(self.y_train[i], batch_index[i])
                y_pred = model(x, training=True)
                loss = self.loss_fns[i](y, y_pred)
                if model.losses:
                    loss += tf.add_n(model.losses)
                losses.append(loss)
                batches.append((y, y_pred))
            total_loss = tf.add_n(losses)
        variables = [v for model in self.models for v in model.trainable_variables]
        gradients = tape.gradient(total_loss, variables)

        new_totals, learning_rates, start = [], [], 0
        for i, (model, optimizer) in enumerate(zip(self.models, self.optimizers)):
            own = gradients[start:start + len(model.trainable_variables)]
            start += len(model.trainable_variables)
            learning_rates.append(tf.cast(optimizer.learning_rate, tf.float32))  # this update's rate
            optimizer.apply_gradients(zip(own, model.trainable_variables))
            y, y_pred = batches[i]
            stats = [losses[i] * rows, tf.reduce_sum(self.metric_fns[i](y, y_pred))]
            if self.trials[i].grad_stats:
                kernels = [own[k] for k in self.kernel_index[i]]
                stats += [tf.reduce_mean(tf.abs(g)) for g in kernels] + [tf.norm(g) for g in kernels]
            else:
                stats += [tf.zeros([]) for _ in range(2 * len(self.kernel_index[i]))]
            new_totals.append(totals[i] + tf.stack(stats))
        return new_totals, learning_rates

    def _train_epoch(self, order: tf.Tensor) -> list[tf.Tensor]:
        """Train one epoch on the batch order ``order`` [trials, n_train]; return each trial's stats."""
        steps = math.ceil(self.n_train / self.batch_size)
        trials = len(self.trials)
        totals = self._empty_totals()
        learning_rates = [tf.zeros([]) for _ in self.trials]

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
        for i, model in enumerate(self.models):
            y_pred = model(self.x_val[i], training=False)
            val_loss = self.loss_fns[i](self.y_val[i], y_pred)
            if model.losses:
                val_loss += tf.add_n(model.losses)
            val_metric = tf.reduce_mean(self.metric_fns[i](self.y_val[i], y_pred))
            t = totals[i]
            results.append(tf.concat([
                [t[0] / self.n_train, t[1] / self.n_train, val_loss, val_metric, learning_rates[i]],
                t[2:] / steps,
            ], axis=0))
        return results

    # -- the epoch loop -------------------------------------------------------------

    def run(self, progress: Progress | None = None) -> list[TrialResult]:
        """Train every trial for ``epochs`` epochs and return their curves."""
        names = []
        for trial, kernels in zip(self.trials, self.kernel_index):
            metric = HISTORY_NAME[trial.metric]
            layer = [f"{k + 1}" for k in range(len(kernels))]
            names.append(["loss", metric, "val_loss", f"val_{metric}", "lr"]
                         + [f"grad_mean_abs/{k}" for k in layer] + [f"grad_norm/{k}" for k in layer])
        curves = [np.full((self.epochs, len(n)), np.nan) for n in names]
        diverged: list[int | None] = [None] * len(self.trials)

        for epoch in range(self.epochs):
            order = np.stack([rng.permutation(self.n_train) for rng in self.shufflers]).astype(np.int32)
            stats = self._epoch_fn(tf.constant(order))
            for i, values in enumerate(stats):
                values = values.numpy()
                curves[i][epoch] = values
                if diverged[i] is None and not np.all(np.isfinite(values[[0, 2]])):
                    diverged[i] = epoch + 1
                if self.plateaus[i] is not None and diverged[i] is None:
                    logs = dict(zip(names[i], values.tolist()))
                    self.plateaus[i].on_epoch_end(epoch, logs)
            if progress is not None:
                progress(epoch + 1, self.epochs)

        results = []
        for i, trial in enumerate(self.trials):
            keep = [j for j, name in enumerate(names[i]) if trial.grad_stats or not name.startswith("grad_")]
            results.append(TrialResult(
                config=trial.config,
                seed=trial.seed,
                history={names[i][j]: curves[i][:, j] for j in keep},
                diverged_epoch=diverged[i],
                weights=[np.asarray(w) for w in self.models[i].get_weights()],
                tags=dict(trial.tags),
            ))
        return results


def train_population(trials: Sequence[Trial], jit_compile: bool = False,
                     progress: Progress | None = None) -> list[TrialResult]:
    """Build and train one population; the models live only as long as this call."""
    started = time.perf_counter()
    results = Population(trials, jit_compile=jit_compile).run(progress)
    elapsed = time.perf_counter() - started
    for result in results:
        result.tags.setdefault("population_seconds", round(elapsed, 3))
    return results


def group_into_populations(trials: Sequence[Trial]) -> list[list[Trial]]:
    """Split trials into populations, keeping the family's order within each."""
    groups: dict[tuple[int, int, int], list[Trial]] = {}
    for trial in trials:
        groups.setdefault(trial.population_key, []).append(trial)
    return list(groups.values())


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return math.ceil(n_train / batch_size)
