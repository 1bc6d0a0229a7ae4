"""GRUCell: update, reset and candidate gates (in that order, z r h), both reset modes."""

from __future__ import annotations

import keras
import tensorflow as tf

from cells.cell import GatedCell


@keras.saving.register_keras_serializable(package="seqcast")
class GRUCell(GatedCell):
    """The GRU cell, weight for weight `keras.layers.GRUCell`.

    Weights: `kernel` `[features, 3 units]`, `recurrent_kernel` `[units, 3 units]`, gate
    blocks z, r, h. `bias` is `[2, 3 units]` (input bias, recurrent bias) when
    `reset_after=True` (the default, cuDNN's form) or `[3 units]` when False.

        z = σ(x Wz + h Uz + b)      r = σ(x Wr + h Ur + b)
        reset_after=True:   ĥ = tanh(x Wh + bx + r ⊙ (h Uh + bh))
        reset_after=False:  ĥ = tanh(x Wh + b + (r ⊙ h) Uh)
        h' = z h + (1 - z) ĥ
    """

    def __init__(self, units: int, *, reset_after: bool = True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = bool(reset_after)

    def build(self, input_shape):
        self.add_kernels(input_shape[-1], gates=3)
        units = self.units
        self.bias = None
        if self.use_bias:
            shape = (2, 3 * units) if self.reset_after else (3 * units,)
            self.bias = self.add_weight(shape=shape, name="bias", initializer=self.bias_initializer)

    def step(self, x_t, states):
        input_bias, recurrent_bias = self._biases()  # read once a step
        return self._recurrent(self._project(x_t, input_bias), states, recurrent_bias)

    def project_inputs(self, x):
        return self._project(x, self._biases()[0])

    def recurrent_step(self, projected_t, states):
        return self._recurrent(projected_t, states, self._biases()[1])

    def _biases(self):
        """`(input bias, recurrent bias)`, either None when there is none."""
        if self.bias is None:
            return None, None
        if self.reset_after:
            input_bias, recurrent_bias = tf.unstack(tf.convert_to_tensor(self.bias))
            return input_bias, recurrent_bias
        return self.bias, None

    def _project(self, x, input_bias):
        x_proj = tf.matmul(x, self.kernel)
        if input_bias is not None:
            x_proj = tf.nn.bias_add(x_proj, input_bias)  # the op Keras uses: gradients round alike
        return x_proj

    def _recurrent(self, x_proj, states, recurrent_bias):
        (h_previous,) = states
        units = self.units
        x_z, x_r, x_h = tf.split(x_proj, 3, axis=-1)

        if self.reset_after:
            # One matmul for all three gates; the reset gate scales h Uh + bh afterwards.
            h_proj = tf.matmul(h_previous, self.recurrent_kernel)
            if recurrent_bias is not None:
                h_proj = h_proj + recurrent_bias
            h_z, h_r, h_h = tf.split(h_proj, 3, axis=-1)
        else:
            h_proj = tf.matmul(h_previous, self.recurrent_kernel[:, : 2 * units])
            h_z, h_r = tf.split(h_proj, 2, axis=-1)

        z = self.recurrent_activation(x_z + h_z)
        r = self.recurrent_activation(x_r + h_r)
        if self.reset_after:
            candidate_recurrent = r * h_h
        else:
            # The reset gate scales h before the candidate's matmul.
            candidate_recurrent = tf.matmul(r * h_previous, self.recurrent_kernel[:, 2 * units :])
        candidate = self.activation(x_h + candidate_recurrent)
        h = z * h_previous + (1 - z) * candidate
        return h, [h]

    def get_config(self):
        return {
            **super().get_config(),
            "reset_after": self.reset_after,
        }
