"""What a run needs before its first step: data, precision policy, model, optimizer.

Shared by `engine train`, `engine lr-find` and `engine evaluate`, so the three agree on
the data split, the scaling and the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.series.load import check_windowable, load_series, split_index
from engine.series.windows import Normalization, window_pairs
from engine.training.config import TrainConfig


@dataclass(frozen=True)
class RunData:
    """The series, its split and the validation pairs, in raw units (float32)."""

    series: np.ndarray  # [time]
    split: int
    description: str
    period: int | None
    normalization: Normalization  # of the training part only
    valid_windows: np.ndarray  # [461, window_size] on the course series
    valid_targets: np.ndarray  # [461]

    @property
    def train(self) -> np.ndarray:
        return self.series[: self.split]

    @property
    def train_pairs(self) -> int:
        return len(self.train) - self.valid_windows.shape[1]


def resolve_config(config: TrainConfig) -> TrainConfig:
    """Fill in the model's defaults (window size, anchor, units, layers, period); the
    series' own period (365 for the course series) serves seasonal models."""
    from engine.model.specs import MODELS, resolve_model_settings

    config = config.validate()  # a known model before its defaults are looked up
    series_period = None
    if MODELS[config.model].seasonal and not config.period:
        series_period = load_series(
            config.data, column=config.column, date_column=config.date_column
        ).period
    return resolve_model_settings(config, series_period)


def prepare_data(config: TrainConfig) -> RunData:
    """Load and split the series; validation windows end just before each validation point."""
    loaded = load_series(config.data, column=config.column, date_column=config.date_column)
    series = loaded.values.astype("float32")
    split = split_index(len(series), config.split)
    check_windowable(split, len(series) - split, config.window_size)
    windows, targets = window_pairs(series[split - config.window_size :], config.window_size)
    return RunData(
        series=series,
        split=split,
        description=loaded.description,
        period=loaded.period,
        normalization=Normalization.fit(series[:split]),
        valid_windows=windows,
        valid_targets=targets,
    )


def apply_precision(precision: str) -> None:
    """Set the global Keras dtype policy (variables stay float32 under mixed policies)."""
    import keras

    keras.config.set_dtype_policy(precision)


def build_run_model(config: TrainConfig, data: RunData):
    from engine.model.builders import build_model

    return build_model(
        config.model,
        config.cells,
        config.units,
        config.layers,
        scale=data.normalization.std,
        anchor=config.anchor,
        offset=data.normalization.mean,
        period=config.period,
    )


def steps_per_epoch(config: TrainConfig, data: RunData) -> int:
    return math.ceil(data.train_pairs / config.batch_size)


def make_optimizer(config: TrainConfig, total_steps: int, learning_rate=None):
    """`keras.optimizers` Adam or SGD with the run's clipping; a `LossScaleOptimizer`
    around it under mixed_float16. `learning_rate` overrides the configured schedule."""
    import keras

    if learning_rate is None:
        learning_rate = config.lr
        if config.lr_schedule == "cosine":
            learning_rate = keras.optimizers.schedules.CosineDecay(config.lr, max(total_steps, 1))
    clipping = {
        "clipnorm": config.clip_norm,
        "global_clipnorm": config.clip_global_norm,
        "clipvalue": config.clip_value,
    }
    clipping = {key: value for key, value in clipping.items() if value is not None}
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate, momentum=config.momentum, **clipping)
    else:
        optimizer = keras.optimizers.Adam(learning_rate, **clipping)
    if config.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def current_lr(optimizer) -> float:
    """The learning rate the next step will use (schedules evaluated at the step count)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    rate = inner.learning_rate
    if callable(rate):
        rate = rate(inner.iterations)
    return float(np.asarray(rate))
