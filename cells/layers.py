"""SimpleRNN, LSTM and GRU: a cell inside `Recurrent`, with the built-ins' constructor arguments.

`cells.LSTM(32, return_sequences=True)` is `keras.layers.LSTM(32, return_sequences=True)`
computed by our cell and time loop.
"""

from __future__ import annotations

import keras

from cells.gru import GRUCell
from cells.lstm import LSTMCell
from cells.recurrent import Recurrent
from cells.simple_rnn import SimpleRNNCell

# Keras layer arguments the loop keeps; every other argument goes to the cell.
_LAYER_ARGUMENTS = ("name", "dtype", "trainable")


class _CellLayer(Recurrent):
    """A `Recurrent` that builds its own cell from flat, Keras-style arguments."""

    cell_class: type = None

    def __init__(
        self,
        units: int,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        unroll: bool | None = None,
        zero_output_for_mask: bool = False,
        **kwargs,
    ):
        layer_kwargs = {key: kwargs.pop(key) for key in _LAYER_ARGUMENTS if key in kwargs}
        cell_kwargs = dict(kwargs)
        cell_kwargs.pop("cell", None)  # never serialised for these, tolerated on load
        cell = self.cell_class(units, dtype=layer_kwargs.get("dtype"), **cell_kwargs)
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            **layer_kwargs,
        )

    def get_config(self):
        config = super().get_config()
        cell_config = self.cell.get_config()
        for key in ("name", "dtype", "trainable"):
            cell_config.pop(key, None)
        config.pop("cell")
        return {**config, **cell_config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="seqcast")
class SimpleRNN(_CellLayer):
    """`keras.layers.SimpleRNN` with our cell: `SimpleRNN(units, activation="tanh",
    use_bias=True, kernel_initializer=..., recurrent_initializer=..., bias_initializer=...,
    dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False,
    return_state=False, go_backwards=False, unroll=None)`. `dropout` drops inputs,
    `recurrent_dropout` the previous state, with masks drawn once per sequence, in training
    only (Keras 3's semantics, see `cells.Cell`)."""

    cell_class = SimpleRNNCell


@keras.saving.register_keras_serializable(package="seqcast")
class LSTM(_CellLayer):
    """`keras.layers.LSTM` with our cell; adds `recurrent_activation="sigmoid"` and
    `unit_forget_bias=True` to SimpleRNN's arguments."""

    cell_class = LSTMCell


@keras.saving.register_keras_serializable(package="seqcast")
class GRU(_CellLayer):
    """`keras.layers.GRU` with our cell; adds `recurrent_activation="sigmoid"` and
    `reset_after=True` to SimpleRNN's arguments."""

    cell_class = GRUCell
