"""Recurrent: drives any cell over the time axis.

It owns everything about time, for every cell alike: unrolling, `return_sequences`,
`return_state`, `go_backwards`, `initial_state` and masking. Semantics follow
`keras.layers.RNN` (Keras 3):

- `go_backwards=True` reads the sequence last step first and returns the outputs in that
  processing order (not flipped back).
- At a masked step every state keeps its previous value, and the output repeats the previous
  step's output (zeros before the first unmasked step), or is zero when
  `zero_output_for_mask=True` (what `Bidirectional` asks for with `return_sequences`).
- With `training=True` and a cell's `dropout` / `recurrent_dropout` set, the cell's masks
  are drawn once per call, before the loop (`cell.dropout_masks`), and reused at every step
  on both paths; otherwise the loop is exactly the one without dropout.
"""

from __future__ import annotations

import contextlib
import functools

import keras
import tensorflow as tf

#: With `unroll=None`, a statically known time length up to this many steps is unrolled in
#: Python; longer or unknown lengths run in a `tf.while_loop` (see benchmarks/cells_loop.py).
AUTO_UNROLL_MAX_STEPS = 64

# What `unroll=None` means while `automatic_unroll(...)` is active (None: the rule above).
_automatic_unroll: bool | None = None


@contextlib.contextmanager
def automatic_unroll(unroll: bool | None):
    """Within this context (at trace time), layers built with `unroll=None` unroll if
    `unroll` is True, loop if False, or follow `AUTO_UNROLL_MAX_STEPS` if None. A layer's
    own explicit `unroll` and its saved config are untouched. Lets a caller trace the
    plain while-loop path (`engine train --no-fast`) from the same model."""
    global _automatic_unroll
    previous, _automatic_unroll = _automatic_unroll, unroll
    try:
        yield
    finally:
        _automatic_unroll = previous


@keras.saving.register_keras_serializable(package="seqcast")
class Recurrent(keras.layers.Layer):
    """Runs `cell` over `[batch, time, features]` inputs.

    Args:
        cell: a `cells.Cell` (SimpleRNNCell, LSTMCell, GRUCell).
        return_sequences: return every step's output `[batch, time, units]` instead of the
            last one `[batch, units]`.
        return_state: also return the final states, each `[batch, units]`.
        go_backwards: process the sequence in reverse.
        unroll: True: a static Python loop (needs a known time length); False: a
            `tf.while_loop`; None: unroll when the length is known and at most
            `AUTO_UNROLL_MAX_STEPS`.
        zero_output_for_mask: output zeros (not the previous output) at masked steps.

    Attribute `project_inputs_ahead` (False; `Bidirectional` sets it): the unrolled loop
    projects every step's input in one matmul before stepping (see `__init__`).

    Call arguments: `sequences` `[batch, time, features]`; `initial_state` a list of
    `[batch, units]` tensors; `mask` `[batch, time]` booleans (True = a real step), or the
    mask a `keras.layers.Masking` layer attached; `training` (Keras passes it) turns the
    cell's dropout on.
    """

    def __init__(
        self,
        cell,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        unroll: bool | None = None,
        zero_output_for_mask: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.unroll = unroll if unroll is None else bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        # Whether the unrolled loop computes every step's `x W + b` first, as one matmul
        # (`cell.project_inputs`), and steps with `cell.recurrent_step`. Off by default:
        # alone, a recurrence leaves a core free to do each step's projection beside it, and
        # that measured faster. `Bidirectional` turns it on for its two layers, whose two
        # recurrences keep both cores busy (benchmarks/loop_rewrites.py, README
        # "Performance"). Only in float32 and float64: the LSTM then adds its bias before
        # `h U`, not after as Keras does, a difference in the last bit, which half precision
        # would magnify past its tolerance. The while loop always steps with `cell.step`.
        self.project_inputs_ahead = False
        # Keras's Bidirectional checks this attribute of the layers it wraps.
        self.stateful = False
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(ndim=3)

    @property
    def units(self) -> int:
        return self.cell.units

    def build(self, sequences_shape, initial_state_shape=None):
        if not self.cell.built:
            self.cell.build((sequences_shape[0], sequences_shape[-1]))

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, time = sequences_shape[0], sequences_shape[1]
        units = self.cell.units
        output_shape = (batch, time, units) if self.return_sequences else (batch, units)
        if self.return_state:
            return (output_shape,) + tuple((batch, units) for _ in range(self.cell.num_states))
        return output_shape

    def compute_mask(self, sequences, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * self.cell.num_states
        return output_mask

    def _unrolls(self, time_steps: int | None) -> bool:
        if self.unroll is None:
            if _automatic_unroll is not None:
                return _automatic_unroll and time_steps is not None
            return time_steps is not None and time_steps <= AUTO_UNROLL_MAX_STEPS
        if self.unroll and time_steps is None:
            raise ValueError("unroll=True needs a statically known time length")
        return self.unroll

    def call(self, sequences, initial_state=None, mask=None, training=False):
        dtype = self.compute_dtype
        sequences = tf.convert_to_tensor(sequences)
        if initial_state is None:
            states = self.cell.get_initial_state(tf.shape(sequences)[0])
        else:
            if not isinstance(initial_state, (list, tuple)):
                initial_state = [initial_state]
            states = [tf.cast(state, dtype) for state in initial_state]
            if len(states) != self.cell.num_states:
                raise ValueError(
                    f"{type(self.cell).__name__} takes {self.cell.num_states} initial "
                    f"state(s), got {len(states)}"
                )
        # Drawn once per sequence, reused at every step; None without dropout.
        dropout_masks = self.cell.dropout_masks(sequences, states, training)

        # Time-major [time, batch, ...] so the loop reads one step at a time.
        inputs = tf.transpose(sequences, [1, 0, 2])
        step_mask = None
        if mask is not None:
            if isinstance(mask, (list, tuple)):
                mask = mask[0]
            step_mask = tf.transpose(tf.cast(mask, tf.bool))[:, :, None]  # [time, batch, 1]
        if self.go_backwards:
            inputs = tf.reverse(inputs, [0])
            if step_mask is not None:
                step_mask = tf.reverse(step_mask, [0])

        run = self._run_unrolled if self._unrolls(sequences.shape[1]) else self._run_loop
        last_output, outputs, states = run(inputs, states, step_mask, dropout_masks)

        if self.return_sequences:
            output = tf.transpose(outputs, [1, 0, 2])  # back to [batch, time, units]
        else:
            output = last_output
        if self.return_state:
            return [output, *states]
        return output

    def _masked_step(self, step, x_t, states, previous_output, mask_t):
        """One `step` of the cell, with masked batch entries keeping their previous values."""
        output, new_states = step(x_t, states)
        if mask_t is None:
            return output, new_states
        held = tf.zeros_like(output) if self.zero_output_for_mask else previous_output
        output = tf.where(mask_t, output, held)
        new_states = [tf.where(mask_t, new, old) for new, old in zip(new_states, states)]
        return output, new_states

    def _run_unrolled(self, inputs, states, step_mask, dropout_masks):
        """A static Python loop over `inputs` `[time, batch, features]`, with the cell's
        `dropout_masks` (or None).

        Returns `(last_output [batch, units], outputs [time, batch, units] or None, states)`.
        """
        step = _with_masks(self.cell.step, dropout_masks)
        if (
            self.project_inputs_ahead
            and inputs.shape[0]
            and self.compute_dtype in ("float32", "float64")
        ):
            time_steps = inputs.shape[0]
            if dropout_masks is not None and dropout_masks.inputs is not None:
                # Row t * batch + b of the flattened inputs takes batch entry b's mask.
                tiled = [tf.tile(mask, [time_steps, 1]) for mask in dropout_masks.inputs]
                dropout_masks = dropout_masks._replace(inputs=tuple(tiled))
            project_inputs = _with_masks(self.cell.project_inputs, dropout_masks)
            projected = project_inputs(tf.reshape(inputs, [-1, inputs.shape[-1]]))
            # [time * batch, gates * units] -> [time, batch, gates * units]; time is known here
            inputs = tf.reshape(projected, [time_steps, -1, projected.shape[-1]])
            step = _with_masks(self.cell.recurrent_step, dropout_masks)
        steps = tf.unstack(inputs)
        masks = tf.unstack(step_mask) if step_mask is not None else [None] * len(steps)
        output = self._zero_output(inputs)
        outputs = []
        for x_t, mask_t in zip(steps, masks):
            output, states = self._masked_step(step, x_t, states, output, mask_t)
            outputs.append(output)
        stacked = tf.stack(outputs) if self.return_sequences else None
        return output, stacked, states

    def _run_loop(self, inputs, states, step_mask, dropout_masks):
        """A `tf.while_loop` over `inputs` `[time, batch, features]`, any time length, with
        the cell's `dropout_masks` (or None), drawn before it and captured whole.

        Inputs (and the mask) are read through TensorArrays: slicing a captured tensor inside
        the loop would make the gradient O(time^2).
        """
        step = _with_masks(self.cell.step, dropout_masks)
        time_steps = tf.shape(inputs)[0]
        input_ta = tf.TensorArray(inputs.dtype, size=time_steps).unstack(inputs)
        mask_ta = None
        if step_mask is not None:
            mask_ta = tf.TensorArray(tf.bool, size=time_steps).unstack(step_mask)
        output_ta = tf.TensorArray(
            self.compute_dtype,
            size=time_steps if self.return_sequences else 1,
            element_shape=tf.TensorShape([inputs.shape[1], self.cell.units]),
        )

        def body(t, output_ta, previous_output, *states):
            mask_t = mask_ta.read(t) if mask_ta is not None else None
            output, new_states = self._masked_step(
                step, input_ta.read(t), list(states), previous_output, mask_t
            )
            output_ta = output_ta.write(t if self.return_sequences else 0, output)
            return (t + 1, output_ta, output, *new_states)

        loop_vars = (tf.constant(0), output_ta, self._zero_output(inputs), *states)
        _, output_ta, last_output, *states = tf.while_loop(
            lambda t, *_: t < time_steps,
            body,
            loop_vars,
            maximum_iterations=time_steps,  # XLA needs a bound to differentiate the loop
        )
        outputs = output_ta.stack() if self.return_sequences else None
        return last_output, outputs, list(states)

    def _zero_output(self, inputs):
        return tf.zeros(tf.stack([tf.shape(inputs)[1], self.cell.units]), self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "cell": keras.saving.serialize_keras_object(self.cell),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        return cls(**config)


def _with_masks(function, masks):
    """`function` with `masks=masks` bound; `function` itself without masks, so a loop
    without dropout calls the cell exactly as it would without the feature."""
    return function if masks is None else functools.partial(function, masks=masks)
