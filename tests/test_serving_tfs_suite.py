"""TF Serving's own model-server tests (tensorflow_model_server_test.py and its
test_util/tensorflow_model_server_test_base.py), ported to `engine serve`: the same
requests and assertions, against the embedded server started in-process (a subprocess
where the case is about the command line). Left out, as the brief of this port says: the
TFLite, TensorRT, GPU, profiler and tf_text cases. `testPredictBatching` comes from an
earlier version of the file (the newest has no batching case); `_TestBadModel*` are
disabled upstream (their names start with `_`) and are not ported.

As upstream, every server is started with a REST port, `--rest_api_timeout_in_ms=5000`
and a gRPC Unix socket, and one server is shared by the cases that ask for the same
flags. The models are rebuilt by tests/tfs_testdata.py; the small text test data is in
tests/data/tfs/ (with TF Serving's notice).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
import tensorflow as tf
import tfs_testdata
from serving_fixtures import free_port
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.batching import load_batching_parameters
from serving.config import load_model_config, single_model_config
from serving.grpc_options import parse_channel_arguments
from serving.metrics import load_monitoring_config
from serving.server import ModelServer

REPO = Path(__file__).resolve().parents[1]
TESTDATA = Path(__file__).resolve().parent / "data" / "tfs"
RPC_TIMEOUT = 20.0
HTTP_REST_TIMEOUT_MS = 5000
DEFAULT_SERVING_SIGNATURE_DEF_KEY = "serving_default"


# -- upstream's helpers ---------------------------------------------------------------------


def call_rest(url, req, max_attempts=5):
    """Returns HTTP response body from a REST API call (test_base's CallREST)."""
    for attempt in range(max_attempts):
        try:
            json_data = json.dumps(req).encode("utf-8") if req is not None else None
            with urllib.request.urlopen(
                urllib.request.Request(url, data=json_data), timeout=RPC_TIMEOUT
            ) as resp:
                return resp.read()
        except Exception:
            if attempt == max_attempts - 1:
                raise
            time.sleep(1)


def sorted_object(obj):
    """Returns sorted object (with nested list/dictionaries) (test_base's SortedObject)."""
    if isinstance(obj, dict):
        return sorted((k, sorted_object(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return sorted(sorted_object(x) for x in obj)
    if isinstance(obj, tuple):
        return list(sorted(sorted_object(x) for x in obj))
    return obj


def model_version(model_path) -> int:
    """test_base's _GetModelVersion: the one integer-named directory under the path."""
    return int(os.listdir(model_path)[0])


def verify_model_spec(actual_model_spec, exp_model_name, exp_signature_name, exp_version):
    assert actual_model_spec.name == exp_model_name
    assert actual_model_spec.signature_name == exp_signature_name
    assert actual_model_spec.version.value == exp_version


def verify_predict_request(
    model_server_address,
    expected_output,
    expected_version,
    model_name="default",
    specify_output=True,
    batch_input=False,
    signature_name=DEFAULT_SERVING_SIGNATURE_DEF_KEY,
    rpc_timeout=RPC_TIMEOUT,
):
    """Send PredictionService.Predict request and verify output (test_base's)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(2.0)
    dim = request.inputs["x"].tensor_shape.dim.add()
    dim.size = 1
    if batch_input:
        request.inputs["x"].tensor_shape.dim.add().size = 1
    if specify_output:
        request.output_filter.append("y")
    with grpc.insecure_channel(model_server_address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        result = stub.Predict(request, rpc_timeout)
    assert "y" in result.outputs
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert len(result.outputs["y"].float_val) == 1
    assert result.outputs["y"].float_val[0] == expected_output
    verify_model_spec(result.model_spec, request.model_spec.name, signature_name, expected_version)


# -- test data and servers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def testdata(tmp_path_factory):
    """TF Serving's testdata directory: the rebuilt models and the copied text files."""
    root = tmp_path_factory.mktemp("tfs_testdata")
    tfs_testdata.half_plus_v1(root / "saved_model_half_plus_two_cpu", b=2.0)
    tfs_testdata.half_plus_v1(root / "saved_model_half_plus_three", b=3.0)
    tfs_testdata.half_plus_two_tf2(root / "saved_model_half_plus_two_tf2_cpu")
    template = (TESTDATA / "good_model_config.txt").read_text()
    config = template.replace(
        "${TEST_HALF_PLUS_TWO_DIR}", str(root / "saved_model_half_plus_two_cpu")
    ).replace("${TEST_HALF_PLUS_THREE_DIR}", str(root / "saved_model_half_plus_three"))
    (root / "good_model_config.conf").write_text(config)
    return root


class Servers:
    """test_base's RunServer: one server per set of arguments, reused; all stopped at the
    end of the module. Returns (server, gRPC host:port, REST host:port)."""

    def __init__(self, scratch: Path):
        self.scratch = scratch
        self.running: dict[tuple, tuple] = {}

    def run(
        self,
        model_name,
        model_path,
        model_config_file=None,
        monitoring_config_file=None,
        batching_parameters_file=None,
        grpc_channel_arguments="",
        model_config_file_poll_period=None,
    ):
        key = (
            model_name,
            str(model_path),
            model_config_file,
            monitoring_config_file,
            batching_parameters_file,
            grpc_channel_arguments,
            model_config_file_poll_period,
        )
        if key in self.running:
            return self.running[key]
        if model_config_file:
            config = load_model_config(model_config_file)
        elif model_path:
            config = single_model_config(model_name, str(model_path))
        else:
            raise ValueError("Both model_config_file and model_path cannot be empty!")
        socket_path = self.scratch / f"tf-serving-{len(self.running)}.sock"
        server = ModelServer(
            config,
            port=0,
            rest_api_port=0,
            rest_api_timeout_ms=HTTP_REST_TIMEOUT_MS,
            grpc_socket_path=str(socket_path),
            monitoring=load_monitoring_config(monitoring_config_file)
            if monitoring_config_file
            else None,
            batching=load_batching_parameters(batching_parameters_file)
            if batching_parameters_file
            else None,
            channel_arguments=parse_channel_arguments(grpc_channel_arguments),
            model_config_file=model_config_file,
            model_config_file_poll_wait_seconds=model_config_file_poll_period or 0,
        ).start()
        server.socket_path = socket_path
        self.running[key] = (server, server.address, server.rest_address)
        return self.running[key]

    def stop(self):
        for server, _, _ in self.running.values():
            server.stop(grace=1.0)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    running = Servers(tmp_path_factory.mktemp("tfs_servers"))
    yield running
    running.stop()


@pytest.fixture
def half_plus_two(testdata):
    return testdata / "saved_model_half_plus_two_cpu"


@pytest.fixture
def half_plus_three(testdata):
    return testdata / "saved_model_half_plus_three"


@pytest.fixture
def half_plus_two_tf2(testdata):
    return testdata / "saved_model_half_plus_two_tf2_cpu"


# -- the cases ------------------------------------------------------------------------------


def test_get_model_status(servers, half_plus_two):
    """testGetModelStatus"""
    model_server_address = servers.run("default", half_plus_two)[1]
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "default"
    with grpc.insecure_channel(model_server_address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        result = stub.GetModelStatus(request, RPC_TIMEOUT)
    assert len(result.model_version_status) == 1
    assert result.model_version_status[0].version == 123
    # OK error code (0) indicates no error occurred
    assert result.model_version_status[0].status.error_code == 0


def test_get_model_metadata(servers, half_plus_two):
    """testGetModelMetadata"""
    model_server_address = servers.run("default", half_plus_two)[1]
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "default"
    request.metadata_field.append("signature_def")
    with grpc.insecure_channel(model_server_address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        result = stub.GetModelMetadata(request, RPC_TIMEOUT)
    assert result.model_spec.name == "default"
    assert result.model_spec.version.value == model_version(half_plus_two)
    assert len(result.metadata) == 1
    assert "signature_def" in result.metadata


def _classify(servers, model_path):
    model_server_address = servers.run("default", model_path)[1]
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "classify_x_to_y"
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.extend([2.0])
    with grpc.insecure_channel(model_server_address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        result = stub.Classify(request, RPC_TIMEOUT)
    assert len(result.result.classifications) == 1
    assert len(result.result.classifications[0].classes) == 1
    expected_output = 3.0
    assert result.result.classifications[0].classes[0].score == expected_output
    verify_model_spec(
        result.model_spec,
        request.model_spec.name,
        request.model_spec.signature_name,
        model_version(model_path),
    )


def test_classify(servers, half_plus_two):
    """testClassify: TF1 model."""
    _classify(servers, half_plus_two)


def test_classify_tf2(servers, half_plus_two_tf2):
    """testClassifyTf2"""
    _classify(servers, half_plus_two_tf2)


def _regress(servers, model_path):
    model_server_address = servers.run("default", model_path)[1]
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "regress_x_to_y"
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.extend([2.0])
    with grpc.insecure_channel(model_server_address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        result = stub.Regress(request, RPC_TIMEOUT)
    assert len(result.result.regressions) == 1
    expected_output = 3.0
    assert result.result.regressions[0].value == expected_output
    verify_model_spec(
        result.model_spec,
        request.model_spec.name,
        request.model_spec.signature_name,
        model_version(model_path),
    )


def test_regress(servers, half_plus_two):
    """testRegress: TF1 model."""
    _regress(servers, half_plus_two)


def test_regress_tf2(servers, half_plus_two_tf2):
    """testRegressTf2"""
    _regress(servers, half_plus_two_tf2)


def _multi_inference(servers, model_path):
    model_server_address = servers.run("default", model_path)[1]
    request = inference_pb2.MultiInferenceRequest()
    request.tasks.add().model_spec.name = "default"
    request.tasks[0].model_spec.signature_name = "regress_x_to_y"
    request.tasks[0].method_name = "tensorflow/serving/regress"
    request.tasks.add().model_spec.name = "default"
    request.tasks[1].model_spec.signature_name = "classify_x_to_y"
    request.tasks[1].method_name = "tensorflow/serving/classify"
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.extend([2.0])
    with grpc.insecure_channel(model_server_address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        result = stub.MultiInference(request, RPC_TIMEOUT)
    assert len(result.results) == 2
    expected_output = 3.0
    assert result.results[0].regression_result.regressions[0].value == expected_output
    assert (
        result.results[1].classification_result.classifications[0].classes[0].score
        == expected_output
    )
    for i in range(2):
        verify_model_spec(
            result.results[i].model_spec,
            request.tasks[i].model_spec.name,
            request.tasks[i].model_spec.signature_name,
            model_version(model_path),
        )


def test_multi_inference(servers, half_plus_two):
    """testMultiInference: TF1 model."""
    _multi_inference(servers, half_plus_two)


def test_multi_inference_tf2(servers, half_plus_two_tf2):
    """testMultiInferenceTf2"""
    _multi_inference(servers, half_plus_two_tf2)


def _predict(servers, model_path, batching_parameters_file=None):
    """test_base's _TestPredict."""
    model_server_address = servers.run(
        "default", model_path, batching_parameters_file=batching_parameters_file
    )[1]
    expected_version = model_version(model_path)
    verify_predict_request(
        model_server_address, expected_output=3.0, expected_version=expected_version
    )
    verify_predict_request(
        model_server_address,
        expected_output=3.0,
        specify_output=False,
        expected_version=expected_version,
    )


def test_predict_saved_model(servers, half_plus_two):
    """testPredictSavedModel"""
    _predict(servers, half_plus_two)


def test_predict_batching(servers, half_plus_two):
    """testPredictBatching (an earlier version of the file; it used the SessionBundle
    export, which TF Serving no longer loads, so the SavedModel here)."""
    _predict(servers, half_plus_two, batching_parameters_file=str(TESTDATA / "batching_config.txt"))


def test_good_model_config(servers, testdata, half_plus_two, half_plus_three):
    """testGoodModelConfig"""
    model_server_address = servers.run(
        None, None, model_config_file=str(testdata / "good_model_config.conf")
    )[1]
    for specify_output in (True, False):
        verify_predict_request(
            model_server_address,
            model_name="half_plus_two",
            expected_output=3.0,
            specify_output=specify_output,
            expected_version=model_version(half_plus_two),
        )
    for specify_output in (True, False):
        verify_predict_request(
            model_server_address,
            model_name="half_plus_three",
            expected_output=4.0,
            specify_output=specify_output,
            expected_version=model_version(half_plus_three),
        )


def test_bad_model_config(tmp_path):
    """testBadModelConfig, with TF Serving's command line: the server refuses to start."""
    command = [sys.executable, "-m", "engine", "serve"]
    command += [f"--port={free_port()}", f"--rest_api_port={free_port()}"]
    command += [f"--rest_api_timeout_in_ms={HTTP_REST_TIMEOUT_MS}"]
    command += [f"--grpc_socket_path={tmp_path / 'tf-serving.sock'}"]
    command += [f"--model_config_file={TESTDATA / 'bad_model_config.txt'}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, timeout=120)
    error_message = "Error parsing text-format tensorflow.serving.ModelServerConfig"
    error_message = error_message.encode("utf-8")
    assert proc.stderr is not None
    assert proc.stderr.find(error_message) > -1
    assert proc.returncode != 0


BASE_CONFIG_PROTO = """
    model_config_list: {{
      config: {{
        name: "{name}",
        base_path: "{model_path}",
        model_platform: "tensorflow"
      }}
    }}
    """


def test_model_config_reload(servers, tmp_path, half_plus_two, half_plus_three):
    """testModelConfigReload: the server polls the file system for its model config."""
    config_path = tmp_path / "model_config.txt"
    config_path.write_text(BASE_CONFIG_PROTO.format(name="half_plus_two", model_path=half_plus_two))
    poll_period = 1
    model_server_address = servers.run(
        None,
        None,
        model_config_file=str(config_path),
        model_config_file_poll_period=poll_period,
    )[1]
    verify_predict_request(
        model_server_address,
        model_name="half_plus_two",
        expected_output=3.0,
        specify_output=False,
        expected_version=model_version(half_plus_two),
    )
    config_path.write_text(
        BASE_CONFIG_PROTO.format(name="half_plus_three", model_path=half_plus_three)
    )
    # Upstream sleeps poll_period + 1 s; here a bounded wait for the same event.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            verify_predict_request(
                model_server_address,
                model_name="half_plus_three",
                expected_output=4.0,
                specify_output=False,
                expected_version=model_version(half_plus_three),
            )
            break
        except grpc.RpcError:
            time.sleep(0.2)
    verify_predict_request(
        model_server_address,
        model_name="half_plus_three",
        expected_output=4.0,
        specify_output=False,
        expected_version=model_version(half_plus_three),
    )


def test_model_config_reload_with_zero_poll_period(
    servers, tmp_path, half_plus_two, half_plus_three
):
    """testModelConfigReloadWithZeroPollPeriod: the server does not poll for its config."""
    config_path = tmp_path / "model_config.txt"
    config_path.write_text(BASE_CONFIG_PROTO.format(name="half_plus_two", model_path=half_plus_two))
    poll_period = 0
    model_server_address = servers.run(
        None,
        None,
        model_config_file=str(config_path),
        model_config_file_poll_period=poll_period,
    )[1]
    verify_predict_request(
        model_server_address,
        model_name="half_plus_two",
        expected_output=3.0,
        specify_output=False,
        expected_version=model_version(half_plus_two),
    )
    config_path.write_text(
        BASE_CONFIG_PROTO.format(name="half_plus_three", model_path=half_plus_three)
    )
    time.sleep(poll_period + 1)
    verify_predict_request(
        model_server_address,
        model_name="half_plus_two",
        expected_output=3.0,
        specify_output=False,
        expected_version=model_version(half_plus_three),
    )


def test_good_grpc_channel_args(servers, half_plus_two, half_plus_three):
    """testGoodGrpcChannelArgs"""
    model_server_address = servers.run(
        "default",
        half_plus_two,
        grpc_channel_arguments="grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb",
    )[1]
    verify_predict_request(
        model_server_address,
        expected_output=3.0,
        specify_output=False,
        expected_version=model_version(half_plus_three),
    )


def _rest(servers, model_path):
    host, port = servers.run("default", model_path)[2].split(":")
    return host, port


def test_classify_rest(servers, half_plus_two):
    """testClassifyREST"""
    host, port = _rest(servers, half_plus_two)
    url = f"http://{host}:{port}/v1/models/default:classify"
    json_req = {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
    resp_data = call_rest(url, json_req)
    assert json.loads(resp_data.decode()) == {"results": [[["", 3.0]]]}


def test_regress_rest(servers, half_plus_two):
    """testRegressREST"""
    host, port = _rest(servers, half_plus_two)
    url = f"http://{host}:{port}/v1/models/default:regress"
    json_req = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}
    resp_data = call_rest(url, json_req)
    assert json.loads(resp_data.decode()) == {"results": [3.0]}


def test_predict_rest(servers, half_plus_two):
    """testPredictREST"""
    host, port = _rest(servers, half_plus_two)
    url = f"http://{host}:{port}/v1/models/default:predict"
    resp_data = call_rest(url, {"instances": [2.0, 3.0, 4.0]})
    assert json.loads(resp_data.decode()) == {"predictions": [3.0, 3.5, 4.0]}


def test_predict_columnar_rest(servers, half_plus_two):
    """testPredictColumnarREST"""
    host, port = _rest(servers, half_plus_two)
    url = f"http://{host}:{port}/v1/models/default:predict"
    resp_data = call_rest(url, {"inputs": [2.0, 3.0, 4.0]})
    assert json.loads(resp_data.decode()) == {"outputs": [3.0, 3.5, 4.0]}


def test_get_status_rest(servers, half_plus_two):
    """testGetStatusREST"""
    host, port = _rest(servers, half_plus_two)
    resp_data = call_rest(f"http://{host}:{port}/v1/models/default", None)
    assert json.loads(resp_data.decode()) == {
        "model_version_status": [
            {
                "version": "123",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


def test_get_model_metadata_rest(servers, half_plus_two):
    """testGetModelMetadataREST"""
    host, port = _rest(servers, half_plus_two)
    resp_data = call_rest(f"http://{host}:{port}/v1/models/default/metadata", None)
    expected_metadata = json.loads((TESTDATA / "half_plus_two_model_metadata.json").read_text())
    # As upstream: the JSON is sorted before comparing (the metadata has no order).
    assert sorted_object(json.loads(resp_data.decode())) == sorted_object(expected_metadata)


def test_prometheus_endpoint(servers, half_plus_two):
    """testPrometheusEndpoint"""
    host, port = servers.run(
        "default", half_plus_two, monitoring_config_file=str(TESTDATA / "monitoring_config.txt")
    )[2].split(":")
    resp_data = call_rest(f"http://{host}:{port}/monitoring/prometheus/metrics", None)
    assert "# TYPE" in (resp_data.decode("utf-8") if resp_data is not None else None)


def test_predict_uds(servers, half_plus_two, half_plus_three):
    """testPredictUDS: prediction over the gRPC Unix domain socket."""
    server = servers.run("default", half_plus_two)[0]
    model_server_address = f"unix:{server.socket_path}"
    verify_predict_request(
        model_server_address,
        expected_output=3.0,
        specify_output=False,
        expected_version=model_version(half_plus_three),
    )


def test_tf_saved_model_save(servers, tmp_path):
    """test_tf_saved_model_save"""
    base_path = tmp_path / "tf_saved_model_save"
    export_path = base_path / "00000123"
    root = tf.train.Checkpoint()
    root.v1 = tf.Variable(3.0)
    root.v2 = tf.Variable(2.0)
    root.f = tf.function(lambda x: {"y": root.v1 * root.v2 * x})
    to_save = root.f.get_concrete_function(tf.TensorSpec(None, tf.float32))
    tf.saved_model.save(root, str(export_path), to_save)
    _, model_server_address, _ = servers.run("default", base_path)
    expected_version = model_version(base_path)
    verify_predict_request(
        model_server_address,
        expected_output=12.0,
        specify_output=False,
        expected_version=expected_version,
    )


def test_tf_saved_model_save_multiple_signatures(servers, tmp_path):
    """test_tf_saved_model_save_multiple_signatures"""
    base_path = tmp_path / "tf_saved_model_save"
    export_path = base_path / "00000123"
    root = tf.train.Checkpoint()
    root.f = tf.function(lambda x: {"y": 1.0}, input_signature=[tf.TensorSpec(None, tf.float32)])
    root.g = tf.function(lambda x: {"y": 2.0}, input_signature=[tf.TensorSpec(None, tf.float32)])
    tf.saved_model.save(
        root,
        str(export_path),
        signatures={DEFAULT_SERVING_SIGNATURE_DEF_KEY: root.f, "custom_signature_key": root.g},
    )
    _, model_server_address, _ = servers.run("default", base_path)
    expected_version = model_version(base_path)
    verify_predict_request(
        model_server_address,
        expected_output=2.0,
        expected_version=expected_version,
        signature_name="custom_signature_key",
    )
    verify_predict_request(
        model_server_address, expected_output=1.0, expected_version=expected_version
    )


def test_sequential_keras_saved_model_save(servers, tmp_path):
    """test_sequential_keras_saved_model_save: a SavedModel of a Keras Sequential model."""
    model = tf.keras.models.Sequential()
    model.add(tf.keras.layers.Input(dtype="float32", shape=(1,), name="x"))
    model.add(tf.keras.layers.Lambda(lambda x: x, name="y"))
    base_path = tmp_path / "keras_sequential_saved_model_save"
    export_path = base_path / "00000123"
    # Keras 3 names a saved model's signature input after its call argument (`inputs`) and
    # its output `output_0`; Keras 2, which upstream ran, after the Input and last layers.
    # The signature below names them as Keras 2 did, so the same request can be sent.
    serve = tf.function(
        lambda x: {"y": model(x)}, input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")]
    )
    tf.saved_model.save(model, str(export_path), signatures={"serving_default": serve})
    _, model_server_address, _ = servers.run("default", base_path)
    expected_version = model_version(base_path)
    verify_predict_request(
        model_server_address,
        batch_input=True,
        specify_output=False,
        expected_output=2.0,
        expected_version=expected_version,
    )


# Two virtual CPUs must be configured before TensorFlow starts, so the model is built in a
# process of its own (upstream's SetVirtualCpus(2) runs first in its test process).
DISTRAT_SCRIPT = """
import sys
import tensorflow as tf
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(devices=("/cpu:0", "/cpu:1"))
with strategy.scope():
    model = tf.keras.models.Sequential()
    model.add(tf.keras.layers.Input(dtype="float32", shape=(1,), name="x"))
    model.add(tf.keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros"))
    model.add(tf.keras.layers.Lambda(lambda x: x, name="y"))
# Keras 2's signature names, as in test_sequential_keras_saved_model_save.
serve = tf.function(
    lambda x: {"y": model(x)}, input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")]
)
tf.saved_model.save(model, sys.argv[1], signatures={"serving_default": serve})
"""


def test_distrat_sequential_keras_saved_model_save(servers, tmp_path):
    """test_distrat_sequential_keras_saved_model_save: a Keras model built under a
    MirroredStrategy over two virtual CPUs."""
    base_path = tmp_path / "keras_sequential_saved_model_save"
    export_path = base_path / "00000123"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    built = subprocess.run(
        [sys.executable, "-c", DISTRAT_SCRIPT, str(export_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    _, model_server_address, _ = servers.run("default", base_path)
    expected_version = model_version(base_path)
    verify_predict_request(
        model_server_address,
        batch_input=True,
        specify_output=False,
        expected_output=2.0,
        expected_version=expected_version,
    )
