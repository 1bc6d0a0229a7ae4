"""Forecast error figures, all in the units of the series."""

from __future__ import annotations

import numpy as np


def mae(truth: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(truth) - np.asarray(forecast))))


def mse(truth: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean(np.square(np.asarray(truth) - np.asarray(forecast))))


def mase(truth: np.ndarray, forecast: np.ndarray, train: np.ndarray, period: int = 1) -> float:
    """MAE scaled by the in-sample MAE of the (seasonal) naive forecast on `train`."""
    train = np.asarray(train)
    if len(train) <= period:
        return float("nan")
    scale = float(np.mean(np.abs(train[period:] - train[:-period])))
    return mae(truth, forecast) / scale if scale > 0 else float("nan")


def forecast_errors(
    truth: np.ndarray, forecast: np.ndarray, train: np.ndarray | None = None
) -> dict:
    """`{"mae", "mse", "rmse", "mase"}`; MASE only when `train` is given."""
    result = {"mae": mae(truth, forecast), "mse": mse(truth, forecast)}
    result["rmse"] = float(np.sqrt(result["mse"]))
    if train is not None:
        result["mase"] = mase(truth, forecast, train)
    return result


def figure(value: float, decimals: int = 4) -> str:
    """`value` for a person: `decimals` places in the usual range, and in scientific notation
    where fixed places would hide it (a series in small units: 3.66e-07, not 0.0000) or pad
    it (8.585e+17)."""
    value = float(value)
    if value == 0 or not np.isfinite(value) or 10 ** (2 - decimals) <= abs(value) < 1e7:
        return f"{value:.{decimals}f}"
    return f"{value:.{decimals}g}"
