"""TensorFlow Serving's REST API (its HttpRestApiHandler) over our gRPC servicers.

One request, `(method, path, body)`, becomes one answer, `(HTTP status, JSON body)`:

| request | answer |
|---|---|
| `GET /v1/models/NAME[/versions/V or /labels/L]` | GetModelStatus |
| `GET /v1/models/NAME[/versions/V or /labels/L]/metadata` | GetModelMetadata (signature_def) |
| `POST /v1/models/NAME[/versions/V or /labels/L]:predict` | Predict (`instances` or `inputs`) |
| `POST ...:classify`, `POST ...:regress` | Classify, Regress (`examples`, `context`) |

The servicers are called in-process (`local_context`), so REST answers exactly what gRPC
answers. A failure is `{ "error": message }` with the HTTP status TF Serving maps its gRPC
code to; anything else under /v1/ is `Malformed request: METHOD PATH` (400). Predict,
Classify and Regress run under `timeout_ms` (TF Serving's `--rest_api_timeout_in_ms`).
"""

from __future__ import annotations

import logging
import re
import time
import urllib.parse
from concurrent import futures
from dataclasses import dataclass

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    regression_pb2,
)

from serving import json_requests, json_responses, local_context, proto_json
from serving.errors import ServingError, first_line, invalid_argument

log = logging.getLogger("seqcast.serving")

DEFAULT_SIGNATURE = "serving_default"
DEFAULT_TIMEOUT_MS = 30000  # TF Serving's --rest_api_timeout_in_ms

# TF Serving's ToHTTPStatusCode.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

# TF Serving's path patterns (RE2, case-insensitive, matched against path and query).
_VERSION_OR_LABEL = r"(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?"
_POST_PATH = re.compile(
    rf"/v1/models/([^/:]+){_VERSION_OR_LABEL}:(classify|regress|predict)", re.IGNORECASE
)
_GET_PATH = re.compile(
    rf"/v1/models(?:/([^/:]+))?{_VERSION_OR_LABEL}(?:/(metadata))?", re.IGNORECASE
)
API_PATH = re.compile(r"/v1/.*", re.IGNORECASE)

_INT64_MAX = 2**63 - 1


@dataclass
class RestReply:
    """An answer: HTTP status, JSON body, and the model and API it was for (for metrics)."""

    status: int
    body: bytes
    model_name: str = ""
    api: str = ""


@dataclass
class _Target:
    name: str
    version: int | None
    label: str | None
    verb: str  # "predict", "classify", "regress", "metadata" or "" (GetModelStatus)


def _decode(text: str) -> str:
    """curl_easy_unescape, as TF Serving decodes a model name or label from the path."""
    return urllib.parse.unquote_to_bytes(text).decode("utf-8", "replace")


def parse_target(method: str, path: str) -> _Target | None:
    """TF Serving's ParseModelInfo; None when the path is not one of the API's.

    Raises ServingError for a version that is not an int64 (TF Serving answers that one
    with an empty body).
    """
    pattern = _POST_PATH if method == "POST" else _GET_PATH if method == "GET" else None
    match = pattern.fullmatch(path) if pattern is not None else None
    if match is None:
        return None
    name, version, label, verb = match.groups()
    if version is not None and int(version) > _INT64_MAX:
        raise invalid_argument(f"Failed to convert version: {version} to numeric.")
    return _Target(
        name=_decode(name) if name else "",
        version=int(version) if version is not None else None,
        label=_decode(label) if label is not None else None,
        verb=verb or "",
    )


class RestApi:
    """Answers REST requests by calling the gRPC servicers in-process."""

    def __init__(
        self,
        manager,
        prediction_servicer,
        model_servicer,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        metrics=None,
        workers: int = 16,
    ):
        self.manager = manager
        self.prediction = prediction_servicer
        self.model = model_servicer
        self.timeout = timeout_ms / 1000 if timeout_ms > 0 else None
        self.metrics = metrics
        # Runs under a deadline need a thread of their own; idle until one comes.
        self._pool = futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rest")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def handle(self, method: str, path: str, body: bytes) -> RestReply:
        """One request; never raises."""
        start = time.monotonic()
        reply = self._handle(method, path, body)
        if self.metrics is not None:
            micros = (time.monotonic() - start) * 1e6
            self.metrics.record_latency(reply.model_name, reply.api, "REST", micros)
        return reply

    def _handle(self, method: str, path: str, body: bytes) -> RestReply:
        try:
            target = parse_target(method, path)
        except ServingError as error:
            return RestReply(HTTP_STATUS[error.code], b"")  # TF Serving writes no body here
        model_name = target.name if target else ""
        api = target.verb if target and method == "POST" else ""
        try:
            text = self._dispatch(method, path, body, target)
        except ServingError as error:
            return RestReply(
                HTTP_STATUS.get(error.code, 500),
                _encode(json_responses.error_json(error.message)),
                model_name,
                api,
            )
        except Exception as error:  # noqa: BLE001 - answer, log, keep serving
            log.exception("REST request failed")
            body = _encode(json_responses.error_json(first_line(error)))
            return RestReply(500, body, model_name, api)
        return RestReply(200, _encode(text), model_name, api)

    def _dispatch(self, method: str, path: str, body: bytes, target: _Target | None) -> str:
        if target is not None and method == "POST":
            if target.verb == "predict":
                return self._predict(target, body)
            if target.verb == "classify":
                return self._classify(target, body)
            if target.verb == "regress":
                return self._regress(target, body)
        elif target is not None and method == "GET":
            if not target.name:
                raise invalid_argument("Missing model name in request.")
            if target.verb == "metadata":
                return self._metadata(target)
            return self._status(target)
        raise invalid_argument(f"Malformed request: {method} {path}")

    # -- the calls

    @staticmethod
    def _fill_spec(model_spec, target: _Target) -> None:
        model_spec.name = target.name
        if target.version is not None:
            model_spec.version.value = target.version
        if target.label is not None:
            model_spec.version_label = target.label

    def _run(self, method, request):
        """A servicer call under the REST deadline (TF Serving's RunOptions timeout)."""
        if self.timeout is None:
            return local_context.call(method, request)
        future = self._pool.submit(local_context.call, method, request, self.timeout)
        try:
            return future.result(timeout=self.timeout)
        except futures.TimeoutError:
            future.cancel()  # a run already under way finishes; its answer is dropped
            raise ServingError(
                grpc.StatusCode.DEADLINE_EXCEEDED, "Timed out waiting for notification"
            ) from None

    def _predict(self, target: _Target, body: bytes) -> str:
        request = predict_pb2.PredictRequest()
        self._fill_spec(request.model_spec, target)

        def signature_inputs(signature_name: str):
            servable = self.manager.resolve(request.model_spec)
            key = signature_name or DEFAULT_SIGNATURE
            signature = servable.signature_defs.get(key)
            if signature is None:
                raise invalid_argument(
                    f'Serving signature name: "{key}" not found in signature def'
                )
            return signature.inputs

        layout = json_requests.fill_predict_request(body, request, signature_inputs)
        response = self._run(self.prediction.Predict, request)
        return json_responses.predict_response_json(response.outputs, layout)

    def _classify(self, target: _Target, body: bytes) -> str:
        request = classification_pb2.ClassificationRequest()
        self._fill_spec(request.model_spec, target)
        json_requests.fill_examples_request(body, request)
        response = self._run(self.prediction.Classify, request)
        return json_responses.classification_json(response.result)

    def _regress(self, target: _Target, body: bytes) -> str:
        request = regression_pb2.RegressionRequest()
        self._fill_spec(request.model_spec, target)
        json_requests.fill_examples_request(body, request)
        response = self._run(self.prediction.Regress, request)
        return json_responses.regression_json(response.result)

    def _status(self, target: _Target) -> str:
        request = get_model_status_pb2.GetModelStatusRequest()
        self._fill_spec(request.model_spec, target)
        response = local_context.call(self.model.GetModelStatus, request)
        return proto_json.status_json(response)

    def _metadata(self, target: _Target) -> str:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._fill_spec(request.model_spec, target)
        response = local_context.call(self.prediction.GetModelMetadata, request)
        return proto_json.metadata_json(response)


def _encode(text: str) -> bytes:
    """Bytes the request carried come back as they were (surrogateescape)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")
