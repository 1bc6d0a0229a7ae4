"""The serving graph: a Keras forecaster wrapped in the two signatures of the export contract.

The model handed in maps raw series values `[batch, time]` float32 to the raw next value
`[batch, 1]` (scaling lives inside the model). The signatures feed it the last
`window_size` values of their input:

- `serving_default`: `window [batch, time]` -> `{"forecast": [batch, 1]}`
- `forecast`: `series [batch, time]`, `horizon` int32 scalar -> `{"forecast": [batch, horizon]}`,
  each prediction appended to the window and fed back, in a `tf.while_loop` in the graph.
  With calibration residuals (export/intervals.py) it also takes the optional `coverage`
  (float32 scalar, default 0.9: a `SignatureDef` default, so a request may leave it out) and
  returns `lower` and `upper` `[batch, horizon]`, the conformal band around the forecast.

Bad input is rejected by the graph itself (INVALID_ARGUMENT), because a served model has no
Python around it: a row shorter than the window, a non-finite value, a horizon below 1, a
coverage outside (0, 1).
"""

from __future__ import annotations

import contextlib

import numpy as np
import tensorflow as tf

from export.errors import ExportError, first_line
from export.intervals import DEFAULT_COVERAGE, band_graph, check_residuals

SERVING_DEFAULT = "serving_default"
FORECAST = "forecast"
OUTPUT_KEY = "forecast"
BAND_KEYS = ("lower", "upper")
COVERAGE = "coverage"

# Input and output names of each signature: the contract clients rely on. `coverage`,
# `lower` and `upper` belong to `forecast` only when the model was calibrated.
SIGNATURE_INPUTS = {
    SERVING_DEFAULT: {"window": tf.float32},
    FORECAST: {"series": tf.float32, "horizon": tf.int32},
}
BAND_INPUTS = {COVERAGE: tf.float32}


def signature_outputs(signature: str, with_band: bool) -> tuple[str, ...]:
    """The output names of `signature`, with or without the interval band."""
    return (OUTPUT_KEY, *BAND_KEYS) if with_band and signature == FORECAST else (OUTPUT_KEY,)


@contextlib.contextmanager
def cpu_servable(model):
    """Trace `model` on the non-cuDNN path; yields a note saying what was done.

    Keras' LSTM and GRU pick the fused `CudnnRNN*` kernels whenever a GPU is visible at trace
    time, and no CPU server can run those ops. Setting `use_cudnn=False` for the duration
    of tracing makes them emit the standard-op loop instead; the weights are the same.
    """
    layers = [
        layer
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if getattr(layer, "use_cudnn", False) is not False
    ]
    saved = [(layer, layer.use_cudnn) for layer in layers]
    for layer in layers:
        layer.use_cudnn = False
    if layers:
        names = ", ".join(layer.name for layer in layers)
        note = f"forced the non-cuDNN path of {len(layers)} Keras layer(s) ({names}) while tracing"
    else:
        note = "no cuDNN-capable layers: the model was traced as it is"
    try:
        yield note
    finally:
        for layer, value in saved:
            layer.use_cudnn = value


def _checked_rows(values: tf.Tensor, window_size: int, name: str) -> tf.Tensor:
    """`values [batch, time]`, verified to hold >= window_size finite values a row."""
    time = tf.shape(values)[1]
    long_enough = tf.debugging.Assert(
        time >= window_size,
        [f"`{name}` needs at least {window_size} values per row (the trained window), got", time],
        name=f"{name}_length_check",
    )
    with tf.control_dependencies([long_enough]):
        return tf.debugging.check_numerics(
            values, f"`{name}` must hold finite values only (no NaN or Inf)"
        )


def _last_window(values: tf.Tensor, window_size: int) -> tf.Tensor:
    """`[batch, time]` -> the last `window_size` values `[batch, window_size]` (static shape
    left as `[None, None]`, so nothing in the graph depends on a fixed time length)."""
    return values[:, tf.shape(values)[1] - window_size :]


def _tf_variable(variable) -> tf.Variable:
    """The `tf.Variable` behind a Keras 3 variable (or the variable itself)."""
    inner = getattr(variable, "_value", None)
    return inner if isinstance(inner, tf.Variable) else variable


def _checked_horizon(horizon: tf.Tensor) -> tf.Tensor:
    """`horizon`, once the graph has checked it is at least 1 (INVALID_ARGUMENT otherwise)."""
    horizon_ok = tf.debugging.Assert(
        horizon >= 1, ["`horizon` must be at least 1, got", horizon], name="horizon_check"
    )
    with tf.control_dependencies([horizon_ok]):
        return tf.identity(horizon)


def build_serving_module(model, window_size: int, residuals=None) -> tuple[tf.Module, dict]:
    """Wrap `model` in a `tf.Module` holding its variables and the two signature functions.

    `residuals` (`[n, H]`, optional): calibration residuals; with them the `forecast`
    signature takes `coverage` and returns the band. Returns `(module, signatures)` ready for
    `tf.saved_model.save(module, path, signatures)`. The Keras model itself is not tracked
    (only its variables): the SavedModel holds the traced graph and nothing that needs our
    Python, or Keras, to load.
    """
    if not isinstance(window_size, int) or isinstance(window_size, bool) or window_size < 1:
        raise ExportError(f"window_size must be a positive integer, got {window_size!r}")
    if residuals is not None:
        try:
            residuals = check_residuals(residuals)
        except ValueError as error:
            raise ExportError(str(error)) from error

    def predict(window: tf.Tensor) -> tf.Tensor:
        """`window [batch, window_size]` -> next value `[batch, 1]` float32."""
        next_value = model(window, training=False)
        shape = next_value.shape
        if shape.rank != 2 or shape[1] not in (None, 1):
            raise ExportError(f"the model must return [batch, 1], it returns {shape}")
        # Under a mixed policy the last layer may still hand back float16.
        return tf.reshape(tf.cast(next_value, tf.float32), [-1, 1])

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="window")])
    def serve(window):
        window = _checked_rows(window, window_size, "window")
        return {OUTPUT_KEY: predict(_last_window(window, window_size))}

    def fed_back(series, steps):
        """`[batch, steps]`: each prediction appended to the window and fed back; `steps`
        from `_checked_horizon`."""
        series = _checked_rows(series, window_size, "series")
        # One row per step, [batch] each; stacked and transposed to [batch, horizon] at the end.
        predictions = tf.TensorArray(tf.float32, size=steps, element_shape=tf.TensorShape([None]))

        def step(index, window, predictions):
            next_value = predict(window)  # [batch, 1]
            predictions = predictions.write(index, next_value[:, 0])
            window = tf.concat([window[:, 1:], next_value], axis=1)
            return index + 1, window, predictions

        _, _, predictions = tf.while_loop(
            lambda index, window, predictions: index < steps,
            step,
            (tf.constant(0), _last_window(series, window_size), predictions),
            shape_invariants=(
                tf.TensorShape([]),
                tf.TensorShape([None, None]),
                tf.TensorShape(None),
            ),
            maximum_iterations=steps,
        )
        return tf.transpose(predictions.stack())

    series_spec = tf.TensorSpec([None, None], tf.float32, name="series")
    horizon_spec = tf.TensorSpec([], tf.int32, name="horizon")
    if residuals is None:

        @tf.function(input_signature=[series_spec, horizon_spec])
        def forecast(series, horizon):
            return {OUTPUT_KEY: fed_back(series, _checked_horizon(horizon))}

    else:
        # Sorted once here, so the graph only gathers the rank it needs.
        sorted_residuals = tf.constant(np.sort(residuals, axis=0), tf.float32)

        @tf.function(
            input_signature=[series_spec, horizon_spec, tf.TensorSpec([], tf.float32, COVERAGE)]
        )
        def forecast(series, horizon, coverage=tf.constant(DEFAULT_COVERAGE, tf.float32)):
            # The Python default becomes the SignatureDef's default: a request may leave
            # `coverage` out, and TF Serving (and ours) feeds 0.9.
            horizon = _checked_horizon(horizon)  # before the loop and the band both read it
            values = fed_back(series, horizon)
            half_width = band_graph(sorted_residuals, coverage, horizon)[None, :]
            return {OUTPUT_KEY: values, "lower": values - half_width, "upper": values + half_width}

    module = tf.Module(name="seqcast_forecaster")
    # The SavedModel saves what the module tracks: the model's variables, not the model.
    # Keras variables are tracked through the tf.Variable they wrap: tracking the wrapper
    # makes the saver write a copy that the TF1 session loader restores into a variable
    # the graph never reads.
    module.model_variables = [_tf_variable(variable) for variable in model.variables]
    module.serve = serve
    module.forecast = forecast
    try:
        serve_function = serve.get_concrete_function()
        forecast.get_concrete_function()  # traced here, so a bad model fails here
    except ExportError:
        raise
    except Exception as error:  # the model does not follow the contract
        raise ExportError(
            f"the model cannot be traced on float32 [batch, time] input: "
            f"{type(error).__name__}: {first_line(error)}"
        ) from error
    # `forecast` goes in as the tf.function itself: only then does the SignatureDef keep
    # its default `coverage`.
    return module, {SERVING_DEFAULT: serve_function, FORECAST: forecast}
