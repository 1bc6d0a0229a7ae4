"""Check 4, `warmup`: the warmup file parses, holds a record for each signature and none
for another, and each record runs in the session loader and returns finite outputs of the
right shape.

TF Serving runs these records before it marks a version AVAILABLE, and a failing record
fails the load, so a record that would fail is caught here, before publishing.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from export.check_result import CheckResult, seconds_since
from export.check_session_loader import ServingSession
from export.errors import first_line
from export.graph import FORECAST, SIGNATURE_INPUTS
from export.warmup import WARMUP_FILE, Request, read_warmup


def read_warmup_requests(version_dir: Path) -> tuple[list[Request], str | None]:
    """The version's warmup requests and None, or [] and why the file does not parse."""
    try:
        return read_warmup(Path(version_dir) / "assets.extra" / WARMUP_FILE), None
    except Exception as error:  # noqa: BLE001 - a missing or malformed file fails check 4
        return [], f"the warmup file does not parse: {type(error).__name__}: {first_line(error)}"


def expected_shape(request: Request) -> tuple:
    """`[batch, 1]` for serving_default, `[batch, horizon]` for forecast (every output)."""
    batch = next(iter(v for v in request.inputs.values() if np.ndim(v) == 2)).shape[0]
    if request.signature == FORECAST:
        return (batch, int(request.inputs["horizon"]))
    return (batch, 1)


def check_warmup(
    session: ServingSession, warmup_requests: list[Request], read_error: str | None = None
) -> CheckResult:
    """Run `warmup_requests` (from `read_warmup_requests`, with its `read_error`)."""
    start = time.perf_counter()
    load_error = session.load_error()
    if load_error is not None:
        return CheckResult("warmup", False, load_error)
    if read_error is not None:
        return CheckResult("warmup", False, read_error)
    signatures = sorted(request.signature for request in warmup_requests)
    if sorted(set(signatures)) != sorted(SIGNATURE_INPUTS):
        return CheckResult(
            "warmup", False, f"expected records of {sorted(SIGNATURE_INPUTS)}, found {signatures}"
        )
    for index, request in enumerate(warmup_requests):
        record = f"record {index} ({request.signature})"
        try:
            outputs = session.run(request)
        except Exception as error:  # noqa: BLE001 - reported as the check's failure
            detail = f"{record} failed: {type(error).__name__}: {first_line(error)}"
            return CheckResult("warmup", False, detail)
        for name, output in sorted(outputs.items()):
            if output.shape != expected_shape(request) or not np.all(np.isfinite(output)):
                detail = (
                    f"{record} returned {name} of shape {output.shape}, "
                    f"expected {expected_shape(request)}, finite"
                )
                return CheckResult("warmup", False, detail)
    return CheckResult(
        "warmup",
        True,
        f"{len(warmup_requests)} PredictionLog records parsed and ran in the session loader",
        seconds=seconds_since(start),
    )
