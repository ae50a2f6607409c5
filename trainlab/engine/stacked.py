"""The seeds of one configuration as one model with a leading seed axis.

Every seed of a configuration has the same architecture and optimizer; only the
initial weights and the batch order differ. Stacking their weights ([seeds, in, out]
kernels) turns one step of all seeds into the ops of one model on a batch of
shape [seeds, rows, features]: one batched matmul per layer instead of one matmul
per seed. The models are tiny, so the step costs what its op count costs, and the
graph is traced once per configuration instead of once per seed.

Each seed's model is still built by the family's own Keras code (so its initial
weights are the seed's), and the configuration's own Keras optimizer updates the
stacked weights: SGD, momentum, RMSprop, Adagrad and Adam update each element on
its own, so a stacked update is each seed's update. What cannot be stacked is
left to the per-model path (``can_stack``): clipnorm and global_clipnorm (a norm
would span the seeds), per-trial plateau learning rates except with plain SGD (below),
and layers other than Dense, Activation and BatchNormalization.

A plateau schedule gives each seed its own rate. SGD multiplies the gradient by the
rate and nothing else (its momentum buffer holds rate x gradient), so a stacked SGD
at the configuration's rate applied to gradients scaled per seed by (seed's rate /
that rate) makes each seed's update (``plateau_scales``). Adaptive optimizers and
clipping see the gradient itself, so they keep per-model plateaus. Results match per-model training to
float32 rounding (a batched matmul may sum in another order), not bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from trainlab.engine.trial import Trial

STACKABLE_LAYERS = (keras.layers.Dense, keras.layers.Activation, keras.layers.BatchNormalization)


def can_stack(trial: Trial, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> bool:
    """Whether a trial's model and optimizer train the same stacked as alone (see the module doc)."""
    if not isinstance(model, keras.Sequential):
        return False
    if trial.plateau is not None and not plateau_by_scaling(optimizer):
        return False
    if optimizer.clipnorm is not None or optimizer.global_clipnorm is not None:
        return False
    if getattr(optimizer, "use_ema", False) or getattr(optimizer, "weight_decay", None):
        return False
    for layer in model.layers:
        if not isinstance(layer, STACKABLE_LAYERS):
            return False
        if isinstance(layer, keras.layers.Dense) and (
                layer.kernel_regularizer or layer.bias_regularizer or layer.activity_regularizer
                or layer.lora_enabled or layer.quantization_mode):
            return False
        if isinstance(layer, keras.layers.BatchNormalization) and (
                layer.axis not in (-1, 1) or layer.renorm or layer.synchronized):
            return False
    return True


def plateau_by_scaling(optimizer: keras.optimizers.Optimizer) -> bool:
    """Per-seed plateau rates are exact as per-seed gradient scales: plain SGD at a constant rate, no clipping."""
    config = optimizer.get_config()
    return (type(optimizer) is keras.optimizers.SGD and isinstance(config["learning_rate"], (int, float))
            and config.get("clipvalue") is None and config.get("clipnorm") is None
            and config.get("global_clipnorm") is None)


class SeedRate:
    """What a Keras ``ReduceLROnPlateau`` reads and sets for one seed of a stacked model: ``optimizer.learning_rate``,
    kept as the float32 a Keras optimizer's rate variable would hold."""

    def __init__(self, learning_rate: float) -> None:
        self.optimizer = self
        self._rate = float(np.float32(learning_rate))

    @property
    def learning_rate(self) -> float:
        return self._rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._rate = float(np.float32(value))


class StackedModel:
    """The seeds' copies of one Sequential model, their weights stacked on axis 0."""

    def __init__(self, models: Sequence[keras.Sequential]) -> None:
        self.models = list(models)
        self.seeds = len(models)
        self.layers = models[0].layers
        self.weights: list[dict[str, keras.Variable]] = []  # per layer: attribute -> stacked variable
        self.trainable_variables: list[keras.Variable] = []
        self.kernel_index: list[int] = []
        for index, layer in enumerate(self.layers):
            stacked = {}
            for attr in self._attributes(layer):
                variables = [getattr(m.layers[index], attr) for m in models]
                trainable = layer.trainable and variables[0].trainable
                stacked[attr] = keras.Variable(np.stack([np.asarray(v) for v in variables]),
                                               trainable=trainable, name=f"{layer.name}_{attr}")
                if trainable:
                    if attr == "kernel":
                        self.kernel_index.append(len(self.trainable_variables))
                    self.trainable_variables.append(stacked[attr])
            self.weights.append(stacked)

    @staticmethod
    def _attributes(layer: keras.layers.Layer) -> list[str]:
        """The layer's variables in Keras's own order (kernel, bias / gamma, beta, moving stats)."""
        if isinstance(layer, keras.layers.Dense):
            return ["kernel", "bias"] if layer.use_bias else ["kernel"]
        if isinstance(layer, keras.layers.BatchNormalization):
            return (["gamma"] if layer.scale else []) + (["beta"] if layer.center else []) \
                + ["moving_mean", "moving_variance"]
        return []

    def __call__(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        """Outputs [seeds, rows, outputs] for inputs [seeds, rows, features], as each seed's model computes them."""
        for layer, w in zip(self.layers, self.weights):
            if isinstance(layer, keras.layers.Dense):
                x = tf.matmul(x, w["kernel"])
                if "bias" in w:
                    x = x + w["bias"][:, None, :]
                x = layer.activation(x)
            elif isinstance(layer, keras.layers.Activation):
                x = layer.activation(x)
            else:
                x = self._batch_norm(layer, w, x, training)
        return x

    @staticmethod
    def _batch_norm(layer: keras.layers.BatchNormalization, w: dict, x: tf.Tensor, training: bool) -> tf.Tensor:
        """Keras's BatchNormalization per seed: statistics over each seed's own rows (axis 1)."""
        if training and layer.trainable:
            mean, variance = tf.nn.moments(x, axes=[1], keepdims=True)
            w["moving_mean"].assign(w["moving_mean"] * layer.momentum + mean[:, 0] * (1.0 - layer.momentum))
            w["moving_variance"].assign(
                w["moving_variance"] * layer.momentum + variance[:, 0] * (1.0 - layer.momentum))
        else:
            mean, variance = w["moving_mean"][:, None, :], w["moving_variance"][:, None, :]
        gamma = w["gamma"][:, None, :] if "gamma" in w else None
        beta = w["beta"][:, None, :] if "beta" in w else None
        return tf.nn.batch_normalization(x, mean, variance, beta, gamma, layer.epsilon)

    def unstacked_weights(self) -> list[list[np.ndarray]]:
        """Each seed's weights in its own model's ``get_weights()`` order."""
        out = []
        for seed, model in enumerate(self.models):
            for layer, w in zip(model.layers, self.weights):
                for attr, stacked in w.items():
                    getattr(layer, attr).assign(np.asarray(stacked)[seed])
            out.append([np.asarray(v) for v in model.get_weights()])
        return out
