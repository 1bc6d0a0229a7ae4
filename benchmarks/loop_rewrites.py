"""Two rewrites of the cells' unrolled time loop, timed against the per-step loop.

Both cut the op count of a training step. In one process, rounds interleaved, medians, the
engine's training step (`engine_custom_cells` of benchmarks/train_step.py) with:

- per_step: every step computes its own input projection, `cell.step`;
- inputs_ahead: the input projection `x W + b` of every step computed before the loop as
  one matmul over `[time * batch, features]` (`cell.project_inputs`), the loop adding only
  `h U` (`cell.recurrent_step`): `Recurrent.project_inputs_ahead`;
- custom_gradient (LSTM layers only): the whole sequence as one `tf.custom_gradient` with a
  hand-written backward pass: the gate derivatives for all steps at once, then the
  recurrence backwards with one matmul a step, then the weight gradients as one matmul
  each over all steps. Not in `cells/`: it measured no faster anywhere.

The engine uses per_step for a lone recurrence and inputs_ahead inside `Bidirectional`,
where this script measured it faster (two recurrences keep both cores busy; alone, a
recurrence leaves one core free to do the projections beside it). Gradients of every
variant agree with per_step (checked before timing: relative difference at most 1e-5).

    python benchmarks/loop_rewrites.py [--cases rnn/64/256 bilstm/20/32 ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import train_step  # noqa: E402 - benchmarks/train_step.py: the same models, data and step

from cells.lstm import LSTMCell  # noqa: E402
from cells.recurrent import Recurrent  # noqa: E402
from engine.training.config import TrainConfig  # noqa: E402

CASES = [
    "rnn/20/256", "rnn/64/256", "lstm/20/32", "lstm/64/256", "gru/64/256",
    "bilstm/20/32", "bilstm/20/256", "bilstm/64/32", "bilstm/64/256",
]  # fmt: skip
VARIANTS = ("per_step", "inputs_ahead", "custom_gradient")
REWRITE: list[str | None] = [None]  # the variant being traced; None: the engine's choice
_engine_run_unrolled = Recurrent._run_unrolled


def lstm_sequence(inputs, h0, c0, kernel, recurrent_kernel, bias):
    """A whole LSTM sequence `[time, batch, features]` with a hand-written backward pass.
    Returns `(outputs [time, batch, units], h, c)`."""

    @tf.custom_gradient
    def run(inputs, h0, c0, kernel, recurrent_kernel, bias):
        steps, units = inputs.shape[0], recurrent_kernel.shape[0]
        flat_inputs = tf.reshape(inputs, [-1, inputs.shape[2]])
        projected = tf.nn.bias_add(tf.matmul(flat_inputs, kernel), bias)
        projected = tf.unstack(tf.reshape(projected, [steps, -1, 4 * units]))
        h, c = h0, c0
        outputs, cell_states, gates = [], [], []
        for t in range(steps):
            z = projected[t] + tf.matmul(h, recurrent_kernel)
            z_if, z_c, z_o = tf.split(z, [2 * units, units, units], axis=-1)
            i, f = tf.split(tf.sigmoid(z_if), 2, axis=-1)
            g, o = tf.tanh(z_c), tf.sigmoid(z_o)
            c = f * c + i * g
            tanh_c = tf.tanh(c)
            h = o * tanh_c
            outputs.append(h)
            cell_states.append(c)
            gates.append((i, f, g, o, tanh_c))
        stacked_outputs = tf.stack(outputs)

        def gradient(d_outputs, d_h, d_c):
            i, f, g, o, tanh_c = (tf.stack(list(part)) for part in zip(*gates))
            c_previous = tf.concat([c0[None], tf.stack(cell_states[:-1])], 0)
            h_previous = tf.concat([h0[None], stacked_outputs[:-1]], 0)
            dc_from_dh = tf.unstack(o * (1 - tanh_c * tanh_c))
            # dz = [dc, dc, dc, dh] * these, per step (gate order i, f, c, o)
            factors = tf.concat(
                [g * i * (1 - i), c_previous * f * (1 - f), i * (1 - g * g), tanh_c * o * (1 - o)],
                -1,
            )
            factors, forget = tf.unstack(factors), tf.unstack(f)
            # An output nothing depends on may come without a gradient.
            d_outputs = [None] * steps if d_outputs is None else tf.unstack(d_outputs)
            dh = tf.zeros_like(h0) if d_h is None else d_h
            dc = tf.zeros_like(c0) if d_c is None else d_c
            dzs = [None] * steps
            for t in reversed(range(steps)):
                if d_outputs[t] is not None:
                    dh = dh + d_outputs[t]
                dc = dc + dh * dc_from_dh[t]
                dzs[t] = tf.concat([dc, dc, dc, dh], -1) * factors[t]
                dh = tf.matmul(dzs[t], recurrent_kernel, transpose_b=True)
                dc = dc * forget[t]
            dz = tf.reshape(tf.stack(dzs), [-1, 4 * units])
            d_kernel = tf.matmul(flat_inputs, dz, transpose_a=True)
            d_recurrent = tf.matmul(tf.reshape(h_previous, [-1, units]), dz, transpose_a=True)
            d_inputs = tf.reshape(tf.matmul(dz, kernel, transpose_b=True), tf.shape(inputs))
            return d_inputs, dh, dc, d_kernel, d_recurrent, tf.reduce_sum(dz, 0)

        return (stacked_outputs, h, c), gradient

    return run(inputs, h0, c0, kernel, recurrent_kernel, bias)


def rewritten_run_unrolled(self, inputs, states, step_mask):
    """`Recurrent._run_unrolled` as the variant being traced asks."""
    cell, rewrite = self.cell, REWRITE[0]
    if rewrite == "custom_gradient" and isinstance(cell, LSTMCell) and step_mask is None:
        weights = (cell.kernel, cell.recurrent_kernel, cell.bias)
        outputs, h, c = lstm_sequence(inputs, *states, *map(tf.convert_to_tensor, weights))
        return h, (outputs if self.return_sequences else None), [h, c]
    if rewrite is None:
        return _engine_run_unrolled(self, inputs, states, step_mask)
    engine_choice = self.project_inputs_ahead
    self.project_inputs_ahead = rewrite == "inputs_ahead"
    try:
        return _engine_run_unrolled(self, inputs, states, step_mask)
    finally:
        self.project_inputs_ahead = engine_choice


def check_gradients(model_name: str, window: int, batch: int, rewrites) -> None:
    """The rewrites' gradients against the per-step loop's, on the same weights and batch."""
    from engine.model.builders import build_model

    windows, targets = train_step.batch_of(window, batch)
    model = build_model(model_name, "custom")

    def gradients():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(windows)[:, 0] - targets) ** 2)
        return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]

    REWRITE[0] = "per_step"
    reference = gradients()
    for rewrite in rewrites:
        REWRITE[0] = rewrite
        for want, got in zip(reference, gradients()):
            difference = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-12)
            if difference > 1e-5:
                raise SystemExit(f"{rewrite} gradients differ by {difference:.1e}")
    REWRITE[0] = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    train_step.add_case_arguments(parser, CASES)
    args = parser.parse_args()
    Recurrent._run_unrolled = rewritten_run_unrolled
    config = TrainConfig()

    print("ms per training step, median of rounds (ratio to per_step); * the engine's choice")
    for case in args.cases:
        model_name, window, batch = case.split("/")
        window, batch = int(window), int(batch)
        variants = [v for v in VARIANTS if v != "custom_gradient" or "lstm" in model_name]
        check_gradients(model_name, window, batch, variants[1:])
        windows, targets = train_step.batch_of(window, batch)
        runners = {}
        for variant in variants:
            REWRITE[0] = variant
            runners[variant] = train_step.make_variant(
                "engine_custom_cells", model_name, windows, targets, config
            )
            for _ in range(args.warmup):  # traces the step with the rewrite active
                runners[variant]()
        REWRITE[0] = None
        per_step = {variant: [] for variant in runners}
        for _ in range(args.rounds):
            for variant, run in runners.items():
                start = time.perf_counter()
                for _ in range(args.steps):
                    run()
                per_step[variant].append((time.perf_counter() - start) / args.steps * 1e3)
        plain = statistics.median(per_step["per_step"])
        engine_choice = "inputs_ahead" if model_name == "bilstm" else "per_step"
        cells = "  ".join(
            f"{variant}{'*' if variant == engine_choice else ''} "
            f"{statistics.median(times):.2f} ({statistics.median(times) / plain:.2f})"
            for variant, times in per_step.items()
        )
        print(f"{case:<14} {cells}", flush=True)


if __name__ == "__main__":
    main()
