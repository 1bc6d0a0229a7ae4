"""LSTMCell: input, forget, candidate and output gates (in that order, i f c o)."""

from __future__ import annotations

import keras
import tensorflow as tf

from cells.cell import GatedCell, add_bias, input_masks, masked_matmul, recurrent_masks


@keras.saving.register_keras_serializable(package="seqcast")
class LSTMCell(GatedCell):
    """The LSTM cell, weight for weight `keras.layers.LSTMCell`.

    Weights: `kernel` `[features, 4 units]`, `recurrent_kernel` `[units, 4 units]`,
    `bias` `[4 units]`, gate blocks in the order i, f, c, o. States `[h, c]`, output h.

        i = σ(x Wi + h Ui + bi)     f = σ(x Wf + h Uf + bf)
        c' = f c + i tanh(x Wc + h Uc + bc)
        o = σ(x Wo + h Uo + bo)     h' = o tanh(c')

    `unit_forget_bias` (default True) starts the forget bias at one, as Keras does. Dropout
    (training only) multiplies x by one mask for all gates, or, with `recurrent_dropout`,
    x and h by one mask per gate (Keras's `implementation=1`): `x_g = (x * m_g) W_g + b_g`,
    `z_g = x_g + (h * r_g) U_g`.
    """

    num_states = 2
    gates = 4

    def __init__(self, units: int, *, unit_forget_bias: bool = True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    def build(self, input_shape):
        self.add_kernels(input_shape[-1], gates=self.gates)
        units = self.units
        self.bias = None
        if self.use_bias:
            bias_initializer = self.bias_initializer
            if self.unit_forget_bias:

                def bias_initializer(_shape, *args, **kwargs):
                    # [b_i, 1, b_c, b_o]: a forget gate that starts open.
                    return keras.ops.concatenate(
                        [
                            self.bias_initializer((units,), *args, **kwargs),
                            keras.initializers.get("ones")((units,), *args, **kwargs),
                            self.bias_initializer((2 * units,), *args, **kwargs),
                        ]
                    )

            self.bias = self.add_weight(
                shape=(4 * units,), name="bias", initializer=bias_initializer
            )

    def step(self, x_t, states, masks=None):
        if self.per_gate:
            # Keras's implementation=1 (what recurrent_dropout selects): (x W + b) + h U.
            return self.recurrent_step(self.project_inputs(x_t, masks), states, masks)
        # Keras's association, BiasAdd(x W + h U, b), so rounding agrees too.
        h_previous, c_previous = states
        z = masked_matmul(x_t, self.kernel, input_masks(masks))
        z = z + tf.matmul(h_previous, self.recurrent_kernel)
        if self.bias is not None:
            z = tf.nn.bias_add(z, self.bias)  # the op Keras uses, so gradients round alike
        return self._gates(z, c_previous)

    def project_inputs(self, x, masks=None):
        z = masked_matmul(x, self.kernel, input_masks(masks))
        return add_bias(z, self.bias, self.per_gate)

    def recurrent_step(self, projected_t, states, masks=None):
        # (x W + b) + h U: one op fewer a step than `step`, whose association it changes,
        # so the last bit may round differently (see `Recurrent.project_inputs_ahead`).
        h_previous, c_previous = states
        h_projected = masked_matmul(h_previous, self.recurrent_kernel, recurrent_masks(masks))
        return self._gates(projected_t + h_projected, c_previous)

    def _gates(self, z, c_previous):
        """`z` `[batch, 4 units]`, the gates' pre-activations -> `(h, [h, c])`."""
        z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        c = f * c_previous + i * self.activation(z_c)
        o = self.recurrent_activation(z_o)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {
            **super().get_config(),
            "unit_forget_bias": self.unit_forget_bias,
        }
