"""Small serialisable layers that keep a model's inputs and outputs in raw series units.

They replace the course's `Lambda` layers (which do not serialise portably), so an
exported model takes raw values and answers raw values, with the scaling in its graph.
"""

from __future__ import annotations

import keras
from keras import ops

ANCHORS = ("last", "mean", "none")


@keras.saving.register_keras_serializable(package="seqcast")
class ScaleWindow(keras.layers.Layer):
    """Per-window normalisation.

    `[batch, time]` raw -> (`[batch, time, 1]` scaled, anchor `[batch, 1]`).

    Each window is shifted by its anchor (its last value, its mean, or a fixed `offset`)
    and divided by `scale` (the training part's standard deviation). On a trending series
    the anchor is what keeps windows from the validation part inside the range the model
    saw in training. Runs in float32 whatever the global policy.
    """

    def __init__(self, scale: float = 1.0, anchor: str = "last", offset: float = 0.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if anchor not in ANCHORS:
            raise ValueError(f"anchor must be one of {ANCHORS}, not {anchor!r}")
        self.scale = float(scale)
        self.anchor = anchor
        self.offset = float(offset)

    def call(self, window):
        window = ops.cast(window, "float32")
        if self.anchor == "last":
            anchor = window[:, -1:]
        elif self.anchor == "mean":
            anchor = ops.mean(window, axis=1, keepdims=True)
        else:
            anchor = ops.full_like(window[:, -1:], self.offset)
        scaled = (window - anchor) / self.scale
        return ops.expand_dims(scaled, -1), anchor

    def compute_output_shape(self, input_shape):
        return (*input_shape, 1), (input_shape[0], 1)

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "anchor": self.anchor,
            "offset": self.offset,
        }


@keras.saving.register_keras_serializable(package="seqcast")
class UnscaleForecast(keras.layers.Layer):
    """Inverse of `ScaleWindow` for the forecast.

    `(forecast [batch, 1], anchor [batch, 1])` -> raw forecast `[batch, 1]`.
    """

    def __init__(self, scale: float = 1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, inputs):
        forecast, anchor = inputs
        return ops.cast(forecast, "float32") * self.scale + ops.cast(anchor, "float32")

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="seqcast")
class SeasonalChannels(keras.layers.Layer):
    """Align this year's recent values with last year's at the same phase.

    `[batch, time, 1]` scaled window -> `[batch, recent, leads + 2]`, `time >= recent +
    period - 1`. Step `i` (time `u = t - recent + i`, `t` the forecast's time) holds `x[u]`
    and last year's `x[u - period + 1 + j]` for `j = 0..leads`: at its last step the
    recurrence sees last year's value at the forecast's own phase and the `leads` values
    after it, so a seasonal jump is visible a year ahead without a recurrence over a
    whole period. `leads <= period - 2`: lead `period - 1` is this year's latest value,
    and any further lead would be the future.
    """

    def __init__(self, recent: int = 20, period: int = 365, leads: int = 10, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.recent, self.period, self.leads = int(recent), int(period), int(leads)
        if self.period < 2 or not 0 <= self.leads <= self.period - 2:
            raise ValueError(
                f"SeasonalChannels needs period >= 2 and 0 <= leads <= period - 2, "
                f"not period {self.period} and leads {self.leads}"
            )

    @property
    def window_size(self) -> int:
        """The shortest window this layer can read."""
        return self.recent + self.period - 1

    def call(self, scaled):
        channels = [scaled[:, -self.recent :, :]]
        for lead in range(self.leads + 1):
            start = -(self.recent + self.period - 1 - lead)
            stop = -(self.period - 1 - lead)
            channels.append(scaled[:, start : stop if stop < 0 else None, :])
        return ops.concatenate(channels, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.recent, self.leads + 2)

    def get_config(self):
        return {
            **super().get_config(),
            "recent": self.recent,
            "period": self.period,
            "leads": self.leads,
        }


@keras.saving.register_keras_serializable(package="seqcast")
class LastSteps(keras.layers.Layer):
    """The last `count` raw values of a window, centred on the training part's mean and
    divided by its standard deviation: `[batch, time]` -> `[batch, count]`, `time >= count`.

    What a linear autoregression reads. Not anchored on the window's last value, unlike the
    recurrence's inputs: a mean-reverting series needs its level, and an anchored linear
    model could only express coefficients that sum to one.
    """

    def __init__(self, count: int = 20, scale: float = 1.0, offset: float = 0.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.count, self.scale, self.offset = int(count), float(scale), float(offset)

    def call(self, window):
        return (ops.cast(window[:, -self.count :], "float32") - self.offset) / self.scale

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.count)

    def get_config(self):
        config = {"count": self.count, "scale": self.scale, "offset": self.offset}
        return {**super().get_config(), **config}
