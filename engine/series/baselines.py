"""Statistical baselines every model must beat, as in the course's week 1.

Each forecast function returns the forecasts for the validation part `series[split:]`:
`forecast[i]` predicts `series[split + i]` using only values before it.
"""

from __future__ import annotations

import numpy as np

from engine.errors import InputError
from engine.series.metrics import mae, mse

DEFAULT_MOVING_AVERAGE = 30


def naive_forecast(series: np.ndarray, split: int) -> np.ndarray:
    """The last observed value."""
    return np.asarray(series[split - 1 : -1])


def moving_average_forecast(series: np.ndarray, split: int, window: int) -> np.ndarray:
    """The mean of the `window` values before each point."""
    if not 1 <= window <= split:
        raise InputError(f"moving-average window {window} needs 1..{split} training points")
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(series, dtype="float64"))])
    ends = np.arange(split, len(series))
    return (cumulative[ends] - cumulative[ends - window]) / window


def seasonal_naive_forecast(series: np.ndarray, split: int, period: int) -> np.ndarray:
    """The value one period earlier."""
    return np.asarray(series[split - period : len(series) - period])


def seasonal_difference_forecast(
    series: np.ndarray, split: int, period: int, window: int = 50, smoothing: int = 10
) -> np.ndarray:
    """The course's best statistical forecast: a moving average of the year-over-year
    differences, added to a centred moving average of last year's values."""
    series = np.asarray(series, dtype="float64")
    targets = np.arange(split, len(series))
    difference = series[period:] - series[:-period]  # difference[j] = s[j+period] - s[j]
    diff_index = targets - period
    trend = np.array([difference[j - window : j].mean() for j in diff_index])
    half = smoothing // 2
    past = np.array([series[t - period - half : t - period + half].mean() for t in targets])
    return trend + past


def baseline_forecasts(
    series: np.ndarray, split: int, period: int | None = None, window: int = DEFAULT_MOVING_AVERAGE
) -> dict[str, tuple[np.ndarray, dict]]:
    """Every baseline that applies: `{name: (forecast [len(series) - split], parameters)}`.

    A short training part shortens the moving average's window to what it holds (the
    parameters record the window used); `moving_average_forecast` alone refuses instead.
    """
    window = min(window, split)
    forecasts = {
        "naive": (naive_forecast(series, split), {}),
        "moving_average": (moving_average_forecast(series, split, window), {"window": window}),
    }
    if period is not None and split >= period:
        forecasts["seasonal_naive"] = (
            seasonal_naive_forecast(series, split, period),
            {"period": period},
        )
        if split >= period + 50:
            forecasts["seasonal_difference"] = (
                seasonal_difference_forecast(series, split, period),
                {"period": period, "window": 50},
            )
    return forecasts


def compute_baselines(
    series: np.ndarray, split: int, period: int | None = None, window: int = DEFAULT_MOVING_AVERAGE
) -> dict:
    """All baselines that apply, as `{"naive": {"mae", "mse"}, "moving_average": {...}, ...}`."""
    truth = np.asarray(series[split:])
    return {
        name: {**parameters, "mae": mae(truth, forecast), "mse": mse(truth, forecast)}
        for name, (forecast, parameters) in baseline_forecasts(
            series, split, period, window
        ).items()
    }
