"""The named models' defaults, as plain data: the config validates against them and the
run resolves them without importing Keras."""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import InputError


@dataclass(frozen=True)
class ModelSpec:
    """Defaults of a named model; `--units`, `--layers`, `--window-size` override them."""

    units: int
    layers: int
    anchor: str  # how ScaleWindow centres each window
    description: str
    seasonal: bool = False  # reads last year's values: needs the period
    linear: bool = False  # adds a linear autoregression on the window to the recurrence
    window: int = 20  # the default window of a non-seasonal model

    def default_window_size(self, period: int | None) -> int:
        return SEASONAL_RECENT + period - 1 if self.seasonal else self.window


SEASONAL_RECENT, SEASONAL_LEADS = 20, 10


def seasonal_leads(period: int) -> int:
    """How many of last year's values after the forecast's phase a seasonal model reads:
    `SEASONAL_LEADS`, fewer for a short period. Lead `period - 1` would be this year's
    latest value (already the recent channel) and any further one the future."""
    return max(0, min(SEASONAL_LEADS, period - 2))


MODELS = {
    "seasonal-gru": ModelSpec(
        48,
        2,
        "mean",
        "stacked GRU over the last 20 steps, each with last year's values at the same phase",
        seasonal=True,
    ),
    "rnn": ModelSpec(40, 2, "last", "stacked SimpleRNN (the course's week-3 model)"),
    "lstm": ModelSpec(64, 2, "last", "stacked LSTM"),
    "bilstm": ModelSpec(32, 2, "last", "stacked Bidirectional LSTM (the course's week-3 model)"),
    "gru": ModelSpec(64, 2, "last", "stacked GRU"),
    "ar-gru": ModelSpec(
        32,
        1,
        "last",
        "a linear autoregression on the window plus a GRU's correction (LSTNet's highway)",
        linear=True,
        window=30,
    ),
    "conv-lstm": ModelSpec(
        64, 2, "last", "causal Conv1D then stacked LSTM (the course's week-4 shape)"
    ),
}
CELLS = ("custom", "keras")


def needs_period(model: str) -> InputError:
    return InputError(
        f"--model {model} reads last year's values: give the series' --period "
        "(none was given or found; the course series has 365), or choose a model such as gru"
    )


def resolve_model_settings(config):
    """The config with the model's defaults filled in (window size, anchor, units, layers),
    so that config.toml records what was really built. `config.period` is resolved: 0 or
    None means no season."""
    spec = MODELS[config.model]
    period = config.period or None
    if spec.seasonal and not period:
        raise needs_period(config.model)
    window_size = config.window_size or spec.default_window_size(period)
    if spec.seasonal and window_size < spec.default_window_size(period):
        raise InputError(
            f"--model {config.model} needs --window-size of at least "
            f"{spec.default_window_size(period)} (the period plus {SEASONAL_RECENT - 1})"
        )
    return config.replace(
        window_size=window_size,
        anchor=config.anchor or spec.anchor,
        units=config.units or spec.units,
        layers=config.layers or spec.layers,
    )
