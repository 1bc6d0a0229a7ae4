"""The course's synthetic series ("Sequences, Time Series and Prediction", weeks 1-4):
trend + seasonality + noise, built exactly as the course builds it."""

from __future__ import annotations

import numpy as np

# The course's synthetic series ("Sequences, Time Series and Prediction", weeks 1-4).
COURSE_LENGTH = 4 * 365 + 1
COURSE_SPLIT = 1000
COURSE_PERIOD = 365


def seasonal_pattern(season_time: np.ndarray) -> np.ndarray:
    """An arbitrary pattern over one period; `season_time` is in [0, 1)."""
    return np.where(season_time < 0.4, np.cos(season_time * 2 * np.pi), 1 / np.exp(3 * season_time))


def course_series(
    length: int = COURSE_LENGTH,
    baseline: float = 10.0,
    slope: float = 0.05,
    period: int = COURSE_PERIOD,
    amplitude: float = 40.0,
    noise_level: float = 5.0,
    seed: int = 42,
) -> tuple[np.ndarray, np.ndarray]:
    """Trend + seasonality + noise, exactly as the course builds it.

    Returns `(time [length] float32, series [length] float64)`. The course computes time
    in float32 and the noise in float64; keeping both reproduces its published figures.
    """
    time = np.arange(length, dtype="float32")
    season_time = ((time + 0) % period) / period
    series = baseline + slope * time + amplitude * seasonal_pattern(season_time)
    series = series + np.random.RandomState(seed).randn(length) * noise_level
    return time, series
