"""Classify, Regress and MultiInference on one loaded version, as TF Serving runs them.

The request's `tf.Example`s (an `example_list`, or an `example_list_with_context` whose
context is prepended to each example's bytes) are serialized into a 1-D string tensor and
fed to the signature's one input, `inputs`. A classification signature answers `classes`
(string `[batch, classes]`) and/or `scores` (float `[batch, classes]`), a regression
signature `outputs` (float `[batch]` or `[batch, 1]`). Signatures are checked by their
inputs and outputs, not their method_name, as TF Serving does by default
(`--enable_signature_method_name_check` off). Codes and messages follow classifier.cc,
regressor.cc, multi_inference.cc and util.cc.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    input_pb2,
    regression_pb2,
)

from serving.errors import ServingError, invalid_argument

if TYPE_CHECKING:
    from serving.servable import Servable

DEFAULT_SIGNATURE = "serving_default"
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"


def classify(
    servable: Servable, request: classification_pb2.ClassificationRequest
) -> classification_pb2.ClassificationResponse:
    name, signature = _signature(servable, request.model_spec, _check_classification)
    examples = serialized_examples(request.input)
    aliases = [alias for alias in ("classes", "scores") if alias in signature.outputs]
    outputs = servable.runner.run(name, signature, {"inputs": examples}, aliases)
    response = classification_pb2.ClassificationResponse()
    _model_spec(response.model_spec, servable, name)
    _classification_result(outputs, len(examples), response.result)
    return response


def regress(
    servable: Servable, request: regression_pb2.RegressionRequest
) -> regression_pb2.RegressionResponse:
    name, signature = _signature(servable, request.model_spec, _check_regression)
    examples = serialized_examples(request.input)
    outputs = servable.runner.run(name, signature, {"inputs": examples}, ["outputs"])
    response = regression_pb2.RegressionResponse()
    _model_spec(response.model_spec, servable, name)
    _regression_result(outputs["outputs"], len(examples), response.result)
    return response


def multi_inference(
    servable: Servable, request: inference_pb2.MultiInferenceRequest
) -> inference_pb2.MultiInferenceResponse:
    """Several classify/regress tasks of one model over one input, checked as TF Serving's
    TensorFlowMultiInferenceRunner checks them. Each task then runs its own signature (TF
    Serving fetches them all in one session run; for a model without state the answers
    are the same).

    Signatures fed by different input tensors (a TF2 SavedModel gives each signature its
    own) each get the same serialized examples, as newer TF Serving feeds them (util.h's
    PerformOneShotTensorComputation over several input names; its model-server test runs
    regress_x_to_y with classify_x_to_y on the TF2 half_plus_two). Where one of those
    inputs is not a string tensor the request is refused as multi_inference.cc does."""
    model_name, plan = "", []
    input_names: set[str] = set()
    all_strings = True
    for task in request.tasks:
        if not task.model_spec.name:
            raise invalid_argument("Found ModelSpec with an empty model name.")
        if model_name and task.model_spec.name != model_name:
            raise invalid_argument(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name."
            )
        model_name = task.model_spec.name
        name = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if any(name == planned for planned, _, _ in plan):
            raise invalid_argument(f"Duplicate evaluation of signature: {name}")
        signature = servable.signature_defs.get(name)
        if signature is None:
            raise invalid_argument(f"Requested signature not found in model graph: {name}")
        if task.method_name == CLASSIFY:
            _check_classification(signature)
        elif task.method_name == REGRESS:
            _check_regression(signature)
        else:
            raise ServingError(
                grpc.StatusCode.UNIMPLEMENTED,
                f"Unsupported signature method_name: {task.method_name}",
            )
        input_names.add(signature.inputs["inputs"].name)
        all_strings = all_strings and signature.inputs["inputs"].dtype == types_pb2.DT_STRING
        if len(input_names) > 1 and not all_strings:
            raise invalid_argument("Input tensor must be the same for all Signatures.")
        plan.append((name, signature, task))
    examples = serialized_examples(request.input)
    response = inference_pb2.MultiInferenceResponse()
    for name, signature, task in plan:
        result = response.results.add()
        if task.method_name == CLASSIFY:
            aliases = [alias for alias in ("classes", "scores") if alias in signature.outputs]
            outputs = servable.runner.run(name, signature, {"inputs": examples}, aliases)
            _classification_result(outputs, len(examples), result.classification_result)
        else:
            outputs = servable.runner.run(name, signature, {"inputs": examples}, ["outputs"])
            _regression_result(outputs["outputs"], len(examples), result.regression_result)
        _model_spec(result.model_spec, servable, name)
    return response


def serialized_examples(request_input: input_pb2.Input) -> np.ndarray:
    """`InputToSerializedExampleTensor`: one serialized tf.Example per entry, context first."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        examples = [example.SerializeToString() for example in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = request_input.example_list_with_context
        context = with_context.context.SerializeToString()
        # Concatenated messages merge: an example's own features override the context's.
        examples = [context + example.SerializeToString() for example in with_context.examples]
    else:
        examples = []
    if not examples:
        raise invalid_argument("Input is empty.")
    array = np.empty(len(examples), dtype=object)
    array[:] = examples
    return array


# --- signatures ----------------------------------------------------------------------


def _signature(servable: Servable, model_spec, check) -> tuple[str, meta_graph_pb2.SignatureDef]:
    name = model_spec.signature_name or DEFAULT_SIGNATURE
    signature = servable.signature_defs.get(name)
    if signature is None or not servable.runner.can_run(name):
        raise invalid_argument(f"No signature was found with the name: {name}")
    check(signature)
    return name, signature


def _debug_string(signature: meta_graph_pb2.SignatureDef) -> str:
    return text_format.MessageToString(signature)


def _check_classification(signature: meta_graph_pb2.SignatureDef) -> None:
    """`PreProcessClassification`: one input `inputs`, and `classes` and/or `scores`."""
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise invalid_argument(
            f"Expected one or two output Tensors, found {len(signature.outputs)}"
        )
    if "inputs" not in signature.inputs:
        raise invalid_argument(
            f"No classification inputs found in SignatureDef: {_debug_string(signature)}"
        )
    if "classes" not in signature.outputs and "scores" not in signature.outputs:
        raise invalid_argument(
            'Expected classification signature outputs to contain at least one of "classes" '
            f'or "scores". Signature was: {_debug_string(signature)}'
        )


def _check_regression(signature: meta_graph_pb2.SignatureDef) -> None:
    """`PreProcessRegression`: one input `inputs`, one output `outputs`."""
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if "inputs" not in signature.inputs:
        raise invalid_argument(
            f"No regression inputs found in SignatureDef: {_debug_string(signature)}"
        )
    if "outputs" not in signature.outputs:
        raise invalid_argument(
            f"No regression outputs found in SignatureDef: {_debug_string(signature)}"
        )


# --- results -------------------------------------------------------------------------


def _model_spec(model_spec, servable: Servable, signature_name: str) -> None:
    """`MakeModelSpec`: the model's name, the signature (default filled in), the version."""
    model_spec.name = servable.name
    model_spec.signature_name = signature_name
    model_spec.version.value = servable.version


def _shape(array: np.ndarray) -> str:
    return f"[{','.join(str(size) for size in array.shape)}]"


def _dtype_name(array: np.ndarray) -> str:
    if array.dtype.kind in "OSU":
        return "DT_STRING"
    return types_pb2.DataType.Name(tf.as_dtype(array.dtype).as_datatype_enum)


def _classification_result(outputs: dict[str, np.ndarray], count: int, result) -> None:
    """`PostProcessClassificationResult`: validate classes/scores, then one Classifications
    per example with one Class (label and/or score) per column."""
    classes, scores = outputs.get("classes"), outputs.get("scores")
    for alias, array, dtype in (("classes", classes, "DT_STRING"), ("scores", scores, "DT_FLOAT")):
        if array is None:
            continue
        if array.ndim != 2:
            raise invalid_argument(
                f"Expected Tensor shape: [batch_size num_classes] but got {_shape(array)}"
            )
        if _dtype_name(array) != dtype:
            raise invalid_argument(f"Expected {alias} Tensor of {dtype}. Got: {_dtype_name(array)}")
        if array.shape[0] != count:
            raise invalid_argument(
                f"Expected {alias} output batch size of {count}. Got: {array.shape[0]}"
            )
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument(
            "Tensors class and score should match in dim_size(1). Got "
            f"{classes.shape[1]} vs. {scores.shape[1]}"
        )
    columns = (classes if classes is not None else scores).shape[1]
    for row in range(count):
        classifications = result.classifications.add()
        for column in range(columns):
            entry = classifications.classes.add()
            if classes is not None:
                label = classes[row, column]
                # Class.label is a proto string: bytes that are not UTF-8 cannot go in it.
                entry.label = label.decode(errors="replace") if isinstance(label, bytes) else label
            if scores is not None:
                entry.score = float(scores[row, column])


def _regression_result(output: np.ndarray, count: int, result) -> None:
    """`PostProcessRegressionResult`: `[batch]` or `[batch, 1]` floats, one per example."""
    if not (output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1)):
        raise invalid_argument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but "
            f"got {_shape(output)}"
        )
    if output.shape[0] != count:
        raise invalid_argument(
            f"Input batch size did not match output batch size: {count} vs. {output.shape[0]}"
        )
    if _dtype_name(output) != "DT_FLOAT":
        raise invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {_dtype_name(output)}")
    for value in output.reshape(-1).tolist():
        result.regressions.add(value=value)
