"""A forecast client for TensorFlow Serving's gRPC API (the real server or seqcast's own).

Requests are built the way TF Serving's example clients build them: a PredictRequest, its
inputs from `tf.make_tensor_proto`, its outputs read with `tf.make_ndarray`, a deadline on
every call. Every gRPC failure becomes a `ServingClientError` with one clear line.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.errors import first_line

MAX_MESSAGE_BYTES = 2**31 - 1

# What each status means to someone asking for a forecast.
_EXPLANATIONS = {
    grpc.StatusCode.INVALID_ARGUMENT: "the server rejected the request",
    grpc.StatusCode.NOT_FOUND: "model or version not found",
    grpc.StatusCode.FAILED_PRECONDITION: "the model cannot answer this request",
    grpc.StatusCode.UNAVAILABLE: "server unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "no answer before the deadline",
    grpc.StatusCode.UNIMPLEMENTED: "the server does not implement this call",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "the server is out of resources or the message is too big",
    grpc.StatusCode.CANCELLED: "the request was cancelled",
    grpc.StatusCode.INTERNAL: "internal server error",
    grpc.StatusCode.UNKNOWN: "unknown server error",
}
# Statuses that say the request itself was wrong (the CLI exits 2 for these).
BAD_REQUEST_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
}


class ServingClientError(Exception):
    """A call failed; `code` is the gRPC status, `details` the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str, target: str):
        self.code = code
        self.details = details
        self.target = target
        explanation = _EXPLANATIONS.get(code, "request failed")
        line = first_line(details or "")
        super().__init__(
            f"{explanation} ({code.name} from {target})" + (f": {line}" if line else "")
        )

    @property
    def bad_request(self) -> bool:
        return self.code in BAD_REQUEST_CODES


@dataclass(frozen=True)
class Forecast:
    """A forecast `[batch, horizon]`, its band if the model has one, and the model that
    made it."""

    values: np.ndarray
    model_name: str
    version: int
    signature_name: str
    lower: np.ndarray | None = None  # the band `[batch, horizon]`, when the model has one
    upper: np.ndarray | None = None

    def as_json(self) -> dict:
        document = {
            "model_spec": {
                "name": self.model_name,
                "version": self.version,
                "signature_name": self.signature_name,
            },
            "forecast": self.values.tolist(),
        }
        if self.lower is not None:
            document.update(lower=self.lower.tolist(), upper=self.upper.tolist())
        return document


class ForecastClient:
    """One channel to one server. `timeout` is the deadline of each call, in seconds.

    `root_certificates` (PEM bytes) switches to TLS.
    """

    def __init__(self, target: str, timeout: float = 10.0, root_certificates: bytes | None = None):
        self.target = target
        self.timeout = timeout
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        if root_certificates is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self.channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(target, options=options)
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> ForecastClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingClientError(error.code(), error.details(), self.target) from None

    @staticmethod
    def _model_spec(spec, model_name: str, version: int | None, version_label: str | None):
        spec.name = model_name
        if version is not None:
            spec.version.value = version
        elif version_label is not None:
            spec.version_label = version_label

    def predict(
        self,
        model_name: str,
        inputs: dict[str, np.ndarray],
        signature_name: str = "serving_default",
        version: int | None = None,
        version_label: str | None = None,
        output_filter: list[str] | None = None,
    ) -> tuple[dict[str, np.ndarray], predict_pb2.PredictResponse]:
        """Any Predict call: `inputs` by alias -> (outputs by alias, the raw response)."""
        request = predict_pb2.PredictRequest()
        self._model_spec(request.model_spec, model_name, version, version_label)
        request.model_spec.signature_name = signature_name
        for alias, value in inputs.items():
            request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
        request.output_filter.extend(output_filter or [])
        response = self._call(self.prediction.Predict, request)
        outputs = {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}
        return outputs, response

    def forecast(
        self,
        model_name: str,
        series: np.ndarray,
        horizon: int,
        version: int | None = None,
        version_label: str | None = None,
        signature_name: str = "forecast",
        coverage: float | None = None,
    ) -> Forecast:
        """`series` `[batch, time]` (or `[time]`) -> `horizon` values ahead, `[batch, horizon]`,
        and the band at `coverage` where the model has one (None: the model's default, 0.9;
        a model without a band refuses a `coverage`)."""
        series = np.atleast_2d(np.asarray(series, dtype=np.float32))
        inputs = {"series": series, "horizon": np.int32(horizon)}
        if coverage is not None:
            inputs["coverage"] = np.float32(coverage)
        outputs, response = self.predict(
            model_name,
            inputs,
            signature_name=signature_name,
            version=version,
            version_label=version_label,
        )
        return self._forecast(outputs, response)

    def next_value(
        self, model_name: str, window: np.ndarray, version: int | None = None
    ) -> Forecast:
        """The `serving_default` signature: `window` `[batch, time]` -> `[batch, 1]`."""
        window = np.atleast_2d(np.asarray(window, dtype=np.float32))
        outputs, response = self.predict(model_name, {"window": window}, version=version)
        return self._forecast(outputs, response)

    @staticmethod
    def _forecast(outputs, response) -> Forecast:
        band = {key: np.asarray(outputs[key]) for key in ("lower", "upper") if key in outputs}
        return Forecast(
            values=np.asarray(outputs["forecast"]),
            model_name=response.model_spec.name,
            version=response.model_spec.version.value,
            signature_name=response.model_spec.signature_name,
            **band,
        )

    def signature_defs(self, model_name: str, version: int | None = None) -> dict:
        """GetModelMetadata: the model's SignatureDefs by key, and the version that answered."""
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._model_spec(request.model_spec, model_name, version, None)
        request.metadata_field.append("signature_def")
        response = self._call(self.prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return dict(signature_map.signature_def)

    def status(self, model_name: str, version: int | None = None) -> dict[int, str]:
        """GetModelStatus: version -> state name (`AVAILABLE`, `LOADING`, `END`, ...)."""
        request = get_model_status_pb2.GetModelStatusRequest()
        self._model_spec(request.model_spec, model_name, version, None)
        response = self._call(self.models.GetModelStatus, request)
        state_name = get_model_status_pb2.ModelVersionStatus.State.Name
        return {entry.version: state_name(entry.state) for entry in response.model_version_status}

    def has_band(self, model_name: str, version: int | None = None) -> bool:
        """Whether the model's `forecast` signature returns a band (takes `coverage`)."""
        signature = self.signature_defs(model_name, version=version).get("forecast")
        return signature is not None and "coverage" in signature.inputs

    def window_size(
        self, model_name: str, signature_name: str = "forecast", version: int | None = None
    ) -> int | None:
        """The time length the signature fixes, if its input shape fixes one (else None)."""
        signature = self.signature_defs(model_name, version=version).get(signature_name)
        if signature is None:
            return None
        for alias in ("series", "window"):
            if alias in signature.inputs:
                dims = signature.inputs[alias].tensor_shape.dim
                if len(dims) == 2 and dims[1].size > 0:
                    return dims[1].size
        return None
