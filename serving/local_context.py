"""Calling a gRPC servicer method in-process, as the REST API does: same code, same answers.

TF Serving's REST handler calls the very implementations its gRPC services call, so a
request answers the same over both. `call(method, request, timeout)` runs a servicer method
with a stand-in for `grpc.ServicerContext` and turns its abort into a `ServingError`.
"""

from __future__ import annotations

import time

import grpc

from serving.errors import ServingError


class _Aborted(Exception):
    """Raised by `abort`, as grpc's own context raises to end the handler."""


class LocalContext:
    """The parts of `grpc.ServicerContext` a servicer uses, for an in-process call."""

    def __init__(self, timeout: float | None = None):
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def abort(self, code: grpc.StatusCode, details: str):
        self.code, self.details = code, details
        raise _Aborted(details)

    def abort_with_status(self, status):
        self.abort(status.code, status.details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def is_active(self) -> bool:
        return True

    def invocation_metadata(self):
        return ()

    def peer(self) -> str:
        return "local"

    def add_callback(self, callback) -> bool:
        return False

    def send_initial_metadata(self, metadata) -> None:
        pass

    def set_trailing_metadata(self, metadata) -> None:
        pass

    def set_compression(self, compression) -> None:
        pass


def call(method, request, timeout: float | None = None):
    """`method(request, context)`; an aborted or failed call raises its ServingError."""
    context = LocalContext(timeout)
    try:
        response = method(request, context)
    except _Aborted:
        raise ServingError(context.code, context.details) from None
    if context.code not in (None, grpc.StatusCode.OK):
        raise ServingError(context.code, context.details)
    return response
