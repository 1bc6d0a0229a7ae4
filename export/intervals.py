"""Split-conformal prediction intervals per horizon step, in NumPy and in the serving graph.

Calibration (done by the trainer, on points the model was not fitted on) gives
`residuals [n, H]`: the absolute error of the fed-back forecast at steps 1..H from each of
n origins. The band at `coverage` c for step h is `forecast ± q_h` with

    k   = ceil((n + 1) * c), at most n      (c taken as the float32 the graph receives)
    q_h = the k-th smallest of residuals[:, h - 1]                      for h <= H
    q_h = q_H * sqrt(h / H)                                             for h > H

Below H this is the split-conformal quantile: if the calibration origins and a new one are
exchangeable, the band holds the truth with probability at least c at each step (when
(n + 1) c > n no finite rank guarantees that, and the largest residual is used). Beyond the
calibrated horizon the width grows with the square root of the step, as a random walk's
spread does: an assumption, not a guarantee.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

DEFAULT_COVERAGE = 0.9
METHOD = "split conformal: absolute residuals of the fed-back forecast per horizon step"


def conformal_rank(origins: int, coverage: float) -> int:
    """k, the 1-based rank of the residual that bounds the band (see the module docstring)."""
    coverage = float(np.float32(coverage))
    return min(max(math.ceil((origins + 1) * coverage), 1), origins)


def half_widths(residuals, coverage: float, horizon: int) -> np.ndarray:
    """`[horizon]` float64: q_1..q_horizon from `residuals [n, H]` (NumPy reference)."""
    residuals = np.sort(np.asarray(residuals, dtype=np.float64), axis=0)
    origins, calibrated = residuals.shape
    quantiles = residuals[conformal_rank(origins, coverage) - 1]  # [H]
    steps = np.arange(1, horizon + 1)
    grown = quantiles[-1] * np.sqrt(steps / calibrated)
    return np.where(steps <= calibrated, quantiles[np.minimum(steps, calibrated) - 1], grown)


def check_residuals(residuals) -> np.ndarray:
    """`residuals` as float64 `[n >= 1, H >= 1]`, finite and non-negative, or ValueError."""
    residuals = np.asarray(residuals, dtype=np.float64)
    if residuals.ndim != 2 or 0 in residuals.shape:
        raise ValueError(f"calibration residuals must be [origins, horizon], not {residuals.shape}")
    if not np.all(np.isfinite(residuals)) or np.any(residuals < 0):
        raise ValueError("calibration residuals must be finite and non-negative")
    return residuals


def band_graph(sorted_residuals: tf.Tensor, coverage: tf.Tensor, horizon: tf.Tensor) -> tf.Tensor:
    """The graph's `[horizon]` float32 half-widths, from a constant `[n, H]` of residuals
    sorted along axis 0. Rejects a coverage outside (0, 1) (NaN too) with INVALID_ARGUMENT."""
    origins, calibrated = sorted_residuals.shape
    valid = tf.debugging.Assert(
        tf.logical_and(coverage > 0.0, coverage < 1.0),
        ["`coverage` must be between 0 and 1 (both excluded), got", coverage],
        name="coverage_check",
    )
    with tf.control_dependencies([valid]):
        # float64, so that the rank equals `conformal_rank` of the same float32 coverage.
        rank = tf.math.ceil(tf.cast(origins + 1, tf.float64) * tf.cast(coverage, tf.float64))
    rank = tf.clip_by_value(tf.cast(rank, tf.int32), 1, origins)
    quantiles = tf.gather(sorted_residuals, rank - 1)  # [H]
    steps = tf.range(1, horizon + 1)
    grown = quantiles[-1] * tf.sqrt(tf.cast(steps, tf.float32) / float(calibrated))
    within = tf.gather(quantiles, tf.minimum(steps, calibrated) - 1)
    return tf.where(steps <= calibrated, within, grown)
