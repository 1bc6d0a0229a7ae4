"""A trained Keras forecaster -> a versioned, self-contained, verified SavedModel in TensorFlow
Serving's layout; takes a Keras model and a metadata dict, never `engine` or `cells`.
How and why: docs/export.md.
"""

from export.errors import ExportError, VerificationFailed
from export.exporter import ExportResult, export_model
from export.verify import CheckResult, VerificationReport, verify_version
from export.versions import check_target

__all__ = [
    "CheckResult",
    "ExportError",
    "ExportResult",
    "VerificationFailed",
    "VerificationReport",
    "check_target",
    "export_model",
    "verify_version",
]
