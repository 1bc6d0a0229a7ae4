"""From a series to model inputs: the training part's normalisation and the
`(window [batch, window_size], next_value [batch])` pairs, in numpy or as a `tf.data` pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Normalization:
    """Mean and standard deviation of the training part only (no validation leakage)."""

    mean: float
    std: float

    @classmethod
    def fit(cls, train: np.ndarray) -> Normalization:
        std = float(np.std(train))
        return cls(float(np.mean(train)), std if std > 0 else 1.0)

    def apply(self, series: np.ndarray) -> np.ndarray:
        return (series - self.mean) / self.std

    def invert(self, scaled: np.ndarray) -> np.ndarray:
        return scaled * self.std + self.mean


def window_pairs(series: np.ndarray, window_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every `(window [n, window_size], next_value [n])` pair, in order, in plain numpy."""
    series = np.asarray(series)
    count = len(series) - window_size
    if count < 1:
        return np.zeros((0, window_size), series.dtype), np.zeros((0,), series.dtype)
    index = np.arange(window_size)[None, :] + np.arange(count)[:, None]
    return series[index], series[window_size : window_size + count]


def windowed_dataset(
    series: np.ndarray,
    window_size: int,
    batch_size: int,
    shuffle_buffer: int | None = 1000,
    seed: int | None = None,
):
    """The course's `windowed_dataset`: windows of `window_size + 1` with shift 1,
    shuffled, split into `(window, next_value)`, batched and prefetched.

    `shuffle_buffer=None` keeps the order (for evaluation and exact comparisons).
    Yields `(float32 [batch, window_size], float32 [batch])`.
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(np.asarray(series, dtype="float32"))
    dataset = dataset.window(window_size + 1, shift=1, drop_remainder=True)
    dataset = dataset.flat_map(lambda window: window.batch(window_size + 1))
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)
    dataset = dataset.map(lambda window: (window[:-1], window[-1]))
    return dataset.batch(batch_size).prefetch(1)
