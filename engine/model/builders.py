"""The course's forecasters, built by name from our cells (or the Keras built-ins).

Every model maps raw series values `[batch, time]` to a raw next-value forecast
`[batch, 1]`: `ScaleWindow` -> recurrent stack -> `Dense(1)` -> `UnscaleForecast`. The time
dimension is left `None`, so a model trained on one window size still runs on any length.
"""

from __future__ import annotations

import keras

from engine.errors import InputError
from engine.model.scaling import LastSteps, ScaleWindow, SeasonalChannels, UnscaleForecast
from engine.model.specs import CELLS, MODELS, SEASONAL_RECENT, needs_period, seasonal_leads


def recurrent_layers(cell_kind: str):
    """`(SimpleRNN, LSTM, GRU, Bidirectional)` from our cells (`custom`) or Keras (`keras`)."""
    if cell_kind == "custom":
        import cells

        return cells.SimpleRNN, cells.LSTM, cells.GRU, cells.Bidirectional
    if cell_kind == "keras":
        layers = keras.layers
        return layers.SimpleRNN, layers.LSTM, layers.GRU, layers.Bidirectional
    raise InputError(f"--cells must be one of {', '.join(CELLS)}, not {cell_kind!r}")


def build_model(
    name: str = "rnn",
    cell_kind: str = "custom",
    units: int | None = None,
    layers: int | None = None,
    scale: float = 1.0,
    anchor: str | None = None,
    offset: float = 0.0,
    period: int | None = None,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    window_size: int | None = None,
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
    simple_rnn, lstm, gru, bidirectional = recurrent_layers(cell_kind)

    window = keras.Input(shape=(None,), name="window", dtype="float32")
    hidden, anchor_value = ScaleWindow(scale, anchor, offset, name="scale_window")(window)
    if spec.seasonal:
        if not period or period < 2:
            raise needs_period(name)
        leads = seasonal_leads(period)
        hidden = SeasonalChannels(SEASONAL_RECENT, period, leads, name="seasonal")(hidden)
    if name == "conv-lstm":
        hidden = keras.layers.Conv1D(
            units, kernel_size=3, padding="causal", activation="relu", name="conv"
        )(hidden)
    # Only rates above 0 are passed, so a model without dropout is built (and saved) as before.
    rates = {"dropout": dropout, "recurrent_dropout": recurrent_dropout}
    rates = {key: value for key, value in rates.items() if value}
    for index in range(layers):
        more = index < layers - 1  # every layer but the last returns the whole sequence
        layer_name = f"recurrent_{index}"
        if name == "rnn":
            layer = simple_rnn(units, return_sequences=more, name=layer_name, **rates)
        elif name in ("gru", "seasonal-gru", "ar-gru"):
            layer = gru(units, return_sequences=more, name=layer_name, **rates)
        elif name == "bilstm":
            layer = bidirectional(lstm(units, return_sequences=more, **rates), name=layer_name)
        else:
            layer = lstm(units, return_sequences=more, name=layer_name, **rates)
        hidden = layer(hidden)
    # The last layer and the loss stay float32 under mixed precision.
    output = keras.layers.Dense(1, dtype="float32", name="output")(hidden)
    if spec.linear:  # the autoregression carries the forecast, the recurrence corrects it
        lags = LastSteps(window_size or spec.window, scale, offset, name="last_steps")(window)
        linear = keras.layers.Dense(1, dtype="float32", name="linear_autoregression")(lags)
        output = keras.layers.Add(dtype="float32", name="output_sum")([output, linear])
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
    lags = [layer.count for layer in model.layers if isinstance(layer, LastSteps)]
    rebuilt = build_model(
        name,
        "custom",
        units,
        layers,
        scale_layer.scale,
        scale_layer.anchor,
        scale_layer.offset,
        period=seasonal[0].period if seasonal else None,
        window_size=lags[0] if lags else None,
    )
    rebuilt.set_weights(model.get_weights())
    return rebuilt
