"""One loaded version of one model: its SavedModel, its SignatureDefs, and Predict on it
(Classify, Regress and MultiInference on it: serving/inference.py).

Requests are checked as TF Serving's RunPredict checks them (input count, aliases, dtypes)
and nothing more: a tensor of another shape than the signature declares goes to the graph,
as a session feed does, and the graph's own error (INVALID_ARGUMENT) is the answer. Warmup
records (all four kinds of PredictionLog) replay before a version is marked AVAILABLE. How
the SavedModel is loaded and run (TF2 functions or a TF1 session): serving/runners.py.
Status codes and messages: docs/serving.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from serving import inference, tensors
from serving.errors import ServingError, invalid_argument
from serving.runners import SERVE_TAG, FunctionRunner, SessionRunner, load_runner

DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving's limit
WARMUP_KINDS = ("predict_log", "classify_log", "regress_log", "multi_inference_log")


@dataclass
class Servable:
    """One loaded version of one model: the restored SavedModel and its SignatureDefs."""

    name: str
    version: int
    path: Path
    runner: FunctionRunner | SessionRunner  # runs a signature by alias
    signature_defs: dict[str, meta_graph_pb2.SignatureDef]

    @classmethod
    def load(cls, name: str, version: int, path: Path) -> Servable:
        saved_model = saved_model_pb2.SavedModel()
        saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
        serve_graphs = [
            graph for graph in saved_model.meta_graphs if SERVE_TAG in graph.meta_info_def.tags
        ]
        if not serve_graphs:
            raise ValueError(f"{path}: no MetaGraph tagged 'serve'")
        runner = load_runner(path, serve_graphs[0])
        return cls(name, version, path, runner, dict(serve_graphs[0].signature_def))

    def predict(
        self, request: predict_pb2.PredictRequest, tensor_content: bool = False
    ) -> predict_pb2.PredictResponse:
        """Run one PredictRequest, validating it as TF Serving's RunPredict does; outputs in
        the typed value fields, or as `tensor_content` when `tensor_content` is set."""
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature = self.signature_defs.get(signature_name)
        if signature is None or not self.runner.can_run(signature_name):
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{signature_name}" not found.',
            )
        feeds = self._inputs(signature, request)
        aliases = self._output_aliases(signature, request)
        outputs = self.runner.run(signature_name, signature, feeds, aliases)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.name
        response.model_spec.version.value = self.version
        response.model_spec.signature_name = signature_name
        for alias in aliases:
            response.outputs[alias].CopyFrom(
                tensors.from_ndarray(outputs[alias], tensor_content=tensor_content)
            )
        return response

    @staticmethod
    def _inputs(
        signature: meta_graph_pb2.SignatureDef, request: predict_pb2.PredictRequest
    ) -> dict[str, np.ndarray]:
        """Request tensors by alias: count, names, parsing and dtypes checked in TF's order
        (`RunPredict`, then `GetInputValues`); an input the signature gives a default value
        (`SignatureDef.defaults`) may be left out."""
        requested = set(request.inputs.keys())
        expected = set(signature.inputs.keys())
        if len(requested) > len(expected) or (
            len(requested) < len(expected) and not signature.defaults
        ):
            raise invalid_argument(
                f"input size does not match signature: {len(requested)}!={len(expected)} "
                f"len({{{','.join(sorted(requested))}}}) != len({{{','.join(sorted(expected))}}})"
                f". Sent extra: {{{','.join(sorted(requested - expected))}}}. "
                f"Missing but required: {{{','.join(sorted(expected - requested))}}}."
            )
        protos = {}
        for alias in sorted(expected):
            if alias in request.inputs:
                protos[alias] = request.inputs[alias]
            elif alias in signature.defaults:  # an optional input the request left out
                protos[alias] = signature.defaults[alias]
            else:
                raise invalid_argument(
                    f"Signature input alias: {alias}(feed name: {signature.inputs[alias].name})"
                    " not found in request and no default value provided. Inputs expected to "
                    f"be in the request {{{','.join(sorted(requested))}}}, or default input "
                    f"alias set: {','.join(sorted(signature.defaults))}"
                )
        if requested - expected:  # fewer inputs than the signature, one of them not in it
            raise invalid_argument(
                f"Inputs contains invalid name. Used request inputs: "
                f"{','.join(sorted(requested & expected))}, request input: "
                f"{','.join(sorted(requested))}"
            )
        feeds = {}
        for index, (alias, proto) in enumerate(protos.items()):
            info = signature.inputs[alias]
            try:
                value = tensors.to_ndarray(proto)
            except tensors.TensorParseError as error:
                raise invalid_argument(f"tensor parsing error: {alias}") from error
            if proto.dtype != info.dtype:
                raise invalid_argument(
                    f"Expects arg[{index}] to be {tensors.dtype_name(info.dtype)} but "
                    f"{tensors.dtype_name(proto.dtype)} is provided"
                )
            feeds[alias] = value
        return feeds

    @staticmethod
    def _output_aliases(
        signature: meta_graph_pb2.SignatureDef, request: predict_pb2.PredictRequest
    ) -> list[str]:
        """`output_filter`, checked as TF Serving does; empty means every output."""
        seen: list[str] = []
        for alias in request.output_filter:
            if alias not in signature.outputs:
                raise invalid_argument(
                    f"output tensor alias not found in signature: {alias} Outputs expected to "
                    f"be in the set {{{','.join(sorted(signature.outputs))}}}."
                )
            if alias in seen:
                raise invalid_argument(f"duplicate output tensor alias: {alias}")
            seen.append(alias)
        return seen or sorted(signature.outputs)

    def warm_up(self) -> int:
        """Replay `assets.extra/tf_serving_warmup_requests`; any failure fails the load."""
        path = self.path / WARMUP_FILE
        if not path.exists():
            return 0
        count = 0
        for record in tf.data.TFRecordDataset(str(path)):
            count += 1
            if count > MAX_WARMUP_RECORDS:
                raise ValueError(f"more than {MAX_WARMUP_RECORDS} warmup records")
            prediction_log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            kind = prediction_log.WhichOneof("log_type")
            if kind is None:  # an empty record: TF Serving skips it
                continue
            if kind not in WARMUP_KINDS:  # TF Serving's words; log_type_case: a field number
                number = prediction_log.DESCRIPTOR.fields_by_name[kind].number
                raise ValueError(f"Unsupported log_type for warmup: {number}")
            request = getattr(prediction_log, kind).request
            if kind == "multi_inference_log":
                specs = [task.model_spec for task in request.tasks]
            else:
                specs = [request.model_spec]
            for spec in specs:  # a warmup request need not name the model; ours resolve by it
                spec.name = self.name
            if kind == "predict_log":
                self.predict(request)
            else:  # classify, regress, multi_inference
                getattr(inference, kind.removesuffix("_log"))(self, request)
        return count
