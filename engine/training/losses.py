"""Losses written out: Huber, MSE, MAE, averaged over the batch (Keras' default reduction).

Each takes `y_true` and `y_pred` of the same shape `[batch, 1]` and returns a float32 scalar.
"""

from __future__ import annotations

import functools

import tensorflow as tf


def huber_loss(y_true, y_pred, delta: float = 1.0):
    """Quadratic within `delta` of the target, linear beyond: robust to noisy spikes."""
    y_true = tf.cast(y_true, tf.float32)
    error = tf.cast(y_pred, tf.float32) - y_true
    absolute = tf.abs(error)
    quadratic = 0.5 * tf.square(error)
    linear = delta * absolute - 0.5 * delta**2
    return tf.reduce_mean(tf.where(absolute <= delta, quadratic, linear))


def mse_loss(y_true, y_pred):
    return tf.reduce_mean(tf.square(tf.cast(y_pred, tf.float32) - tf.cast(y_true, tf.float32)))


def mae_loss(y_true, y_pred):
    return tf.reduce_mean(tf.abs(tf.cast(y_pred, tf.float32) - tf.cast(y_true, tf.float32)))


def get_loss(name: str, huber_delta: float = 1.0):
    """The loss function for `--loss NAME` (one of `engine.training.config.LOSSES`)."""
    if name == "huber":
        return functools.partial(huber_loss, delta=huber_delta)
    return {"mse": mse_loss, "mae": mae_loss}[name]
