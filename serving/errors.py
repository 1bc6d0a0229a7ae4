"""How serving fails: a gRPC status code with TF Serving's message, or a config refused.

TensorFlow op errors map to the gRPC code of the same name, their message cleaned of the
Python runtime's preamble so it reads like TF Serving's (the session's) message.
"""

from __future__ import annotations

import re

import grpc
import tensorflow as tf


class ServingError(Exception):
    """A request failed with a gRPC status code and TF Serving's message."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class ServingConfigError(ValueError):
    """The server cannot start with this configuration (bad path, bad config file)."""


class ServingStartError(RuntimeError):
    """The server cannot start: a configured model has versions but none of them loaded."""


def invalid_argument(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def models_unavailable(ids: list[tuple[str, int]]) -> ServingError:
    """TF Serving's answer when configured models did not load (`WaitUntilModelsAvailable`):
    UNKNOWN, each one as a ServableId's DebugString."""
    listed = "".join(f"{{name: {name} version: {version}}}, " for name, version in ids)
    message = f"Some models did not become available: {{{listed}}}"
    return ServingError(grpc.StatusCode.UNKNOWN, message)


_OP_ERROR_CODES = {
    tf.errors.InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    tf.errors.FailedPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
    tf.errors.OutOfRangeError: grpc.StatusCode.OUT_OF_RANGE,
    tf.errors.ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    tf.errors.UnimplementedError: grpc.StatusCode.UNIMPLEMENTED,
    tf.errors.NotFoundError: grpc.StatusCode.NOT_FOUND,
    tf.errors.DeadlineExceededError: grpc.StatusCode.DEADLINE_EXCEEDED,
    tf.errors.CancelledError: grpc.StatusCode.CANCELLED,
    tf.errors.UnavailableError: grpc.StatusCode.UNAVAILABLE,
}


def from_op_error(error: tf.errors.OpError) -> ServingError:
    """The status a failed graph answers with: the op's code (else INTERNAL), its message."""
    code = next(
        (code for error_type, code in _OP_ERROR_CODES.items() if isinstance(error, error_type)),
        grpc.StatusCode.INTERNAL,
    )
    return ServingError(code, _clean_op_message(error.message))


def _clean_op_message(message: str) -> str:
    """The op's own message, without the 'Graph execution error' preamble and function name."""
    message = re.sub(r"^Graph execution error:\s*", "", message)
    message = re.sub(r"^Detected at node .*?<stack traces unavailable>\n", "", message, flags=re.S)
    message = re.sub(r"\s*\[Op:__inference_\w+\]\s*$", "", message)
    return message.strip()


def first_line(text_or_error: str | BaseException) -> str:
    """The first non-empty line of an error message (an op error's message cleaned first).

    An exception with no message gives its type's name; an empty text gives "".
    """
    if isinstance(text_or_error, tf.errors.OpError):
        text = _clean_op_message(text_or_error.message)
    else:
        text = str(text_or_error).strip()
    if text:
        return text.splitlines()[0]
    return type(text_or_error).__name__ if isinstance(text_or_error, BaseException) else ""
