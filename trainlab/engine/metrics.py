"""Per-sample metrics the engine accumulates over an epoch.

Each metric maps (y_true, y_pred) to one value per sample, so an epoch's value is
the sum over its batches divided by the number of rows, which is how Keras
averages a metric over an epoch. ``HISTORY_NAME`` is the name it gets in the
history (``accuracy`` / ``val_accuracy``, ``mse`` / ``val_mse``).
"""

from __future__ import annotations

import tensorflow as tf


def categorical_accuracy(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """One-hot targets: the arg-max class is right."""
    return tf.cast(tf.equal(tf.argmax(y_true, -1), tf.argmax(y_pred, -1)), tf.float32)


def sparse_categorical_accuracy(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Integer targets: the arg-max class is right."""
    labels = tf.cast(tf.reshape(y_true, tf.shape(y_pred)[:-1]), tf.int64)
    return tf.cast(tf.equal(labels, tf.argmax(y_pred, -1)), tf.float32)


def binary_accuracy(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """{0, 1} targets and a probability output, thresholded at 0.5 (Keras 3)."""
    predicted = tf.cast(tf.reshape(y_pred, [-1]) > 0.5, tf.float32)
    return tf.cast(tf.equal(tf.cast(tf.reshape(y_true, [-1]), tf.float32), predicted), tf.float32)


def sign_accuracy(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """{-1, 1} targets and a tanh output: the sign of the output is right."""
    predicted = tf.where(tf.reshape(y_pred, [-1]) >= 0.0, 1.0, -1.0)
    return tf.cast(tf.equal(tf.cast(tf.reshape(y_true, [-1]), tf.float32), predicted), tf.float32)


def mse(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Squared error per sample (averaged over outputs)."""
    y_true = tf.reshape(tf.cast(y_true, tf.float32), tf.shape(y_pred))
    return tf.reduce_mean(tf.square(y_true - y_pred), axis=-1)


METRICS = {
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "binary_accuracy": binary_accuracy,
    "sign_accuracy": sign_accuracy,
    "mse": mse,
}

HISTORY_NAME = {
    "categorical_accuracy": "accuracy",
    "sparse_categorical_accuracy": "accuracy",
    "binary_accuracy": "accuracy",
    "sign_accuracy": "accuracy",
    "mse": "mse",
}
