"""Export's own failures. `export` never imports `engine`; the CLI maps these to exit statuses.

`ExportError` (exit 2): the input is wrong (an existing or invalid version, an unwritable base
path, a model that does not follow the contract, a directory that is not a version).
`VerificationFailed` (exit 1): the SavedModel was written but a check failed; nothing was
published. It carries the `VerificationReport` for details.
"""

from __future__ import annotations


class ExportError(ValueError):
    """Bad input to an export; the message is one line that says what and where."""


class VerificationFailed(RuntimeError):
    """A verification check failed; `report` holds every check's result."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report
