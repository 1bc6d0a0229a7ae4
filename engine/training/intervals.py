"""The forecast's conformal band: calibrated on the selection slice, measured on the
validation part.

Calibration runs the fed-back forecast (the exported `forecast` signature's semantics) from
every origin whose whole calibrated horizon lies in the selection slice
`series[selection:split]`: points the model was never fitted on and that the reported
validation part never touches. The absolute errors, `residuals [origins, H]`, are what the
exported graph turns into a band at any coverage (export/intervals.py states the rule).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.training.backtest import rolling_model_forecasts
from export.intervals import DEFAULT_COVERAGE, METHOD, half_widths

CALIBRATION_FILE = "calibration.json"
# Below 10 origins a 90% band would rest on the single largest residual.
MIN_ORIGINS = 10


def calibrated_horizon(slice_length: int, horizon: int) -> int:
    """The longest horizon up to `horizon` that leaves MIN_ORIGINS origins in the slice
    (0: the slice is too short for any)."""
    return max(0, min(horizon, slice_length - MIN_ORIGINS + 1))


def calibrate(predict_next, data, window_size: int, horizon: int) -> tuple[dict | None, str]:
    """Residuals of the fed-back forecast on the selection slice of `data` (a RunData), and a
    line saying what was calibrated; `(None, why not)` when the slice is too short.

    The dict is JSON-ready: `method`, `points` (the slice's length), `origins`, `horizon`,
    `requested_horizon`, `first_origin`, `last_origin`, `residuals` `[origins][horizon]`.
    """
    points = data.split - data.selection
    calibrated = calibrated_horizon(points, horizon)
    if calibrated < 1:
        return None, (
            f"no interval band: the selection slice has {points} points, at least "
            f"{MIN_ORIGINS} are needed (--selection-fraction)"
        )
    origins = np.arange(data.selection, data.split - calibrated + 1)
    forecast = rolling_model_forecasts(predict_next, data.series, origins, window_size, calibrated)
    steps = np.arange(calibrated)[None, :]
    truth = np.asarray(data.series, dtype="float64")[origins[:, None] + steps]
    residuals = np.abs(truth - forecast.astype("float64"))
    calibration = {
        "method": METHOD,
        "points": int(points),
        "origins": len(origins),
        "horizon": calibrated,
        "requested_horizon": horizon,
        "first_origin": int(origins[0]),
        "last_origin": int(origins[-1]),
        "residuals": residuals.tolist(),
    }
    shorter = f" (of {horizon} asked: the slice is short)" if calibrated < horizon else ""
    width = 2 * half_widths(residuals, DEFAULT_COVERAGE, calibrated)
    note = (
        f"interval band: calibrated on {len(origins)} origins of the selection slice, "
        f"{calibrated} steps{shorter}; 90% width {width[0]:.3g} at step 1, "
        f"{width[-1]:.3g} at step {calibrated}"
    )
    return calibration, note


def band_figures(truth, forecast, residuals, coverage: float = DEFAULT_COVERAGE) -> dict:
    """Per step, how often `truth [n, horizon]` lies inside the band around `forecast` and
    how wide the band is: `{"coverage", "calibrated_horizon", "empirical_coverage",
    "width", "mean": {"empirical_coverage", "width"}}`."""
    truth = np.asarray(truth, dtype="float64")
    horizon = truth.shape[1]
    half_width = half_widths(residuals, coverage, horizon)
    inside = np.abs(truth - np.asarray(forecast, dtype="float64")) <= half_width[None, :]
    empirical = inside.mean(axis=0)
    return {
        "coverage": coverage,
        "calibrated_horizon": int(np.shape(residuals)[1]),
        "empirical_coverage": [float(value) for value in empirical],
        "width": [float(value) for value in 2 * half_width],
        "mean": {
            "empirical_coverage": float(empirical.mean()),
            "width": float(np.mean(2 * half_width)),
        },
    }


def read_calibration(run_dir: str | Path) -> dict | None:
    """The run's calibration (`calibration.json`), or None for a run without one."""
    path = Path(run_dir) / CALIBRATION_FILE
    return json.loads(path.read_text()) if path.is_file() else None
