"""Classify, Regress and MultiInference over gRPC, as TF Serving answers them, on a TF2
SavedModel with tf.Example signatures (TF Serving's half_plus_two testdata, rebuilt with
`tf.saved_model.save`: `y = 0.5 x + 2`, `y2 = 0.5 x + 3`). TF1 exports: test_serving_tf1.py.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import serving_fixtures as fixtures
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.config import single_model_config
from serving.server import ModelServer

MODEL = "half_plus_two"
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"
FEATURES = {
    "x": tf.io.FixedLenFeature([1], tf.float32),
    "x2": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
}
EXAMPLES = tf.TensorSpec([None], tf.string, name="inputs")


class HalfPlusTwoExamples(tf.Module):
    """half_plus_two's tf.Example signatures, plus two with outputs TF Serving refuses."""

    def __init__(self):
        super().__init__()
        self.a = tf.Variable(0.5)

    def _x(self, inputs, key="x"):
        return tf.io.parse_example(inputs, FEATURES)[key]  # [batch, 1]

    @tf.function(input_signature=[EXAMPLES])
    def regress_x_to_y(self, inputs):
        return {"outputs": self.a * self._x(inputs) + 2.0}

    @tf.function(input_signature=[EXAMPLES])
    def regress_x_to_y2(self, inputs):
        return {"outputs": tf.squeeze(self.a * self._x(inputs) + 3.0, axis=1)}  # [batch]

    @tf.function(input_signature=[EXAMPLES])
    def classify_x_to_y(self, inputs):
        return {"scores": self.a * self._x(inputs) + 2.0}

    @tf.function(input_signature=[EXAMPLES])
    def classify_labels(self, inputs):
        x = self._x(inputs)
        scores = tf.concat([x, 2.0 * x], axis=1)
        labels = tf.tile(tf.constant([["one", "two"]]), [tf.shape(x)[0], 1])
        return {"classes": labels, "scores": scores}

    @tf.function(input_signature=[EXAMPLES])
    def bad_scores(self, inputs):
        return {"scores": self._x(inputs)[:, 0]}  # rank 1: not [batch, classes]

    @tf.function(input_signature=[EXAMPLES])
    def bad_outputs(self, inputs):
        return {"outputs": tf.tile(self._x(inputs), [1, 2])}  # [batch, 2]


def example(**features) -> tf.train.Example:
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                key: tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
                for key, value in features.items()
            }
        )
    )


def with_examples(request, *examples):
    request.input.example_list.examples.extend(examples)
    return request


def regression_request(signature="regress_x_to_y", *examples) -> regression_pb2.RegressionRequest:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = signature
    return with_examples(request, *examples)


def classification_request(signature, *examples) -> classification_pb2.ClassificationRequest:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = signature
    return with_examples(request, *examples)


def task(request, signature, method, model=MODEL):
    added = request.tasks.add(method_name=method)
    added.model_spec.name = model
    added.model_spec.signature_name = signature
    return added


def warmup() -> list[prediction_log_pb2.PredictionLog]:
    """One record of each kind TF Serving replays, besides predict."""
    multi = inference_pb2.MultiInferenceRequest()
    task(multi, "regress_x_to_y", REGRESS)
    with_examples(multi, example(x=1.0))
    return [
        prediction_log_pb2.PredictionLog(
            regress_log=prediction_log_pb2.RegressLog(
                request=regression_request("regress_x_to_y", example(x=1.0))
            )
        ),
        prediction_log_pb2.PredictionLog(
            classify_log=prediction_log_pb2.ClassifyLog(
                request=classification_request("classify_labels", example(x=1.0))
            )
        ),
        prediction_log_pb2.PredictionLog(
            multi_inference_log=prediction_log_pb2.MultiInferenceLog(request=multi)
        ),
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base_path = tmp_path_factory.mktemp("classify") / MODEL
    module = HalfPlusTwoExamples()
    signatures = {
        name: getattr(module, name)
        for name in (
            "regress_x_to_y",
            "regress_x_to_y2",
            "classify_x_to_y",
            "classify_labels",
            "bad_scores",
            "bad_outputs",
        )
    }
    signatures["serving_default"] = module.regress_x_to_y
    tf.saved_model.save(module, str(base_path / "7"), signatures=signatures)
    extra = base_path / "7" / "assets.extra"
    extra.mkdir()
    with tf.io.TFRecordWriter(str(extra / "tf_serving_warmup_requests")) as writer:
        for record in warmup():
            writer.write(record.SerializeToString())
    events: list[str] = []
    config = single_model_config(MODEL, str(base_path))
    with ModelServer(config, port=0, on_event=events.append) as server:
        server.events = events
        yield server


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(server.address)
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


def test_warmup_replays_classify_regress_and_multi_inference(server):
    assert any(f"loaded {MODEL} version 7 (3 warmup requests)" in e for e in server.events)


def test_regress(stub):
    response = stub.Regress(regression_request("", example(x=2.0), example(x=4.0)), timeout=30)
    assert [r.value for r in response.result.regressions] == [3.0, 4.0]
    # An empty signature name is serving_default, and the response says so (MakeModelSpec).
    spec = response.model_spec
    assert (spec.name, spec.signature_name, spec.version.value) == (MODEL, "serving_default", 7)
    response = stub.Regress(regression_request("regress_x_to_y2", example(x=2.0)), timeout=30)
    assert [r.value for r in response.result.regressions] == [4.0]  # a [batch] output


def test_examples_with_context(stub):
    request = regression_request("regress_x_to_y")
    context = request.input.example_list_with_context
    context.context.CopyFrom(example(x=2.0))
    context.examples.extend([tf.train.Example(), example(x=4.0)])  # an example's own x wins
    response = stub.Regress(request, timeout=30)
    assert [r.value for r in response.result.regressions] == [3.0, 4.0]


def test_classify(stub):
    response = stub.Classify(classification_request("classify_x_to_y", example(x=2.0)), timeout=30)
    assert [
        [(c.label, c.score) for c in row.classes] for row in response.result.classifications
    ] == [[("", 3.0)]]
    request = classification_request("classify_labels", example(x=1.0), example(x=3.0))
    response = stub.Classify(request, timeout=30)
    assert [
        [(c.label, c.score) for c in row.classes] for row in response.result.classifications
    ] == [
        [("one", 1.0), ("two", 2.0)],
        [("one", 3.0), ("two", 6.0)],
    ]
    assert response.model_spec.signature_name == "classify_labels"


ERRORS = {
    "empty input": (
        lambda stub: stub.Regress(regression_request("regress_x_to_y"), timeout=30),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Input is empty.",
    ),
    "unknown signature": (
        lambda stub: stub.Classify(classification_request("nope", example(x=1.0)), timeout=30),
        grpc.StatusCode.INVALID_ARGUMENT,
        "No signature was found with the name: nope",
    ),
    "classify a regression signature": (
        lambda stub: stub.Classify(
            classification_request("regress_x_to_y", example(x=1.0)), timeout=30
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        'Expected classification signature outputs to contain at least one of "classes" or '
        '"scores". Signature was: inputs {',
    ),
    "regress a classification signature": (
        lambda stub: stub.Regress(
            regression_request("classify_labels", example(x=1.0)), timeout=30
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Expected one output Tensor.",
    ),
    "scores of rank 1": (
        lambda stub: stub.Classify(
            classification_request("bad_scores", example(x=1.0)), timeout=30
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Expected Tensor shape: [batch_size num_classes] but got [1]",
    ),
    "outputs [batch, 2]": (
        lambda stub: stub.Regress(regression_request("bad_outputs", example(x=1.0)), timeout=30),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got [1,2]",
    ),
    "the graph refuses a feature": (
        lambda stub: stub.Regress(
            regression_request(
                "regress_x_to_y",
                tf.train.Example(
                    features=tf.train.Features(
                        feature={"x": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))}
                    )
                ),
            ),
            timeout=30,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Name: <unknown>, Key: x, Index: 0.  Data types don't match.",  # ParseExample's words
    ),
    "no model spec": (
        lambda stub: stub.Classify(classification_pb2.ClassificationRequest(), timeout=30),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Missing ModelSpec",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_as_tf_serving_words_them(stub, case):
    call, code, message = ERRORS[case]
    with pytest.raises(grpc.RpcError) as caught:
        call(stub)
    assert caught.value.code() == code, caught.value.details()
    assert caught.value.details().startswith(message), caught.value.details()


def test_multi_inference(stub):
    request = inference_pb2.MultiInferenceRequest()
    task(request, "classify_labels", CLASSIFY)
    with_examples(request, example(x=2.0))
    response = stub.MultiInference(request, timeout=30)
    (result,) = response.results
    assert [
        (c.label, c.score) for c in result.classification_result.classifications[0].classes
    ] == [
        ("one", 2.0),
        ("two", 4.0),
    ]
    assert result.model_spec.signature_name == "classify_labels"
    assert result.model_spec.version.value == 7


def test_multi_inference_feeds_each_tf2_signature_the_same_examples(stub):
    """A TF2 SavedModel gives each signature its own input placeholder; as newer TF Serving,
    every one of them is fed the request's examples."""
    request = inference_pb2.MultiInferenceRequest()
    task(request, "regress_x_to_y", REGRESS)
    task(request, "regress_x_to_y2", REGRESS)
    with_examples(request, example(x=2.0))
    first, second = stub.MultiInference(request, timeout=30).results
    assert first.regression_result.regressions[0].value == 3.0
    assert second.regression_result.regressions[0].value == 4.0


def multi_inference_error(stub, edit) -> grpc.RpcError:
    request = inference_pb2.MultiInferenceRequest()
    with_examples(request, example(x=2.0))
    edit(request)
    with pytest.raises(grpc.RpcError) as caught:
        stub.MultiInference(request, timeout=30)
    return caught.value


@pytest.mark.parametrize(
    ("edit", "code", "message"),
    [
        (
            lambda r: (task(r, "regress_x_to_y", REGRESS), task(r, "regress_x_to_y", REGRESS)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Duplicate evaluation of signature: regress_x_to_y",
        ),
        (
            lambda r: (task(r, "regress_x_to_y", REGRESS), task(r, "x", REGRESS, model="other")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "All ModelSpecs in a MultiInferenceRequest must access the same model name.",
        ),
        (
            lambda r: (task(r, "regress_x_to_y", REGRESS), task(r, "x", REGRESS, model="")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Found ModelSpec with an empty model name.",
        ),
        (
            lambda r: task(r, "nope", REGRESS),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Requested signature not found in model graph: nope",
        ),
        (
            lambda r: task(r, "regress_x_to_y", "tensorflow/serving/predict"),
            grpc.StatusCode.UNIMPLEMENTED,
            "Unsupported signature method_name: tensorflow/serving/predict",
        ),
        (
            lambda r: r.tasks.add(),
            grpc.StatusCode.INVALID_ARGUMENT,
            "ModelSpec has no name specified.",
        ),
        (
            lambda r: (task(r, "regress_x_to_y", REGRESS), r.ClearField("input")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Input is empty.",
        ),
    ],
    ids=[
        "duplicate",
        "two models",
        "empty name",
        "unknown signature",
        "predict",
        "task without model spec",
        "no input",
    ],
)
def test_multi_inference_errors(stub, edit, code, message):
    error = multi_inference_error(stub, edit)
    assert error.code() == code and error.details() == message, error.details()


def test_the_server_still_predicts(stub):
    # The tf.Example signatures are ordinary signatures to Predict.
    request = fixtures.window_request(np.ones((1, 4), np.float32), model=MODEL)
    request.model_spec.signature_name = "regress_x_to_y"
    request.inputs.clear()
    request.inputs["inputs"].CopyFrom(
        tf.make_tensor_proto([example(x=6.0).SerializeToString()], dtype=tf.string)
    )
    response = stub.Predict(request, timeout=30)
    assert tf.make_ndarray(response.outputs["outputs"]).tolist() == [[5.0]]
