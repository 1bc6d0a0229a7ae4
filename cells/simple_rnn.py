"""SimpleRNNCell: h_t = activation(x_t W + h_{t-1} U + b)."""

from __future__ import annotations

import keras
import tensorflow as tf

from cells.cell import Cell, input_masks, masked_matmul, recurrent_masks


@keras.saving.register_keras_serializable(package="seqcast")
class SimpleRNNCell(Cell):
    """The Elman cell, weight for weight `keras.layers.SimpleRNNCell`.

    Weights: `kernel` `[features, units]`, `recurrent_kernel` `[units, units]`,
    `bias` `[units]`. One state, equal to the output. With dropout (training only):
    `h_t = activation((x_t * m) W + b + (h_{t-1} * r) U)`, one mask each per sequence.
    """

    def build(self, input_shape):
        self.add_kernels(input_shape[-1], gates=self.gates)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.units,), name="bias", initializer=self.bias_initializer
            )

    # `step` is `recurrent_step(project_inputs(x_t))`: the same ops and association as Keras,
    # BiasAdd(x W, b) + h U, so rounding agrees too (BiasAdd's gradient kernel rounds
    # differently from an add's under float16).
    def project_inputs(self, x, masks=None):
        z = masked_matmul(x, self.kernel, input_masks(masks))
        return tf.nn.bias_add(z, self.bias) if self.bias is not None else z

    def recurrent_step(self, projected_t, states, masks=None):
        (h_previous,) = states
        z = projected_t + masked_matmul(h_previous, self.recurrent_kernel, recurrent_masks(masks))
        h = self.activation(z) if self.activation is not None else z
        return h, [h]
