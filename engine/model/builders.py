"""The course's forecasters, built by name from our cells (or the Keras built-ins).

Every model maps raw series values `[batch, time]` to a raw next-value forecast
`[batch, 1]`: `ScaleWindow` -> recurrent stack -> `Dense(1)` -> `UnscaleForecast`. The time
dimension is left `None`, so a model trained on one window size still runs on any length.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from engine.errors import InputError
from engine.layers import ScaleWindow, SeasonalChannels, UnscaleForecast


@dataclass(frozen=True)
class ModelSpec:
    """Defaults of a named model; `--units`, `--layers`, `--window-size` override them."""

    units: int
    layers: int
    anchor: str  # how ScaleWindow centres each window
    description: str
    seasonal: bool = False  # reads last year's values: needs the period

    def default_window_size(self, period: int | None) -> int:
        return SEASONAL_RECENT + period - 1 if self.seasonal else 20


SEASONAL_RECENT, SEASONAL_LEADS = 20, 10
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
    "conv-lstm": ModelSpec(
        64, 2, "last", "causal Conv1D then stacked LSTM (the course's week-4 shape)"
    ),
}
CELLS = ("custom", "keras")


def recurrent_layers(cells: str):
    """`(SimpleRNN, LSTM, GRU, Bidirectional)` from our cells or from Keras."""
    if cells == "custom":
        import cells as ours

        return ours.SimpleRNN, ours.LSTM, ours.GRU, ours.Bidirectional
    if cells == "keras":
        layers = keras.layers
        return layers.SimpleRNN, layers.LSTM, layers.GRU, layers.Bidirectional
    raise InputError(f"--cells must be one of {', '.join(CELLS)}, not {cells!r}")


def build_model(
    name: str = "rnn",
    cells: str = "custom",
    units: int | None = None,
    layers: int | None = None,
    scale: float = 1.0,
    anchor: str | None = None,
    offset: float = 0.0,
    period: int | None = None,
) -> keras.Model:
    """Build model `name` on a `[batch, None]` input. `scale`/`anchor`/`offset` come from
    the training part (see `ScaleWindow`); the forecast comes back in raw units. A
    seasonal model needs the series' `period`."""
    if name not in MODELS:
        raise InputError(f"--model must be one of {', '.join(MODELS)}, not {name!r}")
    spec = MODELS[name]
    units = spec.units if units is None else units
    layers = spec.layers if layers is None else layers
    anchor = spec.anchor if anchor is None else anchor
    if units < 1 or layers < 1:
        raise InputError("--units and --layers must be at least 1")
    simple_rnn, lstm, gru, bidirectional = recurrent_layers(cells)

    window = keras.Input(shape=(None,), name="window", dtype="float32")
    hidden, anchor_value = ScaleWindow(scale, anchor, offset, name="scale_window")(window)
    if spec.seasonal:
        if not period or period < 2:
            raise InputError(
                f"--model {name} reads last year's values: give the series' --period "
                "(the course series has 365), or choose a model such as rnn"
            )
        hidden = SeasonalChannels(SEASONAL_RECENT, period, SEASONAL_LEADS, name="seasonal")(hidden)
    if name == "conv-lstm":
        hidden = keras.layers.Conv1D(
            units, kernel_size=3, padding="causal", activation="relu", name="conv"
        )(hidden)
    for index in range(layers):
        more = index < layers - 1  # every layer but the last returns the whole sequence
        layer_name = f"recurrent_{index}"
        if name == "rnn":
            layer = simple_rnn(units, return_sequences=more, name=layer_name)
        elif name in ("gru", "seasonal-gru"):
            layer = gru(units, return_sequences=more, name=layer_name)
        elif name == "bilstm":
            layer = bidirectional(lstm(units, return_sequences=more), name=layer_name)
        else:
            layer = lstm(units, return_sequences=more, name=layer_name)
        hidden = layer(hidden)
    # The last layer and the loss stay float32 under mixed precision.
    output = keras.layers.Dense(1, dtype="float32", name="output")(hidden)
    forecast = UnscaleForecast(scale, name="unscale_forecast")([output, anchor_value])
    return keras.Model(window, forecast, name=f"seqcast_{name.replace('-', '_')}")


def rebuild_with_custom_cells(
    model: keras.Model, name: str, units: int, layers: int
) -> keras.Model:
    """The same architecture built from our cells, with `model`'s weights copied across.

    A model of the Keras built-ins traced on a GPU carries `CudnnRNN*` ops, which a CPU
    server cannot run; our cells always trace to standard ops.
    """
    scale_layer = model.get_layer("scale_window")
    seasonal = [layer for layer in model.layers if isinstance(layer, SeasonalChannels)]
    rebuilt = build_model(
        name,
        "custom",
        units,
        layers,
        scale_layer.scale,
        scale_layer.anchor,
        scale_layer.offset,
        period=seasonal[0].period if seasonal else None,
    )
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def resolve_model_settings(config, series_period: int | None):
    """The config with the model's defaults filled in (window size, anchor, units, layers,
    period), so that config.toml records what was really built."""
    spec = MODELS[config.model]
    period = config.period or (series_period if spec.seasonal else None)
    if spec.seasonal and not period:
        raise InputError(
            f"--model {config.model} reads last year's values: give the series' --period "
            "(the course series has 365), or choose a model such as rnn"
        )
    window_size = config.window_size or spec.default_window_size(period)
    if spec.seasonal and window_size < spec.default_window_size(period):
        raise InputError(
            f"--model {config.model} needs --window-size of at least "
            f"{spec.default_window_size(period)} (the period plus {SEASONAL_RECENT - 1})"
        )
    return config.replace(
        window_size=window_size,
        period=period,
        anchor=config.anchor or spec.anchor,
        units=config.units or spec.units,
        layers=config.layers or spec.layers,
    )
