import keras
import numpy as np
import pytest
import tensorflow as tf

from engine.training.losses import huber_loss, mae_loss, mse_loss


@pytest.mark.parametrize("delta", [0.5, 1.0, 2.5])
def test_huber_equals_keras_in_value_and_gradient(delta):
    rng = np.random.default_rng(0)
    y_true = tf.constant(rng.normal(size=(64, 1)) * 3, tf.float32)
    y_pred = tf.Variable(rng.normal(size=(64, 1)) * 3, dtype=tf.float32)
    reference = keras.losses.Huber(delta=delta)
    with tf.GradientTape(persistent=True) as tape:
        ours = huber_loss(y_true, y_pred, delta)
        theirs = reference(y_true, y_pred)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        tape.gradient(ours, y_pred).numpy(),
        tape.gradient(theirs, y_pred).numpy(),
        rtol=1e-6,
        atol=1e-9,
    )
    # Both branches were exercised.
    errors = np.abs(y_pred.numpy() - y_true.numpy())
    assert (errors <= delta).any() and (errors > delta).any()


def test_mse_and_mae_equal_keras():
    y_true = tf.constant([[1.0], [2.0], [-3.0]])
    y_pred = tf.constant([[1.5], [0.0], [-1.0]])
    np.testing.assert_allclose(
        mse_loss(y_true, y_pred), keras.losses.MeanSquaredError()(y_true, y_pred), rtol=1e-6
    )
    np.testing.assert_allclose(
        mae_loss(y_true, y_pred), keras.losses.MeanAbsoluteError()(y_true, y_pred), rtol=1e-6
    )


def test_every_configurable_loss_has_a_function():
    from engine.training.config import LOSSES
    from engine.training.losses import get_loss

    y_true, y_pred = tf.constant([[1.0]]), tf.constant([[3.0]])
    expected = {"huber": 1.5, "mse": 4.0, "mae": 2.0}  # Huber with delta 1: 2 - 0.5
    assert set(LOSSES) == set(expected)
    for name in LOSSES:
        assert float(get_loss(name)(y_true, y_pred)) == pytest.approx(expected[name])
