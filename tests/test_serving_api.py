"""TF Serving's API against the embedded server: Predict round trips, metadata, status,
health, UNIMPLEMENTED calls, concurrency, and reloading the config with labels and policies.

One server for the whole module (serving_fixtures: versions 1 and 2 of the tiny model on
disk, policy latest{1}, so version 2 serves), on a free loopback port.
"""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest
import serving_fixtures as fixtures
import tensorflow as tf
from google.protobuf import text_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serving_fixtures import MODEL, WEIGHTS, assert_still_answers, rpc_error, window_request

# The shared server's fixtures (pytest knows them as `base_path`, `server`, ...).
from serving_fixtures import tiny_base_path as tiny_base_path
from serving_fixtures import tiny_channel as tiny_channel
from serving_fixtures import tiny_client as tiny_client
from serving_fixtures import tiny_server as tiny_server
from serving_fixtures import tiny_stub as tiny_stub
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from serving.client import ServingClientError
from serving.config import single_model_config

TOLERANCE = dict(rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def in_process(base_path):
    return tf.saved_model.load(str(base_path / "2"))


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


@pytest.mark.parametrize(
    ("method", "request_type", "message"),
    [
        ("Classify", classification_pb2.ClassificationRequest, "No classification inputs"),
        ("Regress", regression_pb2.RegressionRequest, "No regression inputs"),
        ("MultiInference", inference_pb2.MultiInferenceRequest, "Unsupported signature"),
    ],
    ids=["Classify", "Regress", "MultiInference"],
)
def test_inference_methods_on_a_predict_only_model(stub, method, request_type, message):
    """The tiny model has no classification or regression signature: TF Serving's errors
    (tests/test_serving_classify.py covers models that have them)."""
    error = rpc_error(getattr(stub, method), request_type())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # no model spec, or no name
    request = request_type()
    if method == "MultiInference":
        task = request.tasks.add(method_name="tensorflow/serving/predict")
        task.model_spec.name = MODEL
    else:
        request.model_spec.name = MODEL
    error = rpc_error(getattr(stub, method), request)
    expected = grpc.StatusCode.UNIMPLEMENTED if method == "MultiInference" else None
    assert error.code() == (expected or grpc.StatusCode.INVALID_ARGUMENT), error.details()
    assert error.details().startswith(message)


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
