"""The training step: one `tf.function` with `tf.GradientTape`, the same for `engine train`,
`engine lr-find` and every `tf.distribute` strategy, and the forward pass used to evaluate.

The fast path is chosen in `step_options` from measurements (docs/performance.md).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from cells import automatic_unroll
from engine.training.config import TrainConfig
from engine.training.distribute import sum_gradients_in_step
from engine.training.prepare import build_run_model, make_optimizer


def step_options(config: TrainConfig) -> dict:
    """Keyword arguments for `make_train_step(model, optimizer, loss_fn, **options)`.

    `unroll=None` lets our cells unroll a known short window (the fast path); `--no-fast`
    gives `unroll=False`, their `tf.while_loop`. XLA (`jit_compile`) is never picked: it was
    measured slower on CPU for every precision (docs/performance.md).
    """
    return {"jit_compile": False, "unroll": None if config.fast else False}


def make_train_step(model, optimizer, loss_fn, jit_compile: bool = False, unroll=None):
    """One optimisation step on a global batch `(windows [batch, time], targets [batch])`,
    split among the replicas of the current strategy (build it in `strategy.scope()`).

    Returns `(loss, grads_finite)`: the mean loss over the global batch, and whether every
    gradient was finite. Each replica weights its own mean loss by its share of the global
    batch (what `tf.nn.compute_average_loss` does with per-example losses), so the summed
    gradients are those of the global mean, also for a partial last batch split unevenly.
    The gradients are summed across replicas before the optimizer sees them, so its clipping
    (`clipnorm`, `global_clipnorm` or `clipvalue`) acts on the global gradient. Under
    mixed_float16 the optimizer is a `LossScaleOptimizer`: the loss is scaled inside the tape,
    and `apply` unscales the gradients, skips the step if any is non-finite (the same verdict
    on every replica, as they hold the same sums) and adjusts the scale. For any other
    optimizer `scale_loss` is the identity. Under the default strategy every sum is the
    identity and every share is 1.
    """
    strategy = tf.distribute.get_strategy()
    sum_gradients_in_step(optimizer)

    def replica_step(windows, targets):
        replica = tf.distribute.get_replica_context()
        local_count = tf.cast(tf.shape(targets)[0], tf.float32)
        share = local_count / replica.all_reduce(tf.distribute.ReduceOp.SUM, local_count)
        with tf.GradientTape() as tape:
            predictions = model(windows, training=True)
            # multiply_no_nan: a replica left without examples adds 0, not the NaN of an empty mean
            loss = tf.math.multiply_no_nan(loss_fn(targets[:, None], predictions), share)
            scaled_loss = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled_loss, model.trainable_variables)
        grads = replica.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        grads_finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        optimizer.apply(grads, model.trainable_variables)
        return loss, grads_finite

    # XLA cannot compile a step that spans devices (Keras turns it off under tf.distribute too).
    @tf.function(jit_compile=jit_compile and not tf.distribute.has_strategy())
    def train_step(windows, targets):
        with automatic_unroll(unroll):  # at trace time: our cells' unrolled or loop path
            loss, grads_finite = strategy.run(replica_step, args=(windows, targets))
        loss = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        return loss, strategy.experimental_local_results(grads_finite)[0]

    return train_step


def build_training(config, data, strategy, loss_fn, total_steps: int, learning_rate=None):
    """`(model, optimizer, train_step)` for `config`, built in `strategy.scope()` (variables
    mirrored on every replica, the step run on each) with the fast path `config.fast` asks
    for. `engine train` steps with it and `engine lr-find` sweeps with it, so the two agree."""
    with strategy.scope():
        model = build_run_model(config, data)
        optimizer = make_optimizer(
            config, total_steps, learning_rate=learning_rate, series_std=data.normalization.std
        )
        optimizer.build(model.trainable_variables)
        train_step = make_train_step(model, optimizer, loss_fn, **step_options(config))
    return model, optimizer, train_step


def make_predict(model):
    @tf.function
    def predict(windows):
        return model(windows, training=False)

    return predict


def predict_in_batches(predict, windows: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """`[n, time]` -> `[n]` forecasts."""
    parts = [
        predict(windows[i : i + batch_size]).numpy()[:, 0]
        for i in range(0, len(windows), batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros((0,), "float32")
