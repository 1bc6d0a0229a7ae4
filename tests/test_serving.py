"""The embedded server over gRPC: round trips, TF Serving's errors, fuzzing, the client CLI.

One server for the whole module (versions 1 and 2 of the tiny model on disk, policy
latest{1}, so version 2 serves), on a free loopback port.
"""

from __future__ import annotations

import json
import random
import threading

import grpc
import numpy as np
import pytest
import serving_fixtures as fixtures
import tensorflow as tf
from google.protobuf import text_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from serving.client import ForecastClient, ServingClientError
from serving.server import ModelServer, single_model_config

MODEL = "tiny"
WEIGHTS = {1: (2.0, 0.5), 2: (0.9, 1.0)}
TOLERANCE = dict(rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def base_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / MODEL
    for version, (weight, bias) in WEIGHTS.items():
        fixtures.write_version(path, version, weight, bias)
    return path


@pytest.fixture(scope="module")
def server(base_path):
    server = ModelServer(single_model_config(MODEL, str(base_path)), port=0, poll_seconds=0.5)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=2.0)


@pytest.fixture(scope="module")
def channel(server):
    channel = grpc.insecure_channel(server.address)
    yield channel
    channel.close()


@pytest.fixture(scope="module")
def stub(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def client(server):
    with ForecastClient(server.address, timeout=30.0) as client:
        yield client


@pytest.fixture(scope="module")
def in_process(base_path):
    return tf.saved_model.load(str(base_path / "2"))


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
    np.testing.assert_allclose(
        result.values, fixtures.reference_forecast(series, 3, *WEIGHTS[2]), rtol=1e-5
    )
    assert result.version == 2


# --- round trip ----------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 256])
@pytest.mark.parametrize("time_length", [4, 17, 120])
def test_round_trip_matches_in_process_model(client, in_process, batch, time_length):
    rng = np.random.default_rng(batch * 1000 + time_length)
    series = rng.normal(50.0, 20.0, size=(batch, time_length)).astype(np.float32)

    served = client.forecast(MODEL, series, horizon=7)
    local = in_process.signatures["forecast"](series=tf.constant(series), horizon=tf.constant(7))
    assert served.values.shape == (batch, 7)
    np.testing.assert_allclose(served.values, local["forecast"].numpy(), **TOLERANCE)
    assert (served.model_name, served.version, served.signature_name) == (MODEL, 2, "forecast")

    next_value = client.next_value(MODEL, series)
    local = in_process.signatures["serving_default"](window=tf.constant(series))
    assert next_value.values.shape == (batch, 1)
    np.testing.assert_allclose(next_value.values, local["forecast"].numpy(), **TOLERANCE)
    assert next_value.signature_name == "serving_default"
    # And the model is the one we think it is.
    np.testing.assert_allclose(
        served.values, fixtures.reference_forecast(series, 7, *WEIGHTS[2]), rtol=1e-4, atol=1e-3
    )


def test_specific_version_and_default_signature(stub):
    window = np.full((1, 4), 3.0, np.float32)
    request = window_request(window, signature="")
    request.model_spec.version.value = 2
    response = stub.Predict(request, timeout=30)
    # An empty signature_name means serving_default, and the response says so.
    assert response.model_spec.signature_name == "serving_default"
    assert response.model_spec.version.value == 2
    weight, bias = WEIGHTS[2]
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["forecast"]), [[weight * 3 + bias]])


def test_output_filter(stub):
    request = window_request(np.ones((2, 4), np.float32))
    request.output_filter.append("forecast")
    response = stub.Predict(request, timeout=30)
    assert list(response.outputs) == ["forecast"]

    request.output_filter.append("forecast")
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "duplicate output tensor alias: forecast"

    request = window_request(np.ones((2, 4), np.float32))
    request.output_filter.append("scores")
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "output tensor alias not found in signature: scores Outputs expected to be in the set "
        "{forecast}."
    )


def test_model_metadata_has_the_signature_defs(client, stub, in_process, base_path):
    signatures = client.signature_defs(MODEL)
    assert {"serving_default", "forecast"} <= set(signatures)
    forecast = signatures["forecast"]
    assert forecast.method_name == "tensorflow/serving/predict"
    assert forecast.inputs["series"].dtype == types_pb2.DT_FLOAT
    assert [dim.size for dim in forecast.inputs["series"].tensor_shape.dim] == [-1, -1]
    assert forecast.inputs["horizon"].dtype == types_pb2.DT_INT32
    assert forecast.outputs["forecast"].dtype == types_pb2.DT_FLOAT
    assert signatures["serving_default"].inputs["window"].dtype == types_pb2.DT_FLOAT

    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = MODEL
    request.metadata_field.append("signature_def")
    response = stub.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == MODEL and response.model_spec.version.value == 2

    request.metadata_field[:] = ["graph"]
    error = rpc_error(stub.GetModelMetadata, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    del request.metadata_field[:]
    assert rpc_error(stub.GetModelMetadata, request).code() == grpc.StatusCode.INVALID_ARGUMENT


def test_model_status(client, channel):
    assert client.status(MODEL)[2] == "AVAILABLE"
    assert client.status(MODEL, version=2) == {2: "AVAILABLE"}
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "nope"
    error = rpc_error(models.GetModelStatus, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Could not find any versions of model nope"
    request.model_spec.name = MODEL
    request.model_spec.version.value = 9
    error = rpc_error(models.GetModelStatus, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Could not find version 9 of model tiny"


def test_health_reports_serving(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", MODEL):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_unimplemented_methods(stub):
    error = rpc_error(stub.Classify, classification_pb2.ClassificationRequest())
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED


# --- the DESIGN.md error table, and the model's own checks ------------------------------


def _with(request, edit):
    edit(request)
    return request


ERROR_CASES = {
    "unknown model": (
        lambda: window_request(np.ones((1, 4), np.float32), model="nope"),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    ),
    "unknown version": (
        lambda: _with(
            window_request(np.ones((1, 4), np.float32)),
            lambda r: r.model_spec.version.__setattr__("value", 7),
        ),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Specific(tiny, 7)",
    ),
    "unknown version label": (
        lambda: _with(
            window_request(np.ones((1, 4), np.float32)),
            lambda r: setattr(r.model_spec, "version_label", "canary"),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Unrecognized servable version label: canary",
    ),
    "unknown signature": (
        lambda: window_request(np.ones((1, 4), np.float32), signature="predict"),
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "predict" not found.',
    ),
    "too many inputs": (
        lambda: _with(
            window_request(np.ones((1, 4), np.float32)),
            lambda r: r.inputs["extra"].CopyFrom(tf.make_tensor_proto(1.0)),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input size does not match signature: 2!=1 len({extra,window}) != len({window}). "
        "Sent extra: {extra}. Missing but required: {}.",
    ),
    "missing input": (
        lambda: _with(
            forecast_request(np.ones((1, 4), np.float32), 2), lambda r: r.inputs.pop("horizon")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        None,
    ),
    "unknown input alias": (
        lambda: _with(
            predict_pb2.PredictRequest(),
            lambda r: (
                setattr(r.model_spec, "name", MODEL),
                r.inputs["windows"].CopyFrom(tf.make_tensor_proto(np.ones((1, 4), np.float32))),
            ),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        None,
    ),
    "wrong dtype": (
        lambda: window_request(np.ones((1, 4), np.float64)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Expects arg[0] to be float but double is provided",
    ),
    "wrong shape": (
        lambda: window_request(np.ones((4,), np.float32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        None,
    ),
    "missing model spec": (
        lambda: _with(
            window_request(np.ones((1, 4), np.float32)), lambda r: r.ClearField("model_spec")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Missing ModelSpec",
    ),
    "NaN input": (
        lambda: window_request(np.array([[1.0, np.nan, 2.0, 3.0]], np.float32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        None,
    ),
    "infinite input": (
        lambda: forecast_request(np.array([[1.0, 2.0, np.inf, 3.0]], np.float32), 3),
        grpc.StatusCode.INVALID_ARGUMENT,
        None,
    ),
    "series shorter than the window": (
        lambda: forecast_request(np.ones((2, 3), np.float32), 3),
        grpc.StatusCode.INVALID_ARGUMENT,
        None,
    ),
    "horizon below 1": (
        lambda: forecast_request(np.ones((2, 8), np.float32), 0),
        grpc.StatusCode.INVALID_ARGUMENT,
        None,
    ),
    "empty tensor": (
        lambda: window_request(np.ones((1, 0), np.float32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        None,
    ),
    "tensor without values": (
        lambda: _with(
            window_request(np.ones((1, 4), np.float32)),
            lambda r: r.inputs["window"].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        None,
    ),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_error_table(stub, client, case):
    make_request, code, message = ERROR_CASES[case]
    error = rpc_error(stub.Predict, make_request())
    assert error.code() == code, error.details()
    if message is not None:
        assert error.details() == message
    assert_still_answers(client)


def test_model_checks_say_why(stub):
    error = rpc_error(stub.Predict, forecast_request(np.ones((2, 3), np.float32), 3))
    assert "series is shorter than the window" in error.details()
    error = rpc_error(stub.Predict, forecast_request(np.ones((2, 8), np.float32), 0))
    assert "horizon must be at least 1" in error.details()
    assert "Graph execution error" not in error.details()


def test_client_errors_are_one_clear_line(client):
    with pytest.raises(ServingClientError) as caught:
        client.forecast("nope", np.ones((1, 8)), 3)
    assert caught.value.code == grpc.StatusCode.NOT_FOUND and caught.value.bad_request
    assert "\n" not in str(caught.value) and "Latest(nope)" in str(caught.value)
    with ForecastClient("127.0.0.1:1", timeout=2.0) as unreachable:
        with pytest.raises(ServingClientError) as caught:
            unreachable.forecast(MODEL, np.ones((1, 8)), 3)
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE and not caught.value.bad_request


# --- versions, labels and policies through HandleReloadConfigRequest ------------------


def test_reload_config_labels_and_policies(channel, client, base_path):
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    text = f"""
        model_config_list {{ config {{
          name: "{MODEL}" base_path: "{base_path}" model_platform: "tensorflow"
          model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
          version_labels {{ key: "stable" value: 1 }}
          version_labels {{ key: "canary" value: 2 }}
        }} }}"""
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    try:
        models.HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(config=config), timeout=60
        )
        assert client.status(MODEL)[1] == "AVAILABLE" and client.status(MODEL)[2] == "AVAILABLE"
        series = np.arange(8, dtype=np.float32)[None, :]
        for label, version in (("stable", 1), ("canary", 2)):
            result = client.forecast(MODEL, series, 2, version_label=label)
            assert result.version == version
            np.testing.assert_allclose(
                result.values,
                fixtures.reference_forecast(series, 2, *WEIGHTS[version]),
                rtol=1e-5,
            )
        assert client.forecast(MODEL, series, 2, version=1).version == 1
        assert client.forecast(MODEL, series, 2).version == 2  # no version: the newest

        # A policy that drops version 1 unloads it once version 2 is serving.
        config.model_config_list.config[0].model_version_policy.specific.versions[:] = [2]
        del config.model_config_list.config[0].version_labels["stable"]
        models.HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(config=config), timeout=60
        )
        assert client.status(MODEL) == {1: "END", 2: "AVAILABLE"}
        with pytest.raises(ServingClientError) as caught:
            client.forecast(MODEL, series, 2, version=1)
        assert caught.value.details == "Servable not found for request: Specific(tiny, 1)"
    finally:
        models.HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(
                config=single_model_config(MODEL, str(base_path))
            ),
            timeout=60,
        )
    assert_still_answers(client)


# --- fuzz --------------------------------------------------------------------------------

FUZZ_ALLOWED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
}
HUGE_DIMS = [2**31, 2**40, 2**62, -1, -(2**40)]


def _random_tensor(rng: random.Random) -> tensor_pb2.TensorProto:
    """A TensorProto that cannot be a valid `window` for the tiny model."""
    kind = rng.randrange(8)
    proto = tensor_pb2.TensorProto()
    if kind == 0:  # a wrong (possibly unknown) dtype with random content
        proto.dtype = rng.choice([d for d in range(0, 30) if d != types_pb2.DT_FLOAT] + [250, 999])
        proto.tensor_shape.dim.add(size=rng.randrange(1, 4))
        proto.tensor_shape.dim.add(size=rng.randrange(1, 9))
        proto.tensor_content = rng.randbytes(rng.randrange(0, 64))
    elif kind == 1:  # huge or negative dimensions
        proto.dtype = types_pb2.DT_FLOAT
        for _ in range(rng.randrange(1, 4)):
            proto.tensor_shape.dim.add(size=rng.choice(HUGE_DIMS))
    elif kind == 2:  # content of the wrong length
        proto.dtype = types_pb2.DT_FLOAT
        proto.tensor_shape.dim.add(size=rng.randrange(1, 4))
        proto.tensor_shape.dim.add(size=rng.randrange(4, 9))
        expected = proto.tensor_shape.dim[0].size * proto.tensor_shape.dim[1].size * 4
        proto.tensor_content = rng.randbytes(expected + rng.choice([-3, -1, 1, 5]))
    elif kind == 3:  # more values than elements
        proto.dtype = types_pb2.DT_FLOAT
        proto.tensor_shape.dim.add(size=1)
        proto.tensor_shape.dim.add(size=4)
        proto.float_val.extend(rng.random() for _ in range(rng.randrange(5, 40)))
    elif kind == 4:  # wrong rank, right dtype
        proto.dtype = types_pb2.DT_FLOAT
        for _ in range(rng.choice([0, 1, 3, 5])):
            proto.tensor_shape.dim.add(size=rng.randrange(1, 5))
        proto.float_val.append(1.0)
    elif kind == 5:  # unknown rank
        proto.dtype = types_pb2.DT_FLOAT
        proto.tensor_shape.unknown_rank = True
        proto.float_val.append(1.0)
    elif kind == 6:  # strings
        proto.dtype = types_pb2.DT_STRING
        proto.tensor_shape.dim.add(size=1)
        proto.tensor_shape.dim.add(size=4)
        proto.string_val.extend(rng.randbytes(3) for _ in range(4))
    else:  # random bytes that happen to parse as a TensorProto
        for _ in range(20):
            try:
                proto = tensor_pb2.TensorProto.FromString(rng.randbytes(rng.randrange(1, 48)))
            except Exception:  # noqa: BLE001 - most random bytes do not parse; try again
                continue
            if proto.dtype != types_pb2.DT_FLOAT:
                break
        else:
            proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INVALID)
    return proto


def _random_request(rng: random.Random) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    choice = rng.randrange(6)
    if choice <= 2:  # garbage window
        request.inputs["window"].CopyFrom(_random_tensor(rng))
    elif choice == 3:  # garbage names: wrong alias, extra inputs, wrong signature or model
        good = tf.make_tensor_proto(np.ones((1, 4), np.float32))
        for _ in range(rng.randrange(0, 3)):
            request.inputs["x" + rng.randbytes(4).hex()].CopyFrom(good)
        if rng.random() < 0.5 or not request.inputs:
            request.model_spec.signature_name = rng.choice(["", "forecast", "x", "__nope__"])
            request.inputs["window"].CopyFrom(good)
            request.inputs["zz"].CopyFrom(good)
        if rng.random() < 0.3:
            request.model_spec.name = "x" + rng.randbytes(3).hex()
    elif choice == 4:  # a garbage horizon for the forecast signature
        request.model_spec.signature_name = "forecast"
        request.inputs["series"].CopyFrom(tf.make_tensor_proto(np.ones((1, 6), np.float32)))
        horizon = rng.choice(
            [
                tf.make_tensor_proto(np.int32(-rng.randrange(0, 5))),
                tf.make_tensor_proto(np.float32(3.0)),
                tf.make_tensor_proto(np.array([3, 4], np.int32)),
                tf.make_tensor_proto(np.int64(3)),
                _random_tensor(rng),
            ]
        )
        request.inputs["horizon"].CopyFrom(horizon)
    else:  # garbage series for the forecast signature
        request.model_spec.signature_name = "forecast"
        request.inputs["series"].CopyFrom(_random_tensor(rng))
        request.inputs["horizon"].CopyFrom(tf.make_tensor_proto(np.int32(2)))
    if rng.random() < 0.1:
        request.model_spec.version.value = rng.choice([0, 3, 2**40])
    return request


def test_fuzz_malformed_requests(stub, client):
    rng = random.Random(20240611)
    codes: dict[grpc.StatusCode, int] = {}
    for index in range(500):
        request = _random_request(rng)
        try:
            stub.Predict(request, timeout=30)
        except grpc.RpcError as error:
            assert error.code() in FUZZ_ALLOWED, (index, error.code(), error.details(), request)
            codes[error.code()] = codes.get(error.code(), 0) + 1
        else:
            pytest.fail(f"malformed request {index} was answered: {request}")
    assert codes.get(grpc.StatusCode.INVALID_ARGUMENT, 0) > 300
    assert_still_answers(client)


def test_concurrent_requests_are_answered(client):
    """A few threads at once: every answer is right (the worker pool is shared)."""
    failures = []

    def worker(seed):
        rng = np.random.default_rng(seed)
        for _ in range(10):
            series = rng.normal(size=(3, 10)).astype(np.float32)
            result = client.forecast(MODEL, series, 4)
            expected = fixtures.reference_forecast(series, 4, *WEIGHTS[2])
            if not np.allclose(result.values, expected, rtol=1e-4, atol=1e-5):
                failures.append(seed)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures


# --- engine forecast -------------------------------------------------------------------


def run_engine(argv, capsys) -> tuple[int, str, str]:
    from engine.cli import main

    try:
        main(argv)
        status = 0
    except SystemExit as done:
        status = done.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_engine_forecast_outputs(server, capsys, tmp_path):
    base = ["forecast", "--server", server.address, "--model-name", MODEL]
    status, out, _ = run_engine([*base, "--horizon", "5", "--json"], capsys)
    assert status == 0
    payload = json.loads(out)
    assert list(payload) == ["model_spec", "forecast"]
    assert payload["model_spec"] == {"name": MODEL, "version": 2, "signature_name": "forecast"}
    assert np.asarray(payload["forecast"]).shape == (1, 5)

    from engine.data import load_series

    series = load_series("synthetic").values
    expected = fixtures.reference_forecast(series[None, :].astype(np.float32), 5, *WEIGHTS[2])
    np.testing.assert_allclose(payload["forecast"], expected, rtol=1e-5)

    status, out, _ = run_engine([*base, "--horizon", "3", "--csv"], capsys)
    lines = out.strip().splitlines()
    assert status == 0 and lines[0] == "step,forecast" and len(lines) == 4
    assert lines[1].startswith(f"{len(series)},")

    plot = tmp_path / "forecast.png"
    status, out, _ = run_engine([*base, "--version", "2", "--plot", str(plot)], capsys)
    assert status == 0 and plot.stat().st_size > 1000
    assert "version 2" in out and len(out.strip().splitlines()) == 2 + 30 + 1


@pytest.mark.parametrize(
    ("extra", "status", "fragment"),
    [
        (["--model-name", "nope"], 2, "Latest(nope)"),
        (["--model-name", MODEL, "--horizon", "0"], 2, "horizon must be at least 1"),
        (["--model-name", MODEL, "--signature", "serving_default", "--horizon", "3"], 2, "drop"),
        (["--model-name", MODEL, "--version", "5"], 2, "Specific(tiny, 5)"),
    ],
)
def test_engine_forecast_errors(server, capsys, extra, status, fragment):
    code, _, err = run_engine(["forecast", "--server", server.address, *extra], capsys)
    assert code == status
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_engine_forecast_unreachable_server_exits_1(capsys):
    code, _, err = run_engine(
        ["forecast", "--server", "127.0.0.1:1", "--model-name", MODEL, "--timeout", "2"], capsys
    )
    assert code == 1 and "UNAVAILABLE" in err


# --- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("", [5]),
        ("model_version_policy { latest { num_versions: 2 } }", [5, 3]),
        ("model_version_policy { all {} }", [5, 3, 1]),
        ("model_version_policy { specific { versions: 1 versions: 4 } }", [1]),
    ],
)
def test_version_policies(policy, expected):
    from serving.server import _aspired

    config = text_format.Parse(
        f'name: "m" base_path: "/x" {policy}', model_server_config_pb2.ModelConfig()
    )
    complete = {version: f"/x/{version}" for version in (1, 3, 5)}
    assert _aspired(config, complete) == expected


def test_unimplemented_regress_and_multi_inference(stub):
    from tensorflow_serving.apis import inference_pb2, regression_pb2

    for call, request in (
        (stub.Regress, regression_pb2.RegressionRequest()),
        (stub.MultiInference, inference_pb2.MultiInferenceRequest()),
    ):
        assert rpc_error(call, request).code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["serve"], "either --model-base-path"),
        (["serve", "--model-base-path", "/nonexistent/models"], "is not a directory"),
        (["serve", "--model-config-file", "/nonexistent/models.config"], "cannot read"),
        (["serve", "--model-base-path", ".", "--tls-cert", "cert.pem"], "both a certificate"),
    ],
)
def test_engine_serve_bad_arguments_exit_2(capsys, argv, fragment):
    code, _, err = run_engine(argv, capsys)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1


def test_bad_model_config_file(tmp_path, capsys):
    config = tmp_path / "models.config"
    config.write_text("model_config_list { config { name: 'm' base_path: 3 } ")
    code, _, err = run_engine(["serve", "--model-config-file", str(config)], capsys)
    assert code == 2 and "not a text ModelServerConfig" in err
