"""Validation figures of a trained run beside the baselines, on the same points."""

from __future__ import annotations

from pathlib import Path

from engine.baselines import (
    DEFAULT_MOVING_AVERAGE,
    moving_average_forecast,
    naive_forecast,
    seasonal_difference_forecast,
    seasonal_naive_forecast,
)
from engine.metrics import figures


def evaluate_run(run_dir: str | Path) -> dict:
    """`{"model": {"mae", "mse", "rmse", "mase"}, "naive": {...}, ...}` on the run's split."""
    from engine.prepare import apply_precision, prepare_data
    from engine.runs import load_run
    from engine.train import make_predict, predict_in_batches

    run = load_run(run_dir, for_export=False)
    apply_precision("float32")
    data = prepare_data(run.config)
    forecast = predict_in_batches(make_predict(run.model), data.valid_windows)
    truth, train, split = data.valid_targets, data.train, data.split
    results = {"model": figures(truth, forecast, train)}
    series = data.series.astype("float64")
    results["naive"] = figures(truth, naive_forecast(series, split), train)
    results["moving_average"] = {
        "window": DEFAULT_MOVING_AVERAGE,
        **figures(truth, moving_average_forecast(series, split, DEFAULT_MOVING_AVERAGE), train),
    }
    if data.period is not None and split >= data.period + 50:
        results["seasonal_naive"] = figures(
            truth, seasonal_naive_forecast(series, split, data.period), train
        )
        results["seasonal_difference"] = figures(
            truth, seasonal_difference_forecast(series, split, data.period), train
        )
    return results
