"""Export's own failures. `export` never imports `engine`; the CLI maps these to exit statuses.

`ExportError` (exit 2): the input is wrong (an existing or invalid version, an unwritable base
path, a model that does not follow the contract, a directory that is not a version).
`VerificationFailed` (exit 1): the SavedModel was written but a check failed; nothing was
published. It carries the `VerificationReport` for details.
"""

from __future__ import annotations

import tensorflow as tf

# TensorFlow puts this generic line before the one that says what went wrong.
_GENERIC_LINES = ("Graph execution error:",)


class ExportError(ValueError):
    """Bad input to an export; the message is one line that says what and where."""


class VerificationFailed(RuntimeError):
    """A verification check failed; `report` holds every check's result."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


def first_line(error_or_text: BaseException | str) -> str:
    """The line of an error (or of a message) that says what went wrong: its first non-blank
    line, stripped, after TensorFlow's generic "Graph execution error:"; "" for no text."""
    if isinstance(error_or_text, tf.errors.OpError):
        text = error_or_text.message
    else:
        text = str(error_or_text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if line not in _GENERIC_LINES] or lines
    return lines[0] if lines else ""
