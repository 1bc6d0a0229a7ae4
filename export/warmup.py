"""Example requests, and TF Serving's warmup file made of them.

`assets.extra/tf_serving_warmup_requests` is a TFRecord file of
`tensorflow_serving.apis.prediction_log_pb2.PredictionLog`, one `PredictRequest` per
signature, and for a model with an interval band a second `forecast` request that sends
`coverage` (the first leaves it to the signature's default). TF Serving runs each record
before it marks a version AVAILABLE (a failing record fails the load), so the first real
request does not pay for graph initialisation. The same requests are what verification runs,
in every loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from export.errors import ExportError
from export.graph import COVERAGE, FORECAST, SERVING_DEFAULT

WARMUP_FILE = "tf_serving_warmup_requests"
# Rows are a few values longer than the window, so the requests also exercise the
# "last window_size values" slicing; two rows exercise the batch dimension.
EXTRA_VALUES = 3
BATCH = 2
HORIZON = 3
EXAMPLE_COVERAGE = 0.8  # not the default, so the explicit request tests something else


@dataclass(frozen=True)
class Request:
    """One call of one signature: `inputs` maps input names to numpy values."""

    signature: str
    inputs: dict


def synthetic_series(length: int) -> np.ndarray:
    """A deterministic trend + seasonality + noise series `[length]` float32, used for
    example requests when the caller gives none."""
    time = np.arange(length, dtype=np.float64)
    noise = np.random.RandomState(42).randn(length)
    return (10.0 + 0.05 * time + 40.0 * np.sin(2 * np.pi * time / 365.0) + 5.0 * noise).astype(
        np.float32
    )


def example_requests(
    window_size: int, example_series=None, horizon: int = HORIZON, with_band: bool = False
) -> list[Request]:
    """One request per signature built from `example_series` (1-D raw values, at least
    `window_size` long; its end is used) or, if None, from a synthetic series; `with_band`
    adds a `forecast` request with `coverage` 0.8.

    `window` and `series` are `[batch, time]` float32 with `time` = window_size + 3 where
    the example allows, `horizon` an int32 scalar, `coverage` a float32 scalar.
    """
    if example_series is None:
        values = synthetic_series(window_size + EXTRA_VALUES + BATCH)
    else:
        values = np.asarray(example_series, dtype=np.float32).reshape(-1)
        if values.size < window_size:
            raise ExportError(
                f"the example series has {values.size} values, fewer than the window "
                f"({window_size})"
            )
        if not np.all(np.isfinite(values)):
            raise ExportError("the example series holds non-finite values")
    time = min(window_size + EXTRA_VALUES, values.size)
    rows = max(1, min(BATCH, values.size - time + 1))
    # Row r ends r values before the end of the series, so each row is a different window.
    batch = np.stack([values[values.size - time - r : values.size - r] for r in range(rows)])
    forecast_inputs = {"series": batch, "horizon": np.array(horizon, dtype=np.int32)}
    requests = [Request(SERVING_DEFAULT, {"window": batch}), Request(FORECAST, forecast_inputs)]
    if with_band:
        coverage = np.array(EXAMPLE_COVERAGE, dtype=np.float32)
        requests.append(Request(FORECAST, {**forecast_inputs, COVERAGE: coverage}))
    return requests


def write_warmup(path: Path, requests: list[Request], model_name: str = "") -> None:
    """Write `requests` as a TFRecord of `PredictionLog` to `path`."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for request in requests:
            predict = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=request.signature)
            )
            for name, value in request.inputs.items():
                predict.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=predict)
            )
            writer.write(log.SerializeToString())


def read_warmup(path: Path) -> list[Request]:
    """Parse the warmup file back into requests; raises on a malformed file."""
    requests = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"record {len(requests)} is a {log.WhichOneof('log_type')}")
        request = log.predict_log.request
        inputs = {name: tf.make_ndarray(tensor) for name, tensor in request.inputs.items()}
        requests.append(Request(request.model_spec.signature_name or SERVING_DEFAULT, inputs))
    return requests
