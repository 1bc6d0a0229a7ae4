"""What a run needs before its first step: the resolved config, data, precision, model,
optimizer. Shared by `engine train`, `engine lr-find` and `engine evaluate`, so the three
agree on the split, the selection slice, the scaling and the model.

The training part `series[:split]` ends with the selection slice `series[selection:split]`:
the model is fitted on windows whose targets lie before `selection`, the best epoch is
picked on the slice, and the validation part `series[split:]` is only reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.errors import InputError
from engine.series.load import load_series, split_index
from engine.series.windows import Normalization, window_pairs
from engine.training.config import TrainConfig

#: `--huber-delta` by default, in standard deviations of the training part's one-step changes.
#: Chosen on the training parts of the course series and the sunspots (docs/training.md): 0.1,
#: nearly the MAE the forecasts are judged by, beat 1.35 (the delta of 10 once used for the
#: course series) on both.
HUBER_DELTA_PER_STEP_STD = 0.1


@dataclass(frozen=True)
class RunData:
    """The series, its split and the selection and validation pairs, in raw units (float32)."""

    series: np.ndarray  # [time]
    split: int  # the validation part starts here
    selection: int  # the selection slice starts here (== split without one)
    description: str
    period: int | None
    normalization: Normalization  # of the training part only
    selection_windows: np.ndarray  # [selection pairs, window_size]
    selection_targets: np.ndarray  # [selection pairs]
    valid_windows: np.ndarray  # [461, window_size] on the course series
    valid_targets: np.ndarray  # [461]

    @property
    def train(self) -> np.ndarray:
        """What the model is fitted on: the training part before the selection slice."""
        return self.series[: self.selection]

    @property
    def train_pairs(self) -> int:
        return len(self.train) - self.valid_windows.shape[1]


def selection_start(split: int, fraction: float) -> int:
    return split - int(round(split * fraction))


def resolve_config(config: TrainConfig) -> TrainConfig:
    """Fill in what the flags left open, so that config.toml records what was really run:
    the period (the series' own, else inferred from the training part), the model (seasonal
    when there is a season), the model's defaults (window size, anchor, units, layers) and
    Huber's delta (scaled to the series)."""
    from engine.model.specs import MODELS, resolve_model_settings
    from engine.series.period import resolve_period

    config = config.validate()  # a known model before its defaults are looked up
    changes = {}
    if config.period is None or config.huber_delta is None:
        loaded = load_series(config.data, column=config.column, date_column=config.date_column)
        train = loaded.values[: split_index(len(loaded.values), config.split)]
        check_not_constant(train, loaded.description)
        if config.huber_delta is None:
            step_std = float(np.std(np.diff(train))) if len(train) > 2 else 0.0
            changes["huber_delta"] = float(f"{HUBER_DELTA_PER_STEP_STD * step_std:.4g}") or 1.0
        if config.period is None:
            changes["period"], changes["period_source"] = resolve_period(
                None, loaded.period, train, loaded.frequency
            )
    elif config.period_source is None:
        changes["period_source"] = resolve_period(config.period, None, None)[1]
    config = config.replace(**changes)
    if config.model is None:
        seasonal = bool(config.period)
        model = "seasonal-gru" if seasonal else "ar-gru"
        why = "with a season" if seasonal else "without a season (seasonal-gru needs one)"
        config = config.replace(model=model, model_source=f"{model}: the default {why}")
    elif config.model_source is None:
        config = config.replace(model_source=f"{config.model}: given")
    if MODELS[config.model].seasonal and not config.period:
        from engine.model.specs import needs_period

        raise needs_period(config.model)
    return resolve_model_settings(config)


def check_not_constant(train: np.ndarray, description: str) -> None:
    if len(train) and np.ptp(train) == 0:
        raise InputError(
            f"the training part of {description} is constant (every value is {train[0]:g}): "
            "there is nothing to learn"
        )


def prepare_data(config: TrainConfig) -> RunData:
    """Load and split the series; every window ends just before the value it forecasts."""
    loaded = load_series(config.data, column=config.column, date_column=config.date_column)
    series = loaded.values.astype("float32")
    split = split_index(len(series), config.split)
    selection = selection_start(split, config.selection_fraction)
    check_windowable(config, len(series), split, selection)
    check_not_constant(series[:split], loaded.description)
    window = config.window_size
    selection_windows, selection_targets = window_pairs(series[selection - window : split], window)
    valid_windows, valid_targets = window_pairs(series[split - window :], window)
    return RunData(
        series=series,
        split=split,
        selection=selection,
        description=loaded.description,
        # A resolved config's period wins, --period 0 (none) included; else the series' own.
        period=loaded.period if config.period is None else (config.period or None),
        normalization=Normalization.fit(series[:split]),
        selection_windows=selection_windows,
        selection_targets=selection_targets,
        valid_windows=valid_windows,
        valid_targets=valid_targets,
    )


def check_windowable(config: TrainConfig, length: int, split: int, selection: int) -> None:
    """The part the model is fitted on must hold one (window, next value) pair, and the
    validation part one value; the error names the shortest series that would do."""
    window = config.window_size
    if length - split < 1:
        raise InputError("the validation part is empty")
    if selection >= window + 1:
        return
    minimum = shortest_series(config)
    needs = f"; the series needs at least {minimum} points" if minimum else ""
    raise InputError(
        f"too few rows for one window: the series has {length} points, its training part "
        f"{split}, of which {selection} are fitted (the rest selects the best epoch), and a "
        f"window of {window} needs {window + 1}{needs} (or a smaller --window-size)"
    )


def shortest_series(config: TrainConfig, longest: int = 1_000_000) -> int | None:
    """The fewest points with which `config`'s split leaves one pair to fit (None if no
    length does, as with a fixed --split index that is too small)."""

    def fits(length: int) -> bool:
        try:
            split = split_index(length, config.split)
        except InputError:
            return False
        return selection_start(split, config.selection_fraction) >= config.window_size + 1

    low, high = config.window_size + 2, longest
    if not fits(high):
        return None
    while low < high:  # fits() turns true once and stays true as the series grows
        middle = (low + high) // 2
        low, high = (low, middle) if fits(middle) else (middle + 1, high)
    return low


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
        period=config.period or None,
        dropout=config.dropout,
        recurrent_dropout=config.recurrent_dropout,
        window_size=config.window_size,
    )


def steps_per_epoch(config: TrainConfig, data: RunData) -> int:
    return math.ceil(data.train_pairs / config.batch_size)


ADAM_EPSILON = 1e-7  # Keras's default, for a series whose standard deviation is 1


def gradient_unit(loss: str, series_std: float) -> float:
    """How the loss's gradients scale with the series' units: the loss is taken in series
    units, and the model's output is the series' standard deviation times what its layers
    compute, so a Huber (small delta) or squared loss's gradients scale with the standard
    deviation squared, an absolute loss's with the standard deviation once."""
    return series_std if loss == "mae" else series_std**2


def make_optimizer(
    config: TrainConfig, total_steps: int, learning_rate=None, series_std: float = 1.0
):
    """`keras.optimizers` Adam or SGD with the run's clipping and weight decay; a
    `LossScaleOptimizer` around it under mixed_float16. `learning_rate` overrides the
    configured schedule. `series_std`: the training part's standard deviation, for Adam's
    epsilon."""
    import keras

    if learning_rate is None:
        learning_rate = config.lr
        if config.lr_schedule == "cosine":
            learning_rate = keras.optimizers.schedules.CosineDecay(config.lr, max(total_steps, 1))
    options = {
        "clipnorm": config.clip_norm,
        "global_clipnorm": config.clip_global_norm,
        "clipvalue": config.clip_value,
        "weight_decay": config.weight_decay or None,
    }
    options = {key: value for key, value in options.items() if value is not None}
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate, momentum=config.momentum, **options)
    else:
        # Adam divides by the gradients' RMS plus epsilon, so epsilon must be in the gradients'
        # units, or the series' units decide how far Adam steps: with a fixed 1e-7, a series
        # in units where it moves by 1e-4 a step (prices in thousands, rates) barely trained.
        # In these units Adam steps the same on a series whatever its units.
        epsilon = ADAM_EPSILON * gradient_unit(config.loss, series_std)
        optimizer = keras.optimizers.Adam(learning_rate, epsilon=epsilon, **options)
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
