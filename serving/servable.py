"""One loaded version of one model: its SavedModel, its SignatureDefs, and Predict on it.

Requests are checked as TF Serving's RunPredict checks them (input count, aliases, dtypes),
plus the rank and fixed sizes the signature declares; warmup records replay before a
version is marked AVAILABLE. Status codes and messages: docs/serving.md.
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

from serving import tensors
from serving.errors import ServingError, first_line, from_op_error, invalid_argument

DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving's limit


@dataclass
class Servable:
    """One loaded version of one model: the restored SavedModel and its SignatureDefs."""

    name: str
    version: int
    path: Path
    loaded: object  # what tf.saved_model.load returns
    signature_defs: dict[str, meta_graph_pb2.SignatureDef]

    @classmethod
    def load(cls, name: str, version: int, path: Path) -> Servable:
        saved_model = saved_model_pb2.SavedModel()
        saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
        serve_graphs = [
            graph for graph in saved_model.meta_graphs if "serve" in graph.meta_info_def.tags
        ]
        if not serve_graphs:
            raise ValueError(f"{path}: no MetaGraph tagged 'serve'")
        loaded = tf.saved_model.load(str(path), tags=["serve"])
        return cls(name, version, path, loaded, dict(serve_graphs[0].signature_def))

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        """Run one PredictRequest, validating it as TF Serving's RunPredict does."""
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature = self.signature_defs.get(signature_name)
        function = self.loaded.signatures.get(signature_name) if signature is not None else None
        if function is None:
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{signature_name}" not found.',
            )
        feeds = self._inputs(signature, request)
        aliases = self._output_aliases(signature, request)
        try:
            outputs = function(**{alias: tf.constant(value) for alias, value in feeds.items()})
        except tf.errors.OpError as error:
            raise from_op_error(error) from error
        except (TypeError, ValueError) as error:
            # Binding errors raised before the graph runs (a feed the function refuses).
            raise invalid_argument(first_line(error)) from error
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.name
        response.model_spec.version.value = self.version
        response.model_spec.signature_name = signature_name
        for alias in aliases:
            response.outputs[alias].CopyFrom(tensors.from_ndarray(outputs[alias].numpy()))
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
            _check_shape(alias, value.shape if value is not None else None, proto, info)
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
            if prediction_log.WhichOneof("log_type") != "predict_log":
                raise ValueError("only predict_log warmup records are supported")
            request = predict_pb2.PredictRequest()
            request.CopyFrom(prediction_log.predict_log.request)
            request.model_spec.name = self.name
            self.predict(request)
        return count


def _check_shape(alias, shape, proto, info: meta_graph_pb2.TensorInfo) -> None:
    """The rank and any fixed sizes the signature declares. A session would feed a tensor of
    another rank straight into the graph, where it may even "work" (a rank-3 window averaged
    along the wrong axis); a served model is better off refusing it here."""
    if info.tensor_shape.unknown_rank:
        return
    if shape is None:
        shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    expected = [dim.size for dim in info.tensor_shape.dim]
    if len(shape) != len(expected) or any(
        want >= 0 and want != got for want, got in zip(expected, shape, strict=True)
    ):
        wanted = ",".join("?" if size < 0 else str(size) for size in expected)
        raise invalid_argument(
            f"input {alias} has shape [{','.join(map(str, shape))}] but the signature "
            f"expects [{wanted}]"
        )
