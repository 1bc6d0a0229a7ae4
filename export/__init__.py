"""A trained Keras forecaster -> a versioned, self-contained, verified SavedModel.

`export_model(model, base_path, metadata, version=None, verify=True, progress=None)` writes
`<base_path>/<version>/` in TensorFlow Serving's layout and returns an `ExportResult`;
`verify_version(version_dir, reference_model=None)` runs the four checks and returns a
`VerificationReport`. This package never imports `engine` or `cells`: it takes a built
Keras model and a metadata dict, and the SavedModel it writes needs neither to be served.

Names are imported on first use, so checking a version number or a base path
(`check_target`) does not pay for importing TensorFlow.
"""

import importlib

_HOMES = {
    "ExportError": "export.errors",
    "VerificationFailed": "export.errors",
    "check_target": "export.versions",
    "ExportResult": "export.exporter",
    "export_model": "export.exporter",
    "CheckResult": "export.verify",
    "VerificationReport": "export.verify",
    "verify_version": "export.verify",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'export' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
