"""The deployment files, and the client against a real TensorFlow Serving when one is given.

SEQCAST_TFSERVING_TARGET=host:port (and SEQCAST_TFSERVING_MODEL, default `seqcast`) runs
the client against that server, e.g. the container of serving/deploy/docker-compose.yml.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import serving_fixtures as fixtures
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,  # noqa: F401 - registers wrappers.proto in the pool
)
from tensorflow_serving.config import model_server_config_pb2

from serving.client import ForecastClient
from serving.config import load_model_config
from serving.server import ModelServer

DEPLOY = Path(__file__).resolve().parents[1] / "serving" / "deploy"


def batching_parameters_class():
    """`tensorflow.serving.BatchingParameters`.

    Its generated module (session_bundle_config_pb2) is not part of tensorflow-serving-api,
    so build the message from its definition in TF Serving's session_bundle_config.proto:
    a typo'd or mistyped field in our file then fails to parse, as it would in the server.
    """
    try:
        from tensorflow_serving.servables.tensorflow import session_bundle_config_pb2

        return session_bundle_config_pb2.BatchingParameters
    except ImportError:
        pass
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="seqcast_test/batching_parameters.proto",
        package="seqcast_test",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = file_proto.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    wrapped = [
        ("max_batch_size", 1, ".google.protobuf.Int64Value"),
        ("batch_timeout_micros", 2, ".google.protobuf.Int64Value"),
        ("max_enqueued_batches", 3, ".google.protobuf.Int64Value"),
        ("num_batch_threads", 4, ".google.protobuf.Int64Value"),
        ("thread_pool_name", 5, ".google.protobuf.StringValue"),
    ]
    for name, number, type_name in wrapped:
        message.field.add(
            name=name,
            number=number,
            type=field.TYPE_MESSAGE,
            type_name=type_name,
            label=field.LABEL_OPTIONAL,
        )
    message.field.add(
        name="allowed_batch_sizes", number=6, type=field.TYPE_INT64, label=field.LABEL_REPEATED
    )
    message.field.add(
        name="pad_variable_length_inputs",
        number=7,
        type=field.TYPE_BOOL,
        label=field.LABEL_OPTIONAL,
    )
    pool = descriptor_pool.Default()
    try:
        descriptor = pool.FindMessageTypeByName("seqcast_test.BatchingParameters")
    except KeyError:
        descriptor = pool.Add(file_proto).message_types_by_name["BatchingParameters"]
    return message_factory.GetMessageClass(descriptor)


def test_batching_parameters_parse():
    parameters = text_format.Parse(
        (DEPLOY / "batching_parameters.txt").read_text(), batching_parameters_class()()
    )
    assert parameters.max_batch_size.value == 256
    assert 0 < parameters.batch_timeout_micros.value <= 10_000
    assert parameters.num_batch_threads.value >= 1
    assert parameters.max_enqueued_batches.value >= 1
    assert not parameters.pad_variable_length_inputs


def test_models_config_parses_and_serves(tmp_path):
    text = (DEPLOY / "models.config").read_text()
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert model.name == "seqcast" and model.base_path == "/models/seqcast"
    assert model.model_platform == "tensorflow"
    assert model.model_version_policy.latest.num_versions == 1

    # The same file, pointed at a local base path, drives our server.
    fixtures.write_version(tmp_path / "seqcast", 3, 1.0, 0.0)
    local = tmp_path / "models.config"
    local.write_text(text.replace("/models/seqcast", str(tmp_path / "seqcast")))
    with ModelServer(load_model_config(local), port=0) as server:
        with ForecastClient(server.address, timeout=30) as client:
            result = client.forecast("seqcast", np.ones((1, 8), np.float32), 2)
    assert result.version == 3
    np.testing.assert_allclose(result.values, [[1.0, 1.0]], rtol=1e-6)


def test_compose_file_runs_tensorflow_serving_with_our_files():
    compose = (DEPLOY / "docker-compose.yml").read_text()
    image = re.search(r"image:\s*tensorflow/serving:\$\{TF_SERVING_TAG:-([\w.]+)\}", compose)
    assert image and re.fullmatch(r"2\.\d+\.\d+", image.group(1))
    for flag in (
        "--port=8500",
        "--rest_api_port=8501",
        "--model_config_file=/config/models.config",
        "--file_system_poll_wait_seconds=1",
        "--enable_batching=",
        "--batching_parameters_file=/config/batching_parameters.txt",
    ):
        assert flag in compose, flag
    assert re.search(r":/models/seqcast:ro", compose)
    for mounted in ("./models.config:", "./batching_parameters.txt:"):
        assert mounted in compose and (DEPLOY / mounted[2:-1]).exists()
    assert '"127.0.0.1:8500:8500"' in compose and '"127.0.0.1:8501:8501"' in compose


TARGET = os.environ.get("SEQCAST_TFSERVING_TARGET")


@pytest.mark.skipif(
    not TARGET, reason="SEQCAST_TFSERVING_TARGET is not set (host:port of a real TF Serving)"
)
def test_client_against_real_tensorflow_serving():
    model = os.environ.get("SEQCAST_TFSERVING_MODEL", "seqcast")
    with ForecastClient(TARGET, timeout=30) as client:
        states = client.status(model)
        assert "AVAILABLE" in states.values()
        signatures = client.signature_defs(model)
        assert {"serving_default", "forecast"} <= set(signatures)
        series = (np.sin(np.arange(400) / 20.0) * 10 + 50).astype(np.float32)[None, :]
        result = client.forecast(model, series, 5)
        assert result.values.shape == (1, 5) and np.isfinite(result.values).all()
        assert result.model_name == model and result.signature_name == "forecast"
        assert states.get(result.version) == "AVAILABLE"
        next_value = client.next_value(model, series)
        assert next_value.values.shape == (1, 1)
        # The forecast's first step is the next value of the same series.
        np.testing.assert_allclose(next_value.values[:, 0], result.values[:, 0], rtol=1e-4)
        if client.has_band(model):
            # TF Serving feeds the SignatureDef's default coverage (0.9) when it is left out.
            explicit = client.forecast(model, series, 5, coverage=0.9)
            assert result.lower is not None and np.all(result.lower <= result.values)
            np.testing.assert_allclose(result.upper, explicit.upper, rtol=1e-6)
            narrow = client.forecast(model, series, 5, coverage=0.5)
            assert np.all(narrow.upper - narrow.lower <= result.upper - result.lower)
