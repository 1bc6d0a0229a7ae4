"""Which fast path a training step takes, decided in one place, from measurements.

On CPU the fastest recurrent step measured (benchmarks/train_step.py, README "Performance")
is a plain `tf.function` over statically unrolled cells: the cells unroll by themselves when
the window length is known (`cells.recurrent.AUTO_UNROLL_MAX_STEPS`), and the engine's step
sees known lengths, as it is called on concrete batches. XLA (`jit_compile=True`) was not
clearly faster on the shapes measured, and compiling an unrolled 64-step stack took minutes
(ms per step, medians of 3 rounds on 2 shared cores, plain unrolled / XLA over the loop /
XLA unrolled):
- rnn, window 20, batch 32: 3.7 / 5.4 / 4.3;
- gru, window 64, batch 256: 226 / 265 / not run;
- lstm, window 64, batch 32: 59 / 44 / 212 after a 206 s compile; the plain unrolled step
  measured 50 in the full benchmark, so XLA over the loop may win here, within the spread.
So the fast path does not pick XLA, for float32 and for the mixed policies alike: under
mixed_float16 and mixed_bfloat16 an XLA step runs on CPU, but was no faster than the plain one
(rnn, window 20, batch 32: 4-7 ms a step either way, against 3.5 ms in float32), and an
unrolled long window would pay the same compile time. No GPU was measured: there too the
plain step is used until a measurement says otherwise.

Two rewrites of the unrolled loop that cut its op count were measured against it, side by
side in one process (`python benchmarks/loop_rewrites.py`, README "Performance"). Computing
every step's input projection `x W + b` before the loop as one matmul
(`Recurrent.project_inputs_ahead`) is slower for a lone recurrence (rnn, lstm, gru:
1.01-1.17x) but faster inside `Bidirectional` (bilstm, all four shapes: 0.77-0.94x), so
`Bidirectional` turns it on for its two layers in float32 and float64. Alone, a recurrence
leaves the second core free to do each step's projection (and its gradient) beside the
recurrence; two recurrences side by side keep both cores busy, and then fewer, larger ops
win. A whole-sequence LSTM with a hand-written backward pass (`tf.custom_gradient`, weight
gradients as one matmul over all steps) ranged from 0.82x to 1.24x: slower at batch 256
and for the lone LSTM, faster only at batch 32 inside `Bidirectional`, and there not in
every run (1.03x on bilstm, window 20, batch 32 in another), so it is not here.

What is left to gain was measured too (`python benchmarks/step_floor.py`, README
"Performance"): the matrix products and gate activations that any step equivalent to Keras's
computes take, as TensorFlow ops at full throughput on 2 cores, about half of Keras's whole
step for the LSTM at batch 256 (0.46-0.60 over several runs), and 0.17-0.48 of it elsewhere.

`--no-fast` is the plain path: no XLA, and our cells' generic `tf.while_loop` instead of
the static unroll.
"""

from __future__ import annotations

from engine.config import TrainConfig


def step_options(config: TrainConfig) -> dict:
    """Keyword arguments for `make_train_step(model, optimizer, loss_fn, **options)`.

    `jit_compile`: whether to XLA-compile the step; False on every measured configuration
    (see the module docstring). `unroll`: None lets the cells unroll known short windows
    (the fast path); False forces their while-loop (the plain path).
    """
    if not config.fast:
        return {"jit_compile": False, "unroll": False}
    return {"jit_compile": _xla_measured_faster(config), "unroll": None}


def _xla_measured_faster(config: TrainConfig) -> bool:
    """Whether XLA measured faster than the plain step for `config`: on CPU, never."""
    return False
