"""Small SavedModels that follow seqcast's exported-model contract, for the serving tests.

The model is deliberately tiny: the next value is `weight * mean(last window_size values) + bias`.
It has the contract's two signatures, its graph-level input checks, and a warmup file, so
the server under test sees exactly what it would see from `engine export`:

- `serving_default`: `window` float32 `[batch, time]` -> `forecast` float32 `[batch, 1]`
- `forecast`: `series` float32 `[batch, time]`, `horizon` int32 scalar ->
  `forecast` float32 `[batch, horizon]`, fed back autoregressively in a `tf.while_loop`.

Below the model, one embedded server over versions 1 and 2 of it (policy latest{1}, so
version 2 serves) for the test modules that share its setup. A module gets its own server
by importing the fixtures; they are named for pytest (`server`, `stub`, ...) with `name=`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc

from serving.client import ForecastClient
from serving.config import single_model_config
from serving.server import ModelServer

WINDOW_SIZE = 4


class TinyForecaster(tf.Module):
    """`weight * mean(last window_size values) + bias`, with the contract's checks."""

    def __init__(self, weight: float, bias: float, window_size: int = WINDOW_SIZE):
        super().__init__()
        self.weight = tf.Variable(weight, dtype=tf.float32, name="weight")
        self.bias = tf.Variable(bias, dtype=tf.float32, name="bias")
        self.window_size = window_size

    def _check(self, series: tf.Tensor) -> None:
        tf.debugging.assert_all_finite(series, "series values must be finite")
        tf.debugging.assert_greater_equal(
            tf.shape(series)[1],
            self.window_size,
            message=f"series is shorter than the window ({self.window_size} values)",
        )

    def _next_value(self, series: tf.Tensor) -> tf.Tensor:
        """`[batch, time]` -> `[batch, 1]`."""
        last = series[:, -self.window_size :]
        return self.weight * tf.reduce_mean(last, axis=1, keepdims=True) + self.bias

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="window")])
    def serve(self, window):
        self._check(window)
        return {"forecast": self._next_value(window)}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.float32, name="series"),
            tf.TensorSpec([], tf.int32, name="horizon"),
        ]
    )
    def forecast(self, series, horizon):
        self._check(series)
        # The loop must not start on a bad horizon: order the check before it explicitly.
        check = tf.debugging.assert_greater_equal(horizon, 1, message="horizon must be at least 1")
        with tf.control_dependencies([check]):
            horizon = tf.identity(horizon)
        buffer = series[:, -self.window_size :]
        steps = tf.TensorArray(tf.float32, size=horizon)

        def body(step, buffer, steps):
            next_value = self._next_value(buffer)  # [batch, 1]
            buffer = tf.concat([buffer[:, 1:], next_value], axis=1)
            return step + 1, buffer, steps.write(step, next_value[:, 0])

        _, _, steps = tf.while_loop(
            lambda step, *_: step < horizon,
            body,
            [tf.constant(0), buffer, steps],
            shape_invariants=[
                tf.TensorShape([]),
                tf.TensorShape([None, self.window_size]),
                None,
            ],
        )
        return {"forecast": tf.transpose(steps.stack())}  # [batch, horizon]


def reference_forecast(
    series: np.ndarray, horizon: int, weight: float, bias: float, window_size: int = WINDOW_SIZE
) -> np.ndarray:
    """The same recursion in NumPy (float64): `[batch, time]` -> `[batch, horizon]`."""
    buffer = np.asarray(series, dtype=np.float64)[:, -window_size:]
    outputs = []
    for _ in range(horizon):
        next_value = weight * buffer.mean(axis=1) + bias
        outputs.append(next_value)
        buffer = np.concatenate([buffer[:, 1:], next_value[:, None]], axis=1)
    return np.stack(outputs, axis=1)


def warmup_records() -> list[prediction_log_pb2.PredictionLog]:
    """One PredictionLog per signature, as the contract asks."""
    window = predict_pb2.PredictRequest()
    window.model_spec.signature_name = "serving_default"
    window.inputs["window"].CopyFrom(tf.make_tensor_proto(np.ones((1, WINDOW_SIZE), np.float32)))
    forecast = predict_pb2.PredictRequest()
    forecast.model_spec.signature_name = "forecast"
    forecast.inputs["series"].CopyFrom(tf.make_tensor_proto(np.ones((1, WINDOW_SIZE), np.float32)))
    forecast.inputs["horizon"].CopyFrom(tf.make_tensor_proto(np.int32(2)))
    return [
        prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        for request in (window, forecast)
    ]


def write_version(
    base_path: str | os.PathLike,
    version: int,
    weight: float = 1.0,
    bias: float = 0.0,
    warmup: list[prediction_log_pb2.PredictionLog] | None = None,
) -> Path:
    """Export a TinyForecaster as `<base_path>/<version>/`, atomically (temp dir + rename)."""
    base_path = Path(base_path)
    base_path.mkdir(parents=True, exist_ok=True)
    target = base_path / str(version)
    if target.exists():
        raise FileExistsError(target)
    temporary = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base_path))
    try:
        module = TinyForecaster(weight, bias)
        tf.saved_model.save(
            module,
            str(temporary),
            signatures={"serving_default": module.serve, "forecast": module.forecast},
        )
        extra = temporary / "assets.extra"
        extra.mkdir()
        with tf.io.TFRecordWriter(str(extra / "tf_serving_warmup_requests")) as writer:
            for record in warmup_records() if warmup is None else warmup:
                writer.write(record.SerializeToString())
        os.rename(temporary, target)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)
    return target


@contextlib.contextmanager
def engine_serve_process(*args):
    """`engine serve ARGS` in a fresh process from the repository root, stdout piped (text).
    Leaving the block sends SIGTERM, which must end it with exit 0; a process still running
    after a failure is killed."""
    command = [sys.executable, "-m", "engine", "serve", *map(str, args)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command,
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield process
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- one server over the tiny model ------------------------------------------------------

MODEL = "tiny"
WEIGHTS = {1: (2.0, 0.5), 2: (0.9, 1.0)}


@pytest.fixture(scope="module", name="base_path")
def tiny_base_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / MODEL
    for version, (weight, bias) in WEIGHTS.items():
        write_version(path, version, weight, bias)
    return path


@pytest.fixture(scope="module", name="server")
def tiny_server(base_path):
    with ModelServer(
        single_model_config(MODEL, str(base_path)), port=0, poll_seconds=0.5
    ) as server:
        yield server


@pytest.fixture(scope="module", name="channel")
def tiny_channel(server):
    channel = grpc.insecure_channel(server.address)
    yield channel
    channel.close()


@pytest.fixture(scope="module", name="stub")
def tiny_stub(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module", name="client")
def tiny_client(server):
    with ForecastClient(server.address, timeout=30.0) as client:
        yield client


def window_request(window, model=MODEL, signature="serving_default") -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    request.inputs["window"].CopyFrom(tf.make_tensor_proto(window))
    return request


def forecast_request(series, horizon) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "forecast"
    request.inputs["series"].CopyFrom(tf.make_tensor_proto(series))
    request.inputs["horizon"].CopyFrom(tf.make_tensor_proto(horizon))
    return request


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=30)
    return caught.value


def assert_still_answers(client):
    series = np.arange(12, dtype=np.float32).reshape(2, 6)
    result = client.forecast(MODEL, series, 3)
    np.testing.assert_allclose(result.values, reference_forecast(series, 3, *WEIGHTS[2]), rtol=1e-5)
    assert result.version == 2
