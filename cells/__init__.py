"""seqcast's recurrent cells, written by hand and equivalent to `keras.layers.*`.

Cells know one time step (`SimpleRNNCell`, `LSTMCell`, `GRUCell`); `Recurrent` drives any
cell over time; `Bidirectional` runs a `Recurrent` both ways. `SimpleRNN`, `LSTM` and `GRU`
take the built-ins' constructor arguments. Everything is a registered Keras serialisable.
"""

from cells.bidirectional import Bidirectional
from cells.cell import Cell, DropoutMasks
from cells.gru import GRUCell
from cells.layers import GRU, LSTM, SimpleRNN
from cells.lstm import LSTMCell
from cells.recurrent import AUTO_UNROLL_MAX_STEPS, Recurrent, automatic_unroll
from cells.simple_rnn import SimpleRNNCell

__all__ = [
    "AUTO_UNROLL_MAX_STEPS",
    "Bidirectional",
    "Cell",
    "DropoutMasks",
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "Recurrent",
    "SimpleRNN",
    "SimpleRNNCell",
    "automatic_unroll",
]
