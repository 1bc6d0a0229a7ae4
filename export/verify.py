"""The four checks an exported version must pass before it is published, run in order:

1. `fresh_process` (export/check_fresh_process.py): a new `python -I` process without
   seqcast's packages loads the version with `tf.saved_model.load`.
2. `session_loader` (export/check_session_loader.py): the TF1 session loader, TensorFlow
   Serving's path, and the SignatureDefs' names and dtypes.
3. `standard_ops` (export/check_standard_ops.py): standard TensorFlow ops only, no cuDNN.
4. `warmup` (export/check_warmup.py): every warmup record runs in the session loader.

The requests are the ones in the warmup file. The reference is the Keras model when one is
given (the autoregressive forecast is then computed step by step in Python, independently
of the graph's loop, and a calibrated model's band from the NumPy conformal reference,
independently of the graph's), else the SavedModel loaded in this process. Checks 1 and 2
compare every output with it (export/check_result.py says how).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from export.check_fresh_process import check_fresh_process
from export.check_result import RELATIVE_TOLERANCE, CheckResult
from export.check_session_loader import ServingSession, check_session_loader
from export.check_standard_ops import check_standard_ops
from export.check_warmup import check_warmup, read_warmup_requests
from export.errors import ExportError
from export.fresh_process_child import signature_defaults
from export.graph import COVERAGE, OUTPUT_KEY, SERVING_DEFAULT
from export.intervals import DEFAULT_COVERAGE, half_widths
from export.warmup import Request, example_requests

METADATA_FILE = "seqcast.json"
CHECK_NAMES = ("fresh_process", "session_loader", "standard_ops", "warmup")


@dataclass
class VerificationReport:
    """All four checks of one version directory."""

    version_dir: str
    reference: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return len(self.checks) == len(CHECK_NAMES) and all(c.passed for c in self.checks)

    def failures(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.passed]

    def to_dict(self) -> dict:
        return {
            "version_dir": self.version_dir,
            "reference": self.reference,
            "passed": self.passed,
            "tolerance": RELATIVE_TOLERANCE,
            "checks": [asdict(check) for check in self.checks],
        }


def read_metadata(version_dir: Path) -> dict:
    """`assets.extra/seqcast.json` of a version ({} when absent)."""
    path = version_dir / "assets.extra" / METADATA_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def keras_reference(model, window_size: int, request: Request, residuals=None) -> dict:
    """What the signature should return, computed with the Keras model in Python; with
    `residuals`, the forecast's band from the NumPy conformal reference."""
    if request.signature == SERVING_DEFAULT:
        window = request.inputs["window"][:, -window_size:]
        return {OUTPUT_KEY: np.asarray(model(tf.constant(window), training=False), np.float32)}
    window = request.inputs["series"][:, -window_size:].astype(np.float32)
    horizon = int(request.inputs["horizon"])
    steps = []
    for _ in range(horizon):
        next_value = np.asarray(model(tf.constant(window), training=False), np.float32)
        steps.append(next_value[:, 0])
        window = np.concatenate([window[:, 1:], next_value.reshape(-1, 1)], axis=1)
    forecast = np.stack(steps, axis=1)
    if residuals is None:
        return {OUTPUT_KEY: forecast}
    coverage = float(request.inputs.get(COVERAGE, DEFAULT_COVERAGE))
    half_width = half_widths(residuals, coverage, horizon)[None, :]
    return {OUTPUT_KEY: forecast, "lower": forecast - half_width, "upper": forecast + half_width}


def in_process_reference(version_dir: Path, requests: list[Request]) -> list[dict]:
    """What the signatures return with the version loaded by `tf.saved_model.load` here."""
    loaded = tf.saved_model.load(str(version_dir))
    defaults = signature_defaults(str(version_dir))
    results = []
    for request in requests:
        feeds = {name: tf.constant(value) for name, value in request.inputs.items()}
        feeds = {**defaults.get(request.signature, {}), **feeds}
        outputs = loaded.signatures[request.signature](**feeds)
        results.append({name: value.numpy() for name, value in outputs.items()})
    return results


def verify_version(
    version_dir, reference_model=None, progress=None, residuals=None
) -> VerificationReport:
    """Run the four checks on a version directory; returns the report (never raises for a
    failed check). Raises ExportError when `version_dir` is not a SavedModel directory.
    `progress` receives each check's title, then its verdict. `residuals` are the
    calibration the band was built from (with `reference_model`); whether the version must
    have a band at all is what its seqcast.json says (`calibration`)."""
    say = progress or (lambda line: None)
    version_dir = Path(version_dir)
    if not (version_dir / "saved_model.pb").is_file():
        raise ExportError(f"{version_dir} is not a SavedModel version (no saved_model.pb)")
    metadata = read_metadata(version_dir)
    with_band = bool(metadata.get("calibration"))

    warmup_requests, warmup_error = read_warmup_requests(version_dir)
    requests = warmup_requests
    if not requests:
        if "window_size" not in metadata:
            raise ExportError(
                f"{version_dir} has neither warmup requests nor a window size in {METADATA_FILE}"
            )
        requests = example_requests(int(metadata["window_size"]), with_band=with_band)

    if reference_model is not None:
        if "window_size" not in metadata:
            raise ExportError(f"{version_dir} has no window_size in assets.extra/{METADATA_FILE}")
        reference = "the Keras model, called step by step in this process"
        window_size = int(metadata["window_size"])
        if with_band and residuals is None:
            raise ExportError("a reference model for a version with a band needs its residuals")
        references = [
            keras_reference(reference_model, window_size, request, residuals if with_band else None)
            for request in requests
        ]
    else:
        reference = "the SavedModel loaded with tf.saved_model.load in this process"
        references = in_process_reference(version_dir, requests)

    report = VerificationReport(str(version_dir), reference)

    def run(number: int, title: str, check, *args) -> None:
        say(f"check {number}/{len(CHECK_NAMES)}: {title}")
        result = check(*args)
        say(f"  {'passed' if result.passed else 'FAILED'}: {result.detail}")
        report.checks.append(result)

    # Loaded once, by check 2, and shared with check 4.
    with ServingSession(version_dir) as session:
        run(
            1,
            "loading in a fresh Python process without seqcast's packages",
            check_fresh_process,
            version_dir,
            requests,
            references,
        )
        run(
            2,
            "the TF1 session loader (TensorFlow Serving's path)",
            check_session_loader,
            session,
            requests,
            references,
            with_band,
        )
        run(3, "standard TensorFlow ops only", check_standard_ops, version_dir)
        run(4, "warmup requests", check_warmup, session, warmup_requests, warmup_error)
    return report
