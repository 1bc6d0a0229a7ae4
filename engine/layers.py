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
