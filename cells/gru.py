"""GRUCell: update, reset and candidate gates (in that order, z r h), both reset modes."""

from __future__ import annotations

import keras
import tensorflow as tf

from cells.cell import GatedCell, add_bias, input_masks, masked_matmul, recurrent_masks


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

    Dropout (training only) multiplies x by one mask for all gates, or, with
    `recurrent_dropout`, x and h by one mask per gate z, r, h (Keras's `implementation=1`):
    `x Wg` becomes `(x * m_g) Wg` and `h Ug` becomes `(h * r_g) Ug` (`(r ⊙ h * r_h) Uh`).
    """

    gates = 3

    def __init__(self, units: int, *, reset_after: bool = True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = bool(reset_after)

    def build(self, input_shape):
        self.add_kernels(input_shape[-1], gates=self.gates)
        units = self.units
        self.bias = None
        if self.use_bias:
            shape = (2, 3 * units) if self.reset_after else (3 * units,)
            self.bias = self.add_weight(shape=shape, name="bias", initializer=self.bias_initializer)

    def step(self, x_t, states, masks=None):
        input_bias, recurrent_bias = self._biases()  # read once a step
        projected = self._project(x_t, input_bias, masks)
        return self._recurrent(projected, states, recurrent_bias, masks)

    def project_inputs(self, x, masks=None):
        return self._project(x, self._biases()[0], masks)

    def recurrent_step(self, projected_t, states, masks=None):
        return self._recurrent(projected_t, states, self._biases()[1], masks)

    def _biases(self):
        """`(input bias, recurrent bias)`, either None when there is none."""
        if self.bias is None:
            return None, None
        if self.reset_after:
            input_bias, recurrent_bias = tf.unstack(tf.convert_to_tensor(self.bias))
            return input_bias, recurrent_bias
        return self.bias, None

    def _project(self, x, input_bias, masks):
        x_proj = masked_matmul(x, self.kernel, input_masks(masks))
        return add_bias(x_proj, input_bias, self.per_gate)  # the op Keras uses

    def _recurrent(self, x_proj, states, recurrent_bias, masks):
        (h_previous,) = states
        units = self.units
        h_masks = recurrent_masks(masks)  # None, one mask, or one per gate z, r, h
        x_z, x_r, x_h = tf.split(x_proj, 3, axis=-1)

        if self.reset_after:
            # One matmul for all three gates; the reset gate scales h Uh + bh afterwards.
            h_proj = masked_matmul(h_previous, self.recurrent_kernel, h_masks)
            if recurrent_bias is not None:
                h_proj = h_proj + recurrent_bias
            h_z, h_r, h_h = tf.split(h_proj, 3, axis=-1)
        else:
            z_r_masks = None if h_masks is None else h_masks[:2]
            h_proj = masked_matmul(h_previous, self.recurrent_kernel[:, : 2 * units], z_r_masks)
            h_z, h_r = tf.split(h_proj, 2, axis=-1)

        z = self.recurrent_activation(x_z + h_z)
        r = self.recurrent_activation(x_r + h_r)
        if self.reset_after:
            candidate_recurrent = r * h_h
        else:
            # The reset gate scales h before the candidate's matmul.
            h_kept = h_previous if h_masks is None else h_previous * h_masks[-1]
            candidate_recurrent = tf.matmul(r * h_kept, self.recurrent_kernel[:, 2 * units :])
        candidate = self.activation(x_h + candidate_recurrent)
        h = z * h_previous + (1 - z) * candidate
        return h, [h]

    def get_config(self):
        return {
            **super().get_config(),
            "reset_after": self.reset_after,
        }
