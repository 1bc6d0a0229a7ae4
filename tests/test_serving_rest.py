"""TF Serving's REST API on the embedded server: status, metadata, predict in both layouts,
the same numbers as gRPC, TF Serving's errors and HTTP codes, a fuzz of malformed bodies,
the Prometheus page, and `engine serve --rest_api_port`. With SEQCAST_TFSERVING_REST=host:port
(the REST port of serving/deploy/'s real TF Serving), the same requests go to both servers.

One server for the module (serving_fixtures' tiny model, versions 1 and 2 on disk, version 2
serving) with gRPC and REST on free loopback ports and the Prometheus page on.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import random
import re
import threading
from pathlib import Path
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
import serving_fixtures as fixtures
import tensorflow as tf
from cli_runner import engine_in_process
from google.protobuf import json_format
from serving_fixtures import MODEL, WEIGHTS, forecast_request, window_request
from serving_fixtures import tiny_base_path as tiny_base_path
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.config import single_model_config
from serving.errors import ServingConfigError
from serving.metrics import MonitoringSettings
from serving.rest_api import HTTP_STATUS, RestApi
from serving.server import ModelServer

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 30


@pytest.fixture(scope="module")
def server(base_path):
    with ModelServer(
        single_model_config(MODEL, str(base_path)),
        port=0,
        rest_api_port=0,
        poll_seconds=0.5,
        monitoring=MonitoringSettings(enable=True),
    ) as server:
        yield server


@pytest.fixture(scope="module")
def channel(server):
    channel = grpc.insecure_channel(server.address)
    yield channel
    channel.close()


@pytest.fixture(scope="module")
def stub(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


class Rest:
    """A keep-alive HTTP connection to the REST port; `call` gives (status, body text)."""

    def __init__(self, address: str):
        host, port = address.rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)

    def call(self, method: str, path: str, body: bytes | str | None = None):
        if isinstance(body, str):
            body = body.encode()
        self.connection.request(method, path, body=body)
        response = self.connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        return response.status, text, response

    def json(self, method: str, path: str, body=None):
        status, text, _ = self.call(method, path, body)
        return status, json.loads(text)


@pytest.fixture(scope="module")
def rest(server):
    client = Rest(server.rest_address)
    yield client
    client.connection.close()


def error_body(message: str) -> str:
    return json.dumps({"error": message}, indent=4)


def predictions(text: str) -> np.ndarray:
    return np.asarray(json.loads(text)["predictions"], dtype=np.float32)


# --- status and metadata --------------------------------------------------------------------


def test_model_status_as_tf_serving_prints_it(rest):
    status, text, response = rest.call("GET", f"/v1/models/{MODEL}")
    assert status == 200
    assert response.getheader("Content-Type") == "application/json"
    versions = json.loads(text)["model_version_status"]
    assert {
        "version": "2",
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    } in versions
    status, text, _ = rest.call("GET", f"/v1/models/{MODEL}/versions/2")
    assert text == (
        '{\n "model_version_status": [\n  {\n   "version": "2",\n   "state": "AVAILABLE",\n'
        '   "status": {\n    "error_code": "OK",\n    "error_message": ""\n   }\n  }\n ]\n}\n'
    )


def test_model_status_matches_grpc(rest, channel):
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    answer = stub.GetModelStatus(request, timeout=TIMEOUT)
    for entry in answer.model_version_status:
        entry.status.SetInParent()
    _, body = rest.json("GET", f"/v1/models/{MODEL}")
    assert body == json_format.MessageToDict(answer, always_print_fields_with_no_presence=True)


def test_metadata_as_tf_serving_prints_it(rest, stub):
    status, text, _ = rest.call("GET", f"/v1/models/{MODEL}/metadata")
    assert status == 200
    assert text.startswith(
        '{\n"model_spec":{\n "name": "tiny",\n "signature_name": "",\n "version": "2"\n}\n,\n'
        '"metadata": {"signature_def": {\n "signature_def": {\n'
    )
    body = json.loads(text)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    answer = stub.GetModelMetadata(request, timeout=TIMEOUT)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    answer.metadata["signature_def"].Unpack(signatures)
    assert body["metadata"]["signature_def"] == json_format.MessageToDict(
        signatures, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    window = body["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert window["window"]["dtype"] == "DT_FLOAT"
    _, older = rest.json("GET", f"/v1/models/{MODEL}/versions/2/metadata")
    assert older == body


# --- predict ---------------------------------------------------------------------------------


def test_predict_row_format(rest):
    status, text, _ = rest.call(
        "POST", f"/v1/models/{MODEL}:predict", '{"instances": [[1,2,3,4],[5,6,7,8]]}'
    )
    assert status == 200
    # 0.9 * mean + 1 (version 2), laid out as TF Serving's PrettyWriter lays it out.
    assert text == '{\n    "predictions": [[3.25], [6.85]\n    ]\n}'


def test_predict_columnar_format(rest):
    status, text, _ = rest.call(
        "POST",
        f"/v1/models/{MODEL}/versions/2:predict",
        '{"signature_name": "forecast", "inputs": {"series": [[1,2,3,4]], "horizon": 2}}',
    )
    assert status == 200
    assert text == (
        '{\n    "outputs": [\n        [\n            3.25,\n            3.75625\n        ]\n'
        "    ]\n}"
    )


@pytest.mark.parametrize("batch", [1, 7])
def test_rest_and_grpc_give_the_same_numbers(rest, stub, batch):
    rng = np.random.default_rng(batch)
    series = rng.normal(50.0, 20.0, size=(batch, 9)).astype(np.float32)

    grpc_next = tf.make_ndarray(
        stub.Predict(window_request(series), timeout=TIMEOUT).outputs["forecast"]
    )
    row = {"instances": series.tolist()}
    _, text, _ = rest.call("POST", f"/v1/models/{MODEL}:predict", json.dumps(row))
    np.testing.assert_array_equal(predictions(text), grpc_next)  # exact: floats round-trip
    columnar = {"signature_name": "serving_default", "inputs": {"window": series.tolist()}}
    _, body = rest.json("POST", f"/v1/models/{MODEL}:predict", json.dumps(columnar))
    np.testing.assert_array_equal(np.asarray(body["outputs"], np.float32), grpc_next)

    grpc_forecast = tf.make_ndarray(
        stub.Predict(forecast_request(series, np.int32(5)), timeout=TIMEOUT).outputs["forecast"]
    )
    request = {"signature_name": "forecast", "inputs": {"series": series.tolist(), "horizon": 5}}
    _, body = rest.json("POST", f"/v1/models/{MODEL}:predict", json.dumps(request))
    outputs = np.asarray(body["outputs"], np.float32)
    assert outputs.shape == (batch, 5)
    np.testing.assert_array_equal(outputs, grpc_forecast)
    np.testing.assert_allclose(
        outputs, fixtures.reference_forecast(series, 5, *WEIGHTS[2]), rtol=1e-4, atol=1e-3
    )


def test_specific_version_over_rest(rest):
    # Version 1 is on disk but not served (latest{1}): TF Serving's NOT_FOUND.
    status, text, _ = rest.call(
        "POST", f"/v1/models/{MODEL}/versions/1:predict", '{"instances": [[1,2,3,4]]}'
    )
    assert (status, text) == (
        404,
        error_body(f"Servable not found for request: Specific({MODEL}, 1)"),
    )


# --- errors ------------------------------------------------------------------------------------

PREDICT = f"/v1/models/{MODEL}:predict"


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        (
            "/v1/models/nope:predict",
            '{"instances": [[1]]}',
            404,
            "Servable not found for request: Latest(nope)",
        ),
        (
            PREDICT,
            '{"signature_name": "nope", "instances": [[1]]}',
            400,
            'Serving signature name: "nope" not found in signature def',
        ),
        (
            PREDICT,
            '{"instances": [[1,2,3,4]',
            400,
            "JSON Parse error: Missing a comma or ']' after an array element. at offset: 24",
        ),
        (PREDICT, "", 400, "JSON Parse error: The document is empty"),
        (PREDICT, "[1]", 400, "JSON Value: [\n    1\n] Is not object"),
        (PREDICT, "{}", 400, "Missing 'inputs' or 'instances' key"),
        (
            PREDICT,
            '{"instances": [["a", "b", "c", "d"]]}',
            400,
            "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
            'JSON Value: "a" Type: String is not of expected type: float',
        ),
        (
            PREDICT,
            '{"instances": [[1,2,3,4],[1,2,3]]}',
            400,
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Expecting tensor size: 4 but got: 3",
        ),
        (
            PREDICT,
            '{"inputs": [[16777217, 1, 2, 3]]}',
            400,
            "Cannot convert JSON value: 16777217 to float without loss of precision.",
        ),
        (
            PREDICT,
            '{"signature_name": "forecast", "instances": [[1,2,3,4]]}',
            400,
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map",
        ),
        (
            PREDICT,
            '{"signature_name": "forecast", "inputs": {"series": [[1,2,3,4]]}}',
            400,
            "Missing named input: horizon in 'inputs' object.",
        ),
        ("/v1/models/tiny:PREDICT", "{}", 400, "Malformed request: POST /v1/models/tiny:PREDICT"),
        ("/v1/models/tiny:explain", "{}", 400, "Malformed request: POST /v1/models/tiny:explain"),
    ],
)
def test_predict_errors(rest, path, body, status, message):
    assert rest.call("POST", path, body)[:2] == (status, error_body(message))


def test_the_models_own_checks_come_back(rest):
    status, body = rest.json("POST", PREDICT, '{"instances": [[1, 2, NaN, 4]]}')
    assert status == 400 and body["error"].startswith("series values must be finite")
    status, body = rest.json(
        "POST", PREDICT, '{"signature_name": "forecast", "inputs": {"series": [[1]], "horizon": 1}}'
    )
    assert status == 400 and "shorter than the window" in body["error"]


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("GET", "/v1/models", 400, error_body("Missing model name in request.")),
        ("GET", "/v1/models/nope", 404, error_body("Could not find any versions of model nope")),
        (
            "GET",
            "/v1/models/tiny/versions/abc",
            400,
            error_body("Malformed request: GET /v1/models/tiny/versions/abc"),
        ),
        (
            "GET",
            "/v1/models/tiny:predict",
            400,
            error_body("Malformed request: GET /v1/models/tiny:predict"),
        ),
        ("PUT", "/v1/models/tiny", 400, error_body("Malformed request: PUT /v1/models/tiny")),
        ("DELETE", "/v1/models/tiny", 400, error_body("Malformed request: DELETE /v1/models/tiny")),
        ("GET", "/v1/models/tiny/versions/99999999999999999999", 400, ""),  # TF Serving: no body
    ],
)
def test_path_and_method_errors(rest, method, path, status, body):
    assert rest.call(method, path)[:2] == (status, body)


def test_paths_outside_the_api_and_odd_methods(server):
    for method, path, status in [
        ("GET", "/", 404),
        ("POST", "/v2/models/tiny:predict", 404),
        ("TRACE", "/v1/models/tiny", 501),
        ("BREW", "/v1/models/tiny", 400),
    ]:
        client = Rest(server.rest_address)  # libevent closes the connection after these
        got, text, response = client.call(method, path)
        client.connection.close()
        assert got == status, (method, path)
        assert f"<TITLE>{status} " in text


def test_labels_answer_as_grpc_does(rest, stub):
    request = window_request(np.ones((1, 4), np.float32))
    request.model_spec.version_label = "stable"
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(request, timeout=TIMEOUT)
    status, body = rest.json(
        "POST", f"/v1/models/{MODEL}/labels/stable:predict", '{"instances": [[1,2,3,4]]}'
    )
    assert (status, body["error"]) == (HTTP_STATUS[caught.value.code()], caught.value.details())


@pytest.mark.parametrize("verb", ["classify", "regress"])
def test_classify_and_regress_answer_as_grpc_does(rest, stub, verb):
    """Classify and Regress go to the gRPC servicer; the tiny model has no classification or
    regression signature, so both sides refuse, with the same code and message."""
    if verb == "classify":
        request, call = classification_pb2.ClassificationRequest(), stub.Classify
    else:
        request, call = regression_pb2.RegressionRequest(), stub.Regress
    request.model_spec.name = MODEL
    request.input.example_list.examples.add().features.feature["x"].float_list.value.append(2.0)
    try:
        answer = call(request, timeout=TIMEOUT)
        expected = (200, None)
    except grpc.RpcError as error:
        answer, expected = None, (HTTP_STATUS[error.code()], error.details())
    status, body = rest.json("POST", f"/v1/models/{MODEL}:{verb}", '{"examples": [{"x": 2.0}]}')
    if answer is None:
        assert (status, body["error"]) == expected
    else:
        assert status == 200 and "results" in body
    status, body = rest.json("POST", f"/v1/models/{MODEL}:{verb}", '{"examples": []}')
    assert status == 400 and body["error"].endswith("'examples' value is an empty array")


# --- fuzz ------------------------------------------------------------------------------------

VALID = b'{"signature_name": "forecast", "inputs": {"series": [[1.5, 2, 3e0, 4]], "horizon": 2}}'


def _strictly_invalid(body: bytes) -> bool:
    """Invalid JSON for any parser, RapidJSON's extensions included."""
    if b"\x00" in body or b"Inf" in body or b"NaN" in body or body.startswith(b"\xef\xbb\xbf"):
        return False
    try:
        json.loads(body.decode("utf-8", "surrogateescape"))
    except (ValueError, RecursionError):  # too deep: refused by the server's own limit too
        return True
    return False


def malformed_bodies(count: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    alphabet = b'{}[]:,"\\ 0123456789.eE+-abntrufl\n\t\x01\xff'
    bodies = []
    while len(bodies) < count:
        body = bytearray(VALID)
        kind = rng.randrange(6)
        if kind == 0:
            body = body[: rng.randrange(len(body))]
        elif kind == 1:
            for _ in range(rng.randint(1, 4)):
                body.insert(rng.randrange(len(body) + 1), rng.choice(alphabet))
        elif kind == 2:
            for _ in range(rng.randint(1, 4)):
                if body:
                    del body[rng.randrange(len(body))]
        elif kind == 3:
            for _ in range(rng.randint(1, 4)):
                body[rng.randrange(len(body))] = rng.choice(alphabet)
        elif kind == 4:
            body = bytearray(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        else:
            depth = rng.randint(1, 2000)
            body = bytearray(b"[" * depth + b"1" + b"]" * rng.randint(0, depth - 1))
        if _strictly_invalid(bytes(body)):
            bodies.append(bytes(body))
    return bodies


def test_fuzzed_malformed_bodies_get_400_and_the_server_keeps_answering(rest, stub):
    for index, body in enumerate(malformed_bodies(300)):
        status, text, _ = rest.call("POST", PREDICT, body)
        assert 400 <= status < 500, (body, status, text)
        message = json.loads(text)["error"]
        assert message.startswith("JSON Parse error: "), (body, message)
        if index % 50 == 0:
            assert rest.call("POST", PREDICT, '{"instances": [[1,2,3,4]]}')[0] == 200
    assert rest.json("POST", PREDICT, VALID)[0] == 200
    answer = stub.Predict(window_request(np.ones((1, 4), np.float32)), timeout=TIMEOUT)
    assert tf.make_ndarray(answer.outputs["forecast"]).shape == (1, 1)


# --- metrics ----------------------------------------------------------------------------------


def test_prometheus_page(rest, stub):
    stub.Predict(window_request(np.ones((1, 4), np.float32)), timeout=TIMEOUT)
    with pytest.raises(grpc.RpcError):
        stub.Predict(window_request(np.ones((1, 4), np.float32), model="nope"), timeout=TIMEOUT)
    rest.call("POST", PREDICT, '{"instances": [[1,2,3,4]]}')
    status, page, response = rest.call("GET", "/monitoring/prometheus/metrics")
    assert status == 200 and response.getheader("Content-Type") == "text/plain"
    lines = page.splitlines()
    assert "# TYPE :tensorflow:serving:request_count counter" in lines
    assert "# TYPE :tensorflow:serving:request_latency histogram" in lines
    assert any(
        line.startswith(':tensorflow:serving:request_count{model_name="tiny",status="OK"} ')
        for line in lines
    )
    assert ':tensorflow:serving:request_count{model_name="nope",status="NOT_FOUND"} 1' in lines
    rest_latency = (
        ':tensorflow:serving:request_latency_count{model_name="tiny",API="predict",'
        'entrypoint="REST"} '
    )
    assert any(line.startswith(rest_latency) for line in lines)
    grpc_bucket = ':tensorflow:serving:request_latency_bucket{model_name="tiny",API="Predict",'
    assert grpc_bucket + 'entrypoint="GRPC",le="10"} ' in page
    status, text, _ = rest.call("GET", "/monitoring/prometheus/metrics?x=1")
    assert (status, text) == (
        400,
        "Unexpected path: /monitoring/prometheus/metrics?x=1. "
        "Should be /monitoring/prometheus/metrics",
    )


def test_monitoring_needs_the_rest_port(base_path):
    with pytest.raises(ServingConfigError):
        ModelServer(
            single_model_config(MODEL, str(base_path)), monitoring=MonitoringSettings(enable=True)
        )


# --- engine serve ------------------------------------------------------------------------------


def test_engine_serve_rest_flags_are_checked(capsys, tmp_path, base_path):
    bad = tmp_path / "monitoring.config"
    bad.write_text("prometheus_config { enable: maybe }")
    code, _, err = engine_in_process(
        capsys, "serve", "--model-base-path", str(base_path), "--monitoring_config_file", str(bad)
    )
    assert code == 2 and "Invalid protobuf file" in err
    bad.write_text("prometheus_config { enable: true }")
    code, _, err = engine_in_process(
        capsys, "serve", "--model-base-path", str(base_path), "--monitoring-config-file", str(bad)
    )
    assert code == 2 and "--rest_api_port" in err


def test_engine_serve_with_rest(tmp_path, base_path):
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true path: "/metrics" }')
    args = ["--model-base-path", base_path, "--model-name", "demo", "--port", "0"]
    args += ["--rest_api_port", "0", "--quiet", "--monitoring_config_file", monitoring]
    with fixtures.engine_serve_process(*args, "--rest-api-timeout-in-ms", "5000") as process:
        first = process.stdout.readline().rstrip()
        assert first.startswith("engine serve: REST API on http://127.0.0.1:")
        assert first.endswith(", metrics at /metrics")
        assert process.stdout.readline().startswith("engine serve: ready on 127.0.0.1:")
        address = first.split("http://", 1)[1].split(",", 1)[0]
        client = Rest(address)
        status, text, _ = client.call(
            "POST", "/v1/models/demo:predict", '{"instances": [[1,2,3,4]]}'
        )
        assert (status, text) == (200, '{\n    "predictions": [[3.25]\n    ]\n}')
        assert client.call("GET", "/metrics")[0] == 200
        client.connection.close()


# --- classify and regress on a model that has them ----------------------------------------------


class HalfPlusTwo(tf.Module):
    """TF Serving's half_plus_two test model's tf.Example signatures: y = 0.5 x + 2."""

    def __init__(self):
        super().__init__()
        self.a = tf.Variable(0.5)

    def _x(self, inputs):
        return tf.io.parse_example(inputs, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress_x_to_y(self, inputs):
        return {"outputs": self.a * self._x(inputs) + 2.0}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify_x_to_y(self, inputs):
        return {"scores": self.a * self._x(inputs) + 2.0}


@pytest.fixture(scope="module")
def examples_rest(tmp_path_factory):
    base = tmp_path_factory.mktemp("half_plus_two") / "default"
    module = HalfPlusTwo()
    signatures = {
        "regress_x_to_y": module.regress_x_to_y,
        "classify_x_to_y": module.classify_x_to_y,
    }
    tf.saved_model.save(module, str(base / "123"), signatures=signatures)
    with ModelServer(single_model_config("default", str(base)), port=0, rest_api_port=0) as server:
        client = Rest(server.rest_address)
        yield client
        client.connection.close()


def test_classify_and_regress_as_tf_serving_answers_them(examples_rest):
    """The cases of TF Serving's own tensorflow_model_server_test.py, byte for byte."""
    status, text, _ = examples_rest.call(
        "POST",
        "/v1/models/default:classify",
        '{"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}',
    )
    assert (status, text) == (200, '{\n    "results": [[["", 3.0]]\n    ]\n}')
    status, text, _ = examples_rest.call(
        "POST",
        "/v1/models/default:regress",
        '{"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}, {"x": 4.0}]}',
    )
    assert (status, text) == (200, '{\n    "results": [3.0, 4.0]\n}')
    status, body = examples_rest.json(
        "POST", "/v1/models/default/versions/123:regress", '{"signature_name": "regress_x_to_y"}'
    )
    assert status == 400 and body["error"].endswith(
        "When method is classify, key 'examples' is expected and was not found"
    )


# --- stopping -------------------------------------------------------------------------------------


def test_stop_closes_the_rest_port_and_its_connections(base_path):
    server = ModelServer(single_model_config(MODEL, str(base_path)), port=0, rest_api_port=0)
    server.start()
    client = Rest(server.rest_address)
    assert client.call("GET", f"/v1/models/{MODEL}")[0] == 200  # a keep-alive connection
    server.stop(grace=1.0)
    with pytest.raises((http.client.HTTPException, OSError)):
        client.call("GET", f"/v1/models/{MODEL}")
    with pytest.raises(OSError):
        Rest(server.rest_address).call("GET", f"/v1/models/{MODEL}")


# --- the REST deadline ----------------------------------------------------------------------------


def test_rest_deadline_answers_504():
    """--rest_api_timeout_in_ms: a predict still running at the deadline gets TF Serving's
    DEADLINE_EXCEEDED (504); the status API has no deadline."""
    signature = meta_graph_pb2.SignatureDef()
    signature.inputs["window"].dtype = tf.float32.as_datatype_enum
    servable = SimpleNamespace(signature_defs={"serving_default": signature})
    manager = SimpleNamespace(resolve=lambda spec: servable)
    release = threading.Event()

    def slow_predict(request, context):
        release.wait(5)
        raise AssertionError("answered after the deadline")

    api = RestApi(manager, SimpleNamespace(Predict=slow_predict), None, timeout_ms=50)
    try:
        reply = api.handle("POST", "/v1/models/m:predict", b'{"instances": [[1.0]]}')
    finally:
        release.set()
        api.close()
    assert reply.status == 504
    assert json.loads(reply.body) == {"error": "Timed out waiting for notification"}


def test_gzip_bodies_are_uncompressed(rest):
    """TF Serving's server uncompresses a gzip request body (Content-Encoding: gzip)."""
    body = gzip.compress(b'{"instances": [[1,2,3,4]]}')
    rest.connection.request("POST", PREDICT, body=body, headers={"Content-Encoding": "gzip"})
    response = rest.connection.getresponse()
    assert (response.status, response.read()) == (200, b'{\n    "predictions": [[3.25]\n    ]\n}')
    rest.connection.request("POST", PREDICT, body=b"not gzip", headers={"Content-Encoding": "gzip"})
    response = rest.connection.getresponse()
    assert response.status == 400
    assert json.loads(response.read()) == {"error": "JSON Parse error: The document is empty"}


def test_concurrent_rest_requests(server):
    """Eight clients at once, each on its own keep-alive connection."""
    results: list[tuple[int, str, float]] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        rest = Rest(server.rest_address)
        try:
            for step in range(10):
                value = float(index * 10 + step)
                body = json.dumps({"instances": [[value] * 4]})
                status, text, _ = rest.call("POST", PREDICT, body)
                with lock:
                    results.append((status, text, value))
        finally:
            rest.connection.close()

    threads = [threading.Thread(target=client, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 80
    for status, text, value in results:
        assert status == 200
        expected = np.float32(WEIGHTS[2][0]) * np.float32(value) + np.float32(WEIGHTS[2][1])
        np.testing.assert_allclose(predictions(text), [[expected]], rtol=1e-6)


# --- against the real TensorFlow Serving ----------------------------------------------------------

REAL_REST = os.environ.get("SEQCAST_TFSERVING_REST")
NUMBER = re.compile(r"-?(?:[0-9]+\.?[0-9]*(?:e[+-]?[0-9]+)?|NaN|Infinity)")


@pytest.mark.skipif(
    not REAL_REST,
    reason="SEQCAST_TFSERVING_REST is not set (host:port of a real TF Serving's REST)",
)
def test_same_answers_as_real_tensorflow_serving():
    """Our REST port and the real one (serving/deploy/, on SEQCAST_MODEL_BASE_PATH, default
    models/seqcast) answer the same requests alike: status codes and bodies byte for byte,
    numbers to float32 round-off (the two TensorFlow builds may differ in the last bit)."""
    model = os.environ.get("SEQCAST_TFSERVING_MODEL", "seqcast")
    base = os.environ.get("SEQCAST_MODEL_BASE_PATH", str(REPO / "models" / model))
    series = json.dumps([[float(v) for v in np.sin(np.arange(400) / 20.0) * 10 + 50]])
    requests = [
        ("GET", f"/v1/models/{model}", None),
        ("GET", "/v1/models/nope", None),
        ("GET", "/v1/models", None),
        ("PUT", f"/v1/models/{model}", b"{}"),
        ("POST", f"/v1/models/{model}:predict", f'{{"instances": {series}}}'),
        ("POST", f"/v1/models/{model}:predict", f'{{"inputs": {series}}}'),
        (
            "POST",
            f"/v1/models/{model}:predict",
            f'{{"signature_name": "forecast", "inputs": {{"series": {series}, "horizon": 3, '
            '"coverage": 0.9}}',
        ),
        ("POST", f"/v1/models/{model}:predict", '{"instances": [[1, 2]'),
        ("POST", f"/v1/models/{model}:predict", "{}"),
        ("POST", f"/v1/models/{model}:predict", ""),
        ("POST", f"/v1/models/{model}:predict", '{"instances": [["a"]]}'),
        ("POST", f"/v1/models/{model}:predict", '{"signature_name": "x", "instances": [1]}'),
        ("POST", "/v1/models/nope:predict", '{"instances": [[1]]}'),
        ("POST", f"/v1/models/{model}:regress", '{"examples": [{"x": 1.0}]}'),
        ("GET", "/nope", None),
    ]
    with ModelServer(single_model_config(model, base), port=0, rest_api_port=0) as ours:
        for method, path, body in requests:
            real_client, our_client = Rest(REAL_REST), Rest(ours.rest_address)
            real = real_client.call(method, path, body)[:2]
            got = our_client.call(method, path, body)[:2]
            real_client.connection.close()
            our_client.connection.close()
            assert got[0] == real[0], (method, path, got, real)
            assert NUMBER.sub("N", got[1]) == NUMBER.sub("N", real[1]), (method, path)
            ours_numbers = [float(n) for n in NUMBER.findall(got[1]) if n not in ("NaN",)]
            real_numbers = [float(n) for n in NUMBER.findall(real[1]) if n not in ("NaN",)]
            np.testing.assert_allclose(ours_numbers, real_numbers, rtol=1e-5, atol=1e-5)
