"""Fixed dropout masks for a training-mode comparison: each pair of cells (ours, Keras's)
gets the same masks, through our `Cell.dropout_masks` hook and Keras's
`DropoutRNNCell.get_dropout_mask` / `get_recurrent_dropout_mask`, so that outputs and
gradients can be compared exactly with dropout on."""

from __future__ import annotations

import numpy as np


def mask_count(ours_cell, keras_cell) -> int:
    """How many masks per tensor the cells use: one, or one per gate where Keras runs its
    `implementation=1` (LSTM and GRU with `recurrent_dropout`). Raises if they disagree."""
    count = ours_cell.gates if ours_cell.recurrent_dropout else 1
    keras_count = getattr(keras_cell, "dropout_mask_count", None) or 1
    if keras_count != count:
        raise AssertionError(f"dropout mask counts differ: ours {count}, keras {keras_count}")
    return count


def draw_masks(rng: np.random.Generator, rate: float, count: int, shape, dtype):
    """`count` inverted-dropout masks of `shape` (0 or `1 / (1 - rate)`) as constants of
    `dtype`, or None when `rate` is 0."""
    import tensorflow as tf

    if not rate:
        return None
    return tuple(
        tf.constant((rng.random(shape) >= rate) / (1.0 - rate), dtype=dtype) for _ in range(count)
    )


def fix_dropout_masks(ours_cell, keras_cell, batch: int, rng: np.random.Generator) -> None:
    """Makes both built cells use the same fixed masks, `[batch, features]` for the inputs and
    `[batch, units]` for the state, whenever they run in training mode."""
    from cells.cell import DropoutMasks

    count = mask_count(ours_cell, keras_cell)
    dtype = ours_cell.compute_dtype
    features = ours_cell.kernel.shape[0]
    inputs = draw_masks(rng, ours_cell.dropout, count, (batch, features), dtype)
    recurrent = draw_masks(rng, ours_cell.recurrent_dropout, count, (batch, ours_cell.units), dtype)
    masks = DropoutMasks(inputs, recurrent)
    listed = getattr(keras_cell, "dropout_mask_count", None) is not None

    def keras_form(fixed):
        if fixed is None:
            return None
        return list(fixed) if listed else fixed[0]

    ours_cell.dropout_masks = lambda inputs, states, training=False: masks if training else None
    keras_cell.get_dropout_mask = lambda step_input: keras_form(inputs)
    keras_cell.get_recurrent_dropout_mask = lambda step_input: keras_form(recurrent)
