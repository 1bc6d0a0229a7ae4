"""TF1 exports (no TF2 object graph) served through a session, as TF Serving serves every
model: TF Serving's half_plus_two testdata rebuilt with `tf.compat.v1.saved_model.Builder`
(one `tf_example` placeholder shared by its regress and classify signatures, so
MultiInference runs them together; an init op the loader must run)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import serving_fixtures as fixtures
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    inference_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving import runners
from serving.config import single_model_config
from serving.errors import ServingError
from serving.servable import Servable
from serving.server import ModelServer

v1 = tf.compat.v1
REGRESS = "tensorflow/serving/regress"
CLASSIFY = "tensorflow/serving/classify"


def build_half_plus_two_v1(path) -> None:
    """`y = 0.5 x + 2` (Predict on `x [-1, 1]`), `regress_x_to_y`, `regress_x_to_y2`
    (`0.5 x + 3`), `classify_x_to_y` (scores) on one tf_example placeholder, and
    `regress_x2_to_y3` on another. Predict's offset is 0 in the checkpoint and set to 2 by
    the main op, so a right answer shows the loader ran it."""
    graph = tf.Graph()
    with graph.as_default():
        examples = v1.placeholder(tf.string, [None], name="tf_example")
        other_examples = v1.placeholder(tf.string, [None], name="tf_example_x2")
        spec = {"x": tf.io.FixedLenFeature([1], tf.float32)}
        x_from_example = v1.io.parse_example(examples, spec)["x"]
        x2 = v1.io.parse_example(other_examples, {"x2": tf.io.FixedLenFeature([1], tf.float32)})[
            "x2"
        ]
        a = v1.Variable(0.5, name="a")
        offset = v1.Variable(0.0, name="offset")
        y = tf.add(a * x_from_example, 2.0, name="y")
        y2 = tf.add(a * x_from_example, 3.0, name="y2")
        y3 = tf.add(a * x2, 3.0, name="y3")
        x = v1.placeholder(tf.float32, [None, 1], name="x")
        predicted = tf.add(a * x, offset, name="predicted")
        main_op = tf.group(v1.assign(offset, 2.0))
        utils = v1.saved_model.signature_def_utils
        signatures = {
            "serving_default": utils.predict_signature_def({"x": x}, {"y": predicted}),
            "regress_x_to_y": utils.regression_signature_def(examples, y),
            "regress_x_to_y2": utils.regression_signature_def(examples, y2),
            "regress_x2_to_y3": utils.regression_signature_def(other_examples, y3),
            "classify_x_to_y": utils.classification_signature_def(examples, None, y),
        }
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(
                session, ["serve"], signature_def_map=signatures, main_op=main_op
            )
            builder.save()


def example(x: float) -> tf.train.Example:
    feature = tf.train.Feature(float_list=tf.train.FloatList(value=[x]))
    return tf.train.Example(features=tf.train.Features(feature={"x": feature}))


@pytest.fixture(scope="module")
def base_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tf1") / "half_plus_two"
    build_half_plus_two_v1(path / "1")
    return path


@pytest.fixture(scope="module")
def servable(base_path):
    return Servable.load("half_plus_two", 1, base_path / "1")


def predict(servable, x, **kwargs):
    request = fixtures.window_request(np.asarray(x), model="half_plus_two")
    request.inputs["x"].CopyFrom(request.inputs.pop("window"))
    return tf.make_ndarray(servable.predict(request, **kwargs).outputs["y"])


def test_a_tf1_export_runs_in_a_session(servable):
    assert servable.runner.kind == "session"
    assert set(servable.signature_defs) >= {"serving_default", "regress_x_to_y"}
    np.testing.assert_allclose(predict(servable, np.array([[2.0], [4.0]], np.float32)), [[3], [4]])


def test_the_graph_decides_shapes_and_dtypes_are_checked(servable):
    # A session feed has no shape check: x [3] for [-1, 1] runs (TF Serving's behaviour).
    np.testing.assert_allclose(predict(servable, np.array([2.0, 4.0, 6.0], np.float32)), [3, 4, 5])
    with pytest.raises(ServingError) as caught:
        predict(servable, np.array([[2.0]], np.float64))
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message == "Expects arg[0] to be float but double is provided"


@pytest.fixture(scope="module")
def stub(base_path):
    with ModelServer(single_model_config("half_plus_two", str(base_path)), port=0) as server:
        channel = grpc.insecure_channel(server.address)
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
        channel.close()


def test_regress_classify_and_multi_inference_over_grpc(stub):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "regress_x_to_y"
    request.input.example_list.examples.extend([example(2.0), example(6.0)])
    response = stub.Regress(request, timeout=30)
    assert [r.value for r in response.result.regressions] == [3.0, 5.0]

    # TF Serving's MultiInferenceTest: one input, three signatures over it.
    multi = inference_pb2.MultiInferenceRequest()
    multi.input.example_list.examples.append(example(2.0))
    for signature, method in (
        ("regress_x_to_y", REGRESS),
        ("regress_x_to_y2", REGRESS),
        ("classify_x_to_y", CLASSIFY),
    ):
        task = multi.tasks.add(method_name=method)
        task.model_spec.name = "half_plus_two"
        task.model_spec.signature_name = signature
    response = stub.MultiInference(multi, timeout=30)
    first, second, third = response.results
    assert first.regression_result.regressions[0].value == 3.0
    assert second.regression_result.regressions[0].value == 4.0
    assert third.classification_result.classifications[0].classes[0].score == 3.0

    task = multi.tasks.add(method_name=REGRESS)
    task.model_spec.name = "half_plus_two"
    task.model_spec.signature_name = "regress_x2_to_y3"
    with pytest.raises(grpc.RpcError) as caught:
        stub.MultiInference(multi, timeout=30)
    # Another string input: as newer TF Serving, it is fed the same examples, which have no x2.
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Feature: x2 (data type: float) is required but could not be found." in (
        caught.value.details()
    )


def test_metadata_and_predict_over_grpc(stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "half_plus_two"
    response = stub.GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert signatures.signature_def["classify_x_to_y"].method_name == CLASSIFY
    request = fixtures.window_request(np.array([[8.0]], np.float32), model="half_plus_two")
    request.inputs["x"].CopyFrom(request.inputs.pop("window"))
    response = stub.Predict(request, timeout=30)
    assert list(response.outputs["y"].float_val) == [6.0]


def test_a_model_tf_saved_model_load_cannot_load_falls_back_to_a_session(tmp_path, monkeypatch):
    fixtures.write_version(tmp_path / "m", 1, 2.0, 0.5)

    def refuse(*args, **kwargs):
        raise ValueError("cannot restore this object graph")

    monkeypatch.setattr(runners.tf.saved_model, "load", refuse)
    servable = Servable.load("m", 1, tmp_path / "m" / "1")
    assert servable.runner.kind == "session"
    assert servable.warm_up() == 2  # the contract's two warmup records run in the session
    series = np.arange(16, dtype=np.float32).reshape(2, 8)
    response = servable.predict(fixtures.forecast_request(series, np.int32(3)))
    np.testing.assert_allclose(
        tf.make_ndarray(response.outputs["forecast"]),
        fixtures.reference_forecast(series, 3, 2.0, 0.5),
        rtol=1e-5,
    )
