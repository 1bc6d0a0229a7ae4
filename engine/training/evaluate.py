"""Validation figures of a trained run beside the baselines, on the same points."""

from __future__ import annotations

from pathlib import Path

from engine.series.baselines import baseline_forecasts
from engine.series.metrics import forecast_errors


def evaluate_run(run_dir: str | Path) -> dict:
    """`{"model": {"mae", "mse", "rmse", "mase"}, "naive": {...}, ...}` on the run's split."""
    from engine.training.prepare import apply_precision, prepare_data
    from engine.training.runs import load_run
    from engine.training.train import make_predict, predict_in_batches

    run = load_run(run_dir, for_export=False)
    apply_precision("float32")
    data = prepare_data(run.config)
    forecast = predict_in_batches(make_predict(run.model), data.valid_windows)
    truth, train = data.valid_targets, data.series[: data.split]  # the whole training part
    results = {"model": forecast_errors(truth, forecast, train)}
    series = data.series.astype("float64")
    for name, (baseline, parameters) in baseline_forecasts(series, data.split, data.period).items():
        results[name] = {**parameters, **forecast_errors(truth, baseline, train)}
    return results
