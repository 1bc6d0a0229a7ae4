"""What every recurrent cell shares: its constructor arguments, initial state, dropout and config.

A cell is a `keras.layers.Layer` that knows one time step and nothing about time:
`step(x_t, states) -> (output, new_states)` with `x_t` of shape `[batch, features]` and
`states` a list of `[batch, units]` tensors. `Recurrent` drives it over a sequence.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import tensorflow as tf


class DropoutMasks(NamedTuple):
    """One sequence's dropout masks (0 or `1 / (1 - rate)`, in the compute dtype), reused at
    every step. Each field is None (no dropout there) or a tuple: `inputs` of `[batch,
    features]` masks, `recurrent` of `[batch, units]` masks; one mask shared by every gate,
    or one per gate block (in the kernels' gate order)."""

    inputs: tuple | None
    recurrent: tuple | None


def masked_matmul(x, kernel, masks):
    """`x @ kernel`, `[n, k] @ [k, gates * units]`, with `x` multiplied by its dropout mask
    first: `masks` None (no dropout), one `[n, k]` mask for every gate, or one mask per
    gate block of `kernel` (then one matmul per block, concatenated, as Keras's
    `implementation=1` computes it)."""
    if masks is None:
        return tf.matmul(x, kernel)
    if len(masks) == 1:
        return tf.matmul(x * masks[0], kernel)
    blocks = tf.split(kernel, len(masks), axis=1)
    return tf.concat([tf.matmul(x * mask, block) for mask, block in zip(masks, blocks)], -1)


def add_bias(z, bias, per_gate: bool):
    """`z + bias` with the op Keras uses, so gradients round alike: BiasAdd (its `ops.add`)
    for the fused kernels, `+` for `implementation=1`'s per-gate blocks (`per_gate`)."""
    if bias is None:
        return z
    return z + bias if per_gate else tf.nn.bias_add(z, bias)


def _rate(name: str, value) -> float:
    rate = float(value)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name} must be a float in [0, 1), got {value!r}")
    return rate


class Cell(keras.layers.Layer):
    """Base class of SimpleRNNCell, LSTMCell and GRUCell.

    Args:
        units: size of the output and of every state.
        activation: the candidate / output activation (default tanh).
        use_bias: whether the cell has a bias vector.
        kernel_initializer: for `kernel` `[features, gates * units]` (glorot_uniform).
        recurrent_initializer: for `recurrent_kernel` `[units, gates * units]` (orthogonal).
        bias_initializer: for `bias` (zeros).
        dropout: fraction of the inputs `x_t` to drop before `x_t @ kernel`, in [0, 1).
        recurrent_dropout: fraction of `h_{t-1}` to drop before `h_{t-1} @
            recurrent_kernel`, in [0, 1).
        seed: int or None, the seed of the dropout masks' `keras.random.SeedGenerator`.

    Dropout is Keras 3's: masks drawn once per sequence (`dropout_masks`) and reused at
    every step, only when `training=True`; inverted (kept values scaled by `1 / (1 -
    rate)`), so inference is unchanged. With both rates 0 the cell has no seed generator and
    its graph has no dropout op.
    """

    #: number of [batch, units] states the cell carries (LSTM: h and c).
    num_states = 1
    #: number of gate blocks in the kernels (LSTM 4, GRU 3), one dropout mask each when
    #: `recurrent_dropout` is set.
    gates = 1

    def __init__(
        self,
        units: int,
        activation="tanh",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        if int(units) <= 0:
            raise ValueError(f"units must be a positive integer, got {units}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.dropout = _rate("dropout", dropout)
        self.recurrent_dropout = _rate("recurrent_dropout", recurrent_dropout)
        self.seed = seed
        # Only with a rate set, so a cell without dropout has the state and graph it had.
        has_dropout = self.dropout > 0 or self.recurrent_dropout > 0
        self.seed_generator = keras.random.SeedGenerator(seed) if has_dropout else None
        self.state_size = [self.units] * self.num_states
        self.output_size = self.units

    @property
    def per_gate(self) -> bool:
        """Whether the cell computes as Keras's `implementation=1`, which `recurrent_dropout`
        selects: one dropout mask per gate and the per-gate association `(x W + b) + h U`."""
        return self.recurrent_dropout > 0

    def step(self, x_t, states, masks: DropoutMasks | None = None):
        """One time step: `x_t` `[batch, features]`, `states` list of `[batch, units]`,
        `masks` this sequence's `dropout_masks` (None: no dropout).

        Returns `(output [batch, units], new_states)`.
        """
        return self.recurrent_step(self.project_inputs(x_t, masks), states, masks)

    def project_inputs(self, x, masks: DropoutMasks | None = None):
        """The part of a step that reads only the input, `[n, features] -> [n, gates *
        units]`: `(x * input mask) @ kernel` plus the input bias (`masks.inputs` `[n,
        features]`). `Recurrent` may compute it for every step at once, as one matmul over
        `[time * batch, features]`, before its loop."""
        raise NotImplementedError

    def recurrent_step(self, projected_t, states, masks: DropoutMasks | None = None):
        """The rest of a step, given `projected_t = project_inputs(x_t)`
        `[batch, gates * units]`. Returns `(output [batch, units], new_states)`."""
        raise NotImplementedError

    def call(self, inputs, states, training=False):
        # Called on its own a cell draws its masks at each call; `Recurrent` draws them once
        # per sequence and calls `step`.
        masks = self.dropout_masks(inputs, list(states), training)
        if masks is None:
            return self.step(inputs, list(states))
        return self.step(inputs, list(states), masks)

    def dropout_masks(self, inputs, states, training=False) -> DropoutMasks | None:
        """This sequence's dropout masks, drawn once before the time loop; None when
        `training` is false or both rates are 0 (then nothing is drawn).

        `inputs` is one step's `[batch, features]` or the sequence `[batch, time,
        features]`, `states` the initial states; the masks are `[batch, features]` and
        `[batch, units]` in their dtypes. As Keras draws them: the input masks, then the
        recurrent ones, from `seed_generator`; one input mask for every gate, or one per
        gate when `recurrent_dropout` is set (Keras's `implementation=1`), whose recurrent
        masks are always one per gate. A test may override this hook to fix the masks.
        """
        if not training or self.seed_generator is None:
            return None
        count = self.gates if self.per_gate else 1
        for_inputs = for_state = None
        if self.dropout:
            shape = tf.stack([tf.shape(inputs)[0], inputs.shape[-1]])
            for_inputs = self._draw(tf.ones(shape, inputs.dtype), self.dropout, count)
        if self.recurrent_dropout:
            for_state = self._draw(tf.ones_like(states[0]), self.recurrent_dropout, count)
        return DropoutMasks(for_inputs, for_state)

    def _draw(self, ones, rate: float, count: int) -> tuple:
        return tuple(
            keras.random.dropout(ones, rate=rate, seed=self.seed_generator) for _ in range(count)
        )

    def add_kernels(self, features: int, gates: int) -> None:
        """`kernel` `[features, gates * units]` then `recurrent_kernel` `[units, gates *
        units]`, Keras's names, shapes and order (so `set_weights` lists agree)."""
        self.kernel = self.add_weight(
            shape=(features, gates * self.units),
            name="kernel",
            initializer=self.kernel_initializer,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, gates * self.units),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
        )

    def get_initial_state(self, batch_size):
        """Zero states, one `[batch_size, units]` tensor per state, in the compute dtype."""
        return [
            tf.zeros(tf.stack([batch_size, self.units]), dtype=self.compute_dtype)
            for _ in range(self.num_states)
        ]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }


def input_masks(masks: DropoutMasks | None):
    """`masks.inputs`, or None without masks."""
    return None if masks is None else masks.inputs


def recurrent_masks(masks: DropoutMasks | None):
    """`masks.recurrent`, or None without masks."""
    return None if masks is None else masks.recurrent


class GatedCell(Cell):
    """A cell with gates, squashed by `recurrent_activation` (default sigmoid): LSTM, GRU.

    Takes `Cell`'s arguments (by keyword after `units`) plus `recurrent_activation`.
    """

    def __init__(self, units: int, *, recurrent_activation="sigmoid", **kwargs):
        super().__init__(units, **kwargs)
        self.recurrent_activation = keras.activations.get(recurrent_activation)

    def get_config(self):
        return {
            **super().get_config(),
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
        }
