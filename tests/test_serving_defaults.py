"""Optional signature inputs (`SignatureDef.defaults`), as TF Serving handles them.

A request may leave out an input the signature gives a default value; then the default is
fed. Every other rule stays: an input with no default must be sent, and a name outside the
signature is refused (`GetInputValues` in tensorflow/cc/saved_model/util.cc).
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from serving.errors import ServingError
from serving.servable import Servable


class Scaler(tf.Module):
    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.float32, name="x"),
            tf.TensorSpec([], tf.float32, name="factor"),
        ]
    )
    def scaled(self, x, factor=tf.constant(2.0)):
        return {"y": x * factor}


@pytest.fixture(scope="module")
def servable(tmp_path_factory):
    path = tmp_path_factory.mktemp("defaults") / "1"
    module = Scaler()
    # The tf.function itself, not a concrete function: only then are its defaults saved.
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.scaled})
    return Servable.load("scaler", 1, path)


def _request(**inputs) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "scaler"
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    return request


def _y(response) -> np.ndarray:
    return tf.make_ndarray(response.outputs["y"])


def test_the_saved_signature_declares_the_default(servable):
    defaults = servable.signature_defs["serving_default"].defaults
    assert list(defaults) == ["factor"]
    assert tf.make_ndarray(defaults["factor"]) == pytest.approx(2.0)


def test_a_left_out_input_takes_its_default(servable):
    x = np.array([1.0, 2.5], np.float32)
    np.testing.assert_array_equal(_y(servable.predict(_request(x=x))), x * 2.0)


def test_a_sent_input_overrides_its_default(servable):
    x = np.array([1.0, 2.5], np.float32)
    response = servable.predict(_request(x=x, factor=np.float32(3.0)))
    np.testing.assert_array_equal(_y(response), x * 3.0)


def test_an_input_without_default_is_still_required(servable):
    with pytest.raises(ServingError) as caught:
        servable.predict(_request(factor=np.float32(3.0)))
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert str(caught.value.message).startswith(
        "Signature input alias: x(feed name: serving_default_x:0) not found in request and no "
        "default value provided."
    )


def test_an_unknown_name_is_refused_when_the_default_fills_in(servable):
    with pytest.raises(ServingError) as caught:
        servable.predict(_request(x=np.ones(2, np.float32), scale=np.float32(3.0)))
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message == (
        "Inputs contains invalid name. Used request inputs: x, request input: scale,x"
    )


def test_too_many_inputs_are_refused_before_defaults_matter(servable):
    request = _request(x=np.ones(2, np.float32), factor=np.float32(1.0), extra=np.float32(1.0))
    with pytest.raises(ServingError) as caught:
        servable.predict(request)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "input size does not match signature: 3!=2" in caught.value.message
