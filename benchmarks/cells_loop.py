"""Unrolled Python loop or tf.while_loop: which trains faster?

One training step (forward, backward, Adam update) of `cell(40) -> Dense(1)` on batch 32,
windows of 20 and 64 steps, one feature, inside a `tf.function`; the median step time over
a few repeats, after a warm-up step (which also pays the trace). `cells.Recurrent(unroll=None)`
unrolls up to `cells.AUTO_UNROLL_MAX_STEPS` steps; this is the measurement behind that choice.

    python benchmarks/cells_loop.py [--steps 30] [--windows 20 64] [--cells SimpleRNN LSTM GRU]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import cells  # noqa: E402

BATCH, FEATURES, UNITS = 32, 1, 40


def build(cell_name: str, variant: str, window: int) -> keras.Model:
    if variant == "keras":
        recurrent = getattr(keras.layers, cell_name)(UNITS)
    else:
        recurrent = getattr(cells, cell_name)(UNITS, unroll=variant == "unrolled")
    return keras.Sequential([keras.Input((window, FEATURES)), recurrent, keras.layers.Dense(1)])


def make_training_step(model: keras.Model, window: int):
    """A compiled training step and its batch; the first call (returned, in s) traces."""
    optimizer = keras.optimizers.Adam(1e-3)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(BATCH, window, FEATURES)), tf.float32)
    y = tf.constant(rng.normal(size=(BATCH, 1)), tf.float32)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        return loss

    start = time.perf_counter()
    train_step(x, y).numpy()
    return (lambda: train_step(x, y).numpy()), time.perf_counter() - start


def time_steps(step, count: int) -> float:
    """Mean seconds per step over `count` steps."""
    start = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--windows", type=int, nargs="+", default=[20, 64])
    parser.add_argument("--cells", nargs="+", default=["SimpleRNN", "LSTM", "GRU"])
    args = parser.parse_args()
    variants = ("unrolled", "loop", "keras")
    print(
        f"batch {BATCH}, {FEATURES} feature, {UNITS} units; per step: the best and the median "
        f"of {args.rounds} rounds of {args.steps} steps, variants interleaved"
    )
    print(f"{'cell':<10}{'window':>7}{'variant':>10}{'first call':>12}{'best':>10}{'median':>10}")
    for cell_name in args.cells:
        for window in args.windows:
            steps, firsts = {}, {}
            for variant in variants:
                steps[variant], firsts[variant] = make_training_step(
                    build(cell_name, variant, window), window
                )
            timings = {variant: [] for variant in variants}
            for _ in range(args.rounds):  # interleaved, so a busy moment hits all alike
                for variant in variants:
                    timings[variant].append(time_steps(steps[variant], args.steps))
            for variant in variants:
                print(
                    f"{cell_name:<10}{window:>7}{variant:>10}{firsts[variant]:>11.2f}s"
                    f"{min(timings[variant]) * 1000:>8.2f}ms"
                    f"{statistics.median(timings[variant]) * 1000:>8.2f}ms",
                    flush=True,
                )


if __name__ == "__main__":
    main()
