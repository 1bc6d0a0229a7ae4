"""`export_model`: a built Keras forecaster -> `<base_path>/<version>/`, verified, published.

Steps: pick the version; trace the two signatures (non-cuDNN path, with the conformal band
when calibration residuals are given) into a SavedModel in a temporary directory beside the
target; write `assets.extra/` (warmup requests and
`seqcast.json`); run the four checks there; rename into place. Any failure removes the
temporary directory; nothing half-written ever carries an integer name.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from export.errors import ExportError, VerificationFailed
from export.graph import (
    BAND_KEYS,
    COVERAGE,
    FORECAST,
    OUTPUT_KEY,
    SERVING_DEFAULT,
    build_serving_module,
    cpu_servable,
)
from export.intervals import DEFAULT_COVERAGE, METHOD, check_residuals
from export.verify import METADATA_FILE, VerificationReport, verify_version
from export.versions import check_target, make_temp_dir, publish, remove_stale_temp_dirs
from export.warmup import WARMUP_FILE, example_requests, write_warmup


@dataclass
class ExportResult:
    """A published version: where, which number, how the graph was made, what was checked."""

    path: Path
    version: int
    graph_note: str
    report: VerificationReport | None = None
    removed_stale: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "version": self.version,
            "graph_note": self.graph_note,
            "verified": self.report is not None,
            "verification": self.report.to_dict() if self.report is not None else None,
            "removed_stale": self.removed_stale,
            "seconds": round(self.seconds, 3),
        }


def package_versions() -> dict:
    """seqcast, TensorFlow and Keras versions, recorded with every export."""
    try:
        seqcast = importlib.metadata.version("seqcast")
    except importlib.metadata.PackageNotFoundError:
        seqcast = "unknown"
    return {"seqcast": seqcast, "tensorflow": tf.__version__, "keras": keras.__version__}


def _json_default(value):
    """numpy scalars and arrays, paths and the like in the caller's metadata."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return str(value)


def _window_size(metadata: dict) -> int:
    window_size = metadata.get("window_size") if isinstance(metadata, dict) else None
    if isinstance(window_size, (bool, float)) or not isinstance(window_size, (int, np.integer)):
        raise ExportError(f"metadata['window_size'] must be an integer, got {window_size!r}")
    if window_size < 1:
        raise ExportError(f"metadata['window_size'] must be at least 1, got {window_size}")
    return int(window_size)


def signature_facts(with_band: bool) -> dict:
    """What seqcast.json says about the signatures' inputs and outputs."""
    forecast_inputs = {"series": "float32 [batch, time]", "horizon": "int32 []"}
    outputs = {OUTPUT_KEY: "float32 [batch, 1] / [batch, horizon]"}
    if with_band:
        forecast_inputs[COVERAGE] = f"float32 [] (optional, default {DEFAULT_COVERAGE})"
        outputs.update({key: "float32 [batch, horizon] (forecast only)" for key in BAND_KEYS})
    return {
        SERVING_DEFAULT: {"inputs": {"window": "float32 [batch, time]"}},
        FORECAST: {"inputs": forecast_inputs},
        "output": outputs,
    }


def calibration_facts(calibration: dict | None, residuals) -> dict | None:
    """The calibration as seqcast.json records it: everything but the residuals."""
    if residuals is None:
        return None
    facts = {key: value for key, value in calibration.items() if key != "residuals"}
    facts.update(
        method=facts.get("method", METHOD),
        origins=int(residuals.shape[0]),
        horizon=int(residuals.shape[1]),
        default_coverage=DEFAULT_COVERAGE,
    )
    return facts


def write_metadata(path: Path, metadata: dict, extra: dict) -> None:
    document = {**metadata, **extra}
    path.write_text(json.dumps(document, indent=2, default=_json_default) + "\n")


def export_model(
    model,
    base_path,
    metadata: dict,
    version: int | None = None,
    verify: bool = True,
    progress=None,
    example_series=None,
    model_name: str | None = None,
    calibration: dict | None = None,
) -> ExportResult:
    """Export `model` as version `version` (default: the next) under `base_path`.

    `model` maps float32 raw values `[batch, time]` to the next raw value `[batch, 1]`;
    `metadata["window_size"]` is its trained window, the rest of `metadata` (model,
    precision, data, validation figures, config) goes into `assets.extra/seqcast.json`.
    `example_series` (1-D raw values, >= window_size of them; optional) makes the warmup and
    verification requests realistic. `model_name` is written into the warmup requests'
    `model_spec` (default: the base path's directory name). `calibration` (optional):
    `{"residuals": [n, H], ...}` from calibrating the forecast on points the model was not
    fitted on; with it `forecast` returns the band `lower`/`upper` at the requested
    `coverage`, and seqcast.json records the calibration (all but the residuals, which live
    in the graph). `progress` receives one line per step. Raises ExportError for bad input,
    VerificationFailed when a check fails; in both cases nothing is published.
    """
    say = progress or (lambda line: None)
    start = time.perf_counter()
    window_size = _window_size(metadata)
    residuals = None
    if calibration is not None:
        try:
            residuals = check_residuals(calibration.get("residuals"))
        except ValueError as error:
            raise ExportError(str(error)) from error
    base, number = check_target(base_path, version)
    removed = [str(path) for path in remove_stale_temp_dirs(base)]
    for path in removed:
        say(f"removed {path}, left by an export that was killed")
    requests = example_requests(window_size, example_series, with_band=residuals is not None)
    temp = make_temp_dir(base, number)
    try:
        say(f"exporting version {number} (window {window_size}) into {temp.name}")
        with cpu_servable(model) as graph_note:
            module, signatures = build_serving_module(model, window_size, residuals)
            tf.saved_model.save(module, str(temp), signatures=signatures)
        say(f"  {graph_note}")
        assets = temp / "assets.extra"
        assets.mkdir()
        write_warmup(assets / WARMUP_FILE, requests, model_name or base.resolve().name)
        export_facts = {
            "window_size": window_size,
            "versions": package_versions(),
            "export": {
                "version": number,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"
                ),
                "graph": graph_note,
                "signatures": signature_facts(residuals is not None),
            },
            "calibration": calibration_facts(calibration, residuals),
        }
        write_metadata(assets / METADATA_FILE, metadata, export_facts)

        report = None
        if verify:
            report = verify_version(temp, reference_model=model, progress=say, residuals=residuals)
            if not report.passed:
                failed = "; ".join(f"{c.name}: {c.detail}" for c in report.failures())
                raise VerificationFailed(
                    f"version {number} failed verification, not published ({failed})", report
                )
            export_facts["export"]["verification"] = {
                check.name: check.detail for check in report.checks
            }
            write_metadata(assets / METADATA_FILE, metadata, export_facts)

        target = base / str(number)
        say(f"publishing: renaming {temp.name} to {target.name}")
        publish(temp, target)
        if report is not None:
            report.version_dir = str(target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return ExportResult(
        path=target,
        version=number,
        graph_note=graph_note,
        report=report,
        removed_stale=removed,
        seconds=time.perf_counter() - start,
    )
