"""Predict as TF Serving answers it: a tensor of another rank than the signature declares
goes to the graph (its own error is the answer), and outputs come in the typed value fields
(`Tensor::AsProtoField`) unless the server is told `--enable_serialization_as_tensor_content`.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import serving_fixtures as fixtures
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2

from serving import tensors
from serving.client import ForecastClient
from serving.config import single_model_config
from serving.errors import ServingError
from serving.servable import Servable
from serving.server import ModelServer


class HalfPlusTwo(tf.Module):
    """`y = 0.5 x + 2` on `x [-1, 1]`, and one output of each dtype for the field tests."""

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    def half_plus_two(self, x):
        return {"y": 0.5 * x + 2.0}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def dtypes(self, x):
        return {
            "double": tf.cast(x, tf.float64),
            "half": tf.cast(x, tf.float16),
            "int8": tf.cast(x, tf.int8),
            "int32": tf.cast(x, tf.int32),
            "int64": tf.cast(x, tf.int64),
            "uint32": tf.cast(x, tf.uint32),
            "bool": x > 0,
            "string": tf.strings.as_string(x, precision=1),
            "complex": tf.complex(x, -x),
        }


@pytest.fixture(scope="module")
def servable(tmp_path_factory):
    path = tmp_path_factory.mktemp("half_plus_two") / "1"
    module = HalfPlusTwo()
    signatures = {"serving_default": module.half_plus_two, "dtypes": module.dtypes}
    tf.saved_model.save(module, str(path), signatures=signatures)
    return Servable.load("half_plus_two", 1, path)


def _request(x, signature="serving_default") -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = signature
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray(x, np.float32)))
    return request


# --- shapes: the graph decides ----------------------------------------------------------


def test_another_rank_goes_to_the_graph(servable):
    # TF Serving feeds x [1] to the [-1, 1] placeholder; the graph broadcasts and answers.
    response = servable.predict(_request([3.0]))
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), [3.5])
    response = servable.predict(_request([[[1.0]], [[3.0]]]))  # rank 3
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), [[[2.5]], [[3.5]]])


def test_a_rank_the_graph_refuses_is_its_own_invalid_argument(tmp_path):
    fixtures.write_version(tmp_path / "tiny", 1)
    tiny = Servable.load("tiny", 1, tmp_path / "tiny" / "1")
    with pytest.raises(ServingError) as caught:
        tiny.predict(fixtures.window_request(np.ones(4, np.float32), model="tiny"))
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "signature expects" not in caught.value.message  # no check of ours in between
    # The strided slice's own words; which of the graph's two slices fails first varies.
    message = caught.value.message
    assert "out of bounds" in message or "Index out of range using input dim 1" in message


# --- typed fields or tensor_content ------------------------------------------------------

FIELDS = {
    "double": "double_val",
    "half": "half_val",
    "int8": "int_val",
    "int32": "int_val",
    "int64": "int64_val",
    "uint32": "uint32_val",
    "bool": "bool_val",
    "string": "string_val",
    "complex": "scomplex_val",
}


def test_outputs_fill_the_typed_fields_as_as_proto_field_does(servable):
    x = np.array([1.0, 2.0, 3.0], np.float32)
    response = servable.predict(_request(x, "dtypes"))
    expected = {
        alias: value.numpy()
        for alias, value in servable.runner.loaded.signatures["dtypes"](x=tf.constant(x)).items()
    }
    for alias, field in FIELDS.items():
        proto = response.outputs[alias]
        assert not proto.tensor_content, alias
        assert proto.ListFields()[-1][0].name == field, alias  # the only value field set
        np.testing.assert_array_equal(tf.make_ndarray(proto), expected[alias])
    # Every value is written, as AsProtoField does (no shortening of repeated values).
    y = servable.predict(_request(np.full((3, 1), 2.0, np.float32))).outputs["y"]
    assert list(y.float_val) == [3.0, 3.0, 3.0] and y.dtype == types_pb2.DT_FLOAT
    assert [dim.size for dim in y.tensor_shape.dim] == [3, 1]
    # The very tensor TensorFlow's own AsProtoField writes (tf.make_tensor_proto of a
    # float32 array is tensor_content, so compare values and fields, not bytes).
    assert expected["half"].view(np.uint16).tolist() == list(response.outputs["half"].half_val)


def test_tensor_content_when_asked(servable):
    x = np.array([1.0, -2.0], np.float32)
    response = servable.predict(_request(x, "dtypes"), tensor_content=True)
    for alias in FIELDS:
        proto = response.outputs[alias]
        assert proto.tensor_content and len(proto.ListFields()) == 3, alias
    for alias in set(FIELDS) - {"string"}:  # make_ndarray cannot read string tensor_content
        expected = servable.predict(_request(x, "dtypes")).outputs[alias]
        np.testing.assert_array_equal(
            tf.make_ndarray(response.outputs[alias]), tf.make_ndarray(expected)
        )
    # Strings use TensorFlow's encoding (varint lengths, then the bytes); we read it back.
    np.testing.assert_array_equal(
        tensors.to_ndarray(response.outputs["string"]), np.array([b"1.0", b"-2.0"], object)
    )


def test_string_tensor_content_is_tensorflows_encoding():
    values = [b"", b"a", b"x" * 200]
    proto = tensors.from_ndarray(np.array(values, object), tensor_content=True)
    assert proto.tensor_content == bytes([0, 1, 200 & 0x7F | 0x80, 1]) + b"a" + b"x" * 200
    np.testing.assert_array_equal(tensors.to_ndarray(proto), np.array(values, object))
    bad = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_content=b"\x05ab")
    bad.tensor_shape.dim.add(size=1)
    with pytest.raises(tensors.TensorParseError):
        tensors.to_ndarray(bad)


@pytest.mark.parametrize("tensor_content", [False, True], ids=["fields", "tensor_content"])
def test_the_client_reads_both(tmp_path, tensor_content):
    fixtures.write_version(tmp_path / "m", 1, 2.0, 0.5)
    config = single_model_config("m", str(tmp_path / "m"))
    with ModelServer(config, port=0, tensor_content=tensor_content) as server:
        with ForecastClient(server.address, timeout=30) as client:
            series = np.arange(12, dtype=np.float32).reshape(2, 6)
            result = client.forecast("m", series, 3)
            np.testing.assert_allclose(
                result.values, fixtures.reference_forecast(series, 3, 2.0, 0.5), rtol=1e-5
            )
            _, response = client.predict("m", {"window": series})
            assert bool(response.outputs["forecast"].tensor_content) == tensor_content
            assert bool(response.outputs["forecast"].float_val) != tensor_content
