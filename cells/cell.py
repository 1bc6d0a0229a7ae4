"""What every recurrent cell shares: its constructor arguments, initial state and config.

A cell is a `keras.layers.Layer` that knows one time step and nothing about time:
`step(x_t, states) -> (output, new_states)` with `x_t` of shape `[batch, features]` and
`states` a list of `[batch, units]` tensors. `Recurrent` drives it over a sequence.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class Cell(keras.layers.Layer):
    """Base class of SimpleRNNCell, LSTMCell and GRUCell.

    Args:
        units: size of the output and of every state.
        activation: the candidate / output activation (default tanh).
        use_bias: whether the cell has a bias vector.
        kernel_initializer: for `kernel` `[features, gates * units]` (glorot_uniform).
        recurrent_initializer: for `recurrent_kernel` `[units, gates * units]` (orthogonal).
        bias_initializer: for `bias` (zeros).
    """

    #: number of [batch, units] states the cell carries (LSTM: h and c).
    num_states = 1

    def __init__(
        self,
        units: int,
        activation="tanh",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        **kwargs,
    ):
        if int(units) <= 0:
            raise ValueError(f"units must be a positive integer, got {units}")
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.state_size = [self.units] * self.num_states
        self.output_size = self.units

    def step(self, x_t, states):
        """One time step: `x_t` `[batch, features]`, `states` list of `[batch, units]`.

        Returns `(output [batch, units], new_states)`.
        """
        return self.recurrent_step(self.project_inputs(x_t), states)

    def project_inputs(self, x):
        """The part of a step that reads only the input, `[n, features] -> [n, gates *
        units]`: `x @ kernel` plus the input bias. `Recurrent` may compute it for every step
        at once, as one matmul over `[time * batch, features]`, before its loop."""
        raise NotImplementedError

    def recurrent_step(self, projected_t, states):
        """The rest of a step, given `projected_t = project_inputs(x_t)`
        `[batch, gates * units]`. Returns `(output [batch, units], new_states)`."""
        raise NotImplementedError

    def call(self, inputs, states):
        return self.step(inputs, list(states))

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
        }


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
