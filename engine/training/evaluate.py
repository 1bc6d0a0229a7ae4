"""Validation figures of a trained run beside the baselines, on the same points."""

from __future__ import annotations

from pathlib import Path

from engine.baselines import baseline_forecasts
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
    truth, train = data.valid_targets, data.train
    results = {"model": figures(truth, forecast, train)}
    series = data.series.astype("float64")
    for name, (baseline, parameters) in baseline_forecasts(series, data.split, data.period).items():
        results[name] = {**parameters, **figures(truth, baseline, train)}
    return results
