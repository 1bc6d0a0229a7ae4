"""Rolling-origin evaluation over the validation part, with the exported `forecast`
signature's semantics: each prediction is fed back as the newest value of the next window.

From each origin `t` (split, split + stride, ...; `t + horizon <= len(series)`) the model and
the baselines forecast `series[t : t + horizon]` from the history `series[:t]` alone. The
model runs once per horizon step over all origins at once, so a backtest costs `horizon`
batched predictions, not one loop per origin.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import InputError

DEFAULT_HORIZON = 30
MAX_DEFAULT_ORIGINS = 500
PLOTTED_ORIGINS = 4
TABLE_STEPS = (1, 2, 5, 10, 20, 30, 60, 90, 180, 365)

PredictNext = Callable[[np.ndarray], np.ndarray]  # float32 [n, window_size] -> [n]


@dataclass(frozen=True)
class BacktestPaths:
    """What every forecaster said from every origin: `[origins, horizon]` arrays."""

    origins: np.ndarray  # [n] int, the index of each origin's first forecast target
    truth: np.ndarray  # [n, horizon] float64, truth[i, h - 1] = series[origins[i] + h - 1]
    forecasts: dict[str, np.ndarray]  # name -> [n, horizon] float64


class HorizonTooLong(InputError):
    """The validation part is shorter than the backtest's horizon."""

    def __init__(self, valid_length: int, horizon: int):
        self.valid_length, self.horizon = valid_length, horizon
        hint = f" (use --horizon {valid_length} or less)" if valid_length else ""
        super().__init__(
            f"the validation part has {valid_length} points, a backtest of horizon {horizon} "
            f"needs at least {horizon}{hint}"
        )


def check_horizon(valid_length: int, horizon: int, stride: int) -> None:
    if horizon < 1:
        raise InputError(f"--horizon must be at least 1, not {horizon}")
    if stride < 1:
        raise InputError(f"--stride must be at least 1, not {stride}")
    if valid_length < horizon:
        raise HorizonTooLong(valid_length, horizon)


def origin_indices(split: int, length: int, horizon: int, stride: int) -> np.ndarray:
    """Origins `split, split + stride, ...` whose whole horizon lies in the validation part."""
    check_horizon(length - split, horizon, stride)
    return np.arange(split, length - horizon + 1, stride)


def rolling_model_forecasts(
    predict_next: PredictNext,
    series: np.ndarray,
    origins: np.ndarray,
    window_size: int,
    horizon: int,
) -> np.ndarray:
    """`[n, horizon]` float32: the model's path from each origin, each prediction fed back
    as the newest value of the next window, as the exported `forecast` signature does."""
    if origins.min(initial=window_size) < window_size:
        raise InputError(f"an origin at {origins.min()} has less history than the window")
    series = np.asarray(series, dtype="float32")
    windows = series[origins[:, None] - window_size + np.arange(window_size)[None, :]]
    steps = []
    for _ in range(horizon):
        next_value = np.asarray(predict_next(windows), dtype="float32").reshape(len(origins))
        steps.append(next_value)
        windows = np.concatenate([windows[:, 1:], next_value[:, None]], axis=1)
    return np.stack(steps, axis=1) if steps else np.zeros((len(origins), 0), "float32")


def baseline_paths(
    series: np.ndarray, origins: np.ndarray, horizon: int, period: int | None = None
) -> dict[str, np.ndarray]:
    """`{name: [n, horizon]}` from each origin's history `series[:t]` alone: naive (the last
    value), seasonal naive (the value whole periods before each target, the latest one in the
    history; only when every origin has a period of history) and drift (the straight line
    through the first and the last value of the history)."""
    series = np.asarray(series, dtype="float64")
    steps = np.arange(1, horizon + 1)[None, :]  # h = 1..horizon
    last = series[origins - 1][:, None]
    paths = {"naive": np.repeat(last, horizon, axis=1)}
    if period is not None and len(origins) and origins.min() >= period:
        # Target t + h - 1 takes the value ceil(h / period) periods before it: < t always.
        paths["seasonal_naive"] = series[origins[:, None] - period + (steps - 1) % period]
    slope = (last[:, 0] - series[0]) / np.maximum(origins - 1, 1)  # 0 for a 1-point history
    paths["drift"] = last + steps * slope[:, None]
    return paths


def seasonal_naive_scale(train: np.ndarray, period: int | None) -> float | None:
    """MASE's denominator: the in-sample MAE of the seasonal naive of period `period or 1`
    on the training part; None where it does not exist or is 0."""
    train = np.asarray(train, dtype="float64")
    lag = period or 1
    if len(train) <= lag:
        return None
    scale = float(np.mean(np.abs(train[lag:] - train[:-lag])))
    return scale if scale > 0 else None


def horizon_errors(truth: np.ndarray, forecast: np.ndarray, scale: float | None) -> dict:
    """Per-step `mae`, `rmse`, `mase` (None without a scale) and `smape` lists, and `mean`:
    each figure's mean over the steps (for RMSE the mean of the per-step RMSEs)."""
    error = truth - forecast
    denominator = np.abs(truth) + np.abs(forecast)
    ratio = np.divide(
        200.0 * np.abs(error), denominator, out=np.zeros_like(error), where=denominator > 0
    )
    figures = {
        "mae": np.mean(np.abs(error), axis=0),
        "rmse": np.sqrt(np.mean(np.square(error), axis=0)),
        "smape": np.mean(ratio, axis=0),
    }
    result = {name: [float(v) for v in values] for name, values in figures.items()}
    result["mase"] = [v / scale for v in result["mae"]] if scale else None
    result["mean"] = {
        name: (float(np.mean(values)) if values is not None else None)
        for name, values in result.items()
    }
    return {key: result[key] for key in ("mae", "rmse", "mase", "smape", "mean")}


def backtest_paths(
    predict_next: PredictNext,
    series: np.ndarray,
    origins: np.ndarray,
    window_size: int,
    horizon: int,
    period: int | None,
) -> BacktestPaths:
    """The model's and the baselines' forecasts from every origin, and the truth."""
    model = rolling_model_forecasts(predict_next, series, origins, window_size, horizon)
    forecasts = {"model": model.astype("float64")}
    forecasts.update(baseline_paths(series, origins, horizon, period))
    truth = np.asarray(series, dtype="float64")[origins[:, None] + np.arange(horizon)[None, :]]
    return BacktestPaths(origins, truth, forecasts)


def summarise(paths: BacktestPaths, train: np.ndarray, stride: int, period: int | None) -> dict:
    """`backtest`'s figures of `paths`; `train` (the training part) gives MASE's scale."""
    scale = seasonal_naive_scale(train, period)
    return {
        "horizon": paths.truth.shape[1],
        "stride": stride,
        "origins": len(paths.origins),
        "first_origin": int(paths.origins[0]),
        "last_origin": int(paths.origins[-1]),
        "period": period,
        "mase_scale": scale,
        "forecasts": {
            name: horizon_errors(paths.truth, forecast, scale)
            for name, forecast in paths.forecasts.items()
        },
    }


def backtest(
    predict_next: PredictNext,
    series: np.ndarray,
    split: int,
    window_size: int,
    horizon: int,
    stride: int = 1,
    period: int | None = None,
) -> dict:
    """Rolling-origin figures of the model and the naive, seasonal-naive and drift baselines
    on the same origins, JSON-ready:

    `{"horizon", "stride", "origins", "first_origin", "last_origin", "period", "mase_scale",
    "forecasts": {name: {"mae": [horizon], "rmse", "mase", "smape", "mean": {...}}}}`.

    `predict_next(windows float32 [n, window_size]) -> [n]` is the model's next value. MASE
    divides by the training part's in-sample seasonal-naive MAE (period `period or 1`).
    """
    origins = origin_indices(split, len(series), horizon, stride)
    paths = backtest_paths(predict_next, series, origins, window_size, horizon, period)
    return summarise(paths, np.asarray(series)[:split], stride, period)


def default_horizon(period: int | None) -> int:
    """The period where it is short (at most 60 steps), else 30."""
    return period if period and period <= 60 else DEFAULT_HORIZON


def default_stride(valid_length: int, horizon: int) -> int:
    """1, or the smallest stride that keeps the origins to at most 500."""
    count = max(valid_length - horizon + 1, 1)
    return max(1, math.ceil(count / MAX_DEFAULT_ORIGINS))


def summary_line(result: dict) -> str:
    """One short line: the model's mean MAE and MASE beside the baselines' MASE, and the
    band's empirical coverage and width when there is one."""
    forecasts = result["forecasts"]
    key = "mase" if result["mase_scale"] else "mae"
    model = forecasts["model"]["mean"]
    others = ", ".join(
        f"{name.replace('_', ' ')} {figures['mean'][key]:.3g}"
        for name, figures in forecasts.items()
        if name != "model"
    )
    steps, origins = result["horizon"], result["origins"]
    head = f"backtest ({steps} step{'s' * (steps != 1)}, {origins} origin{'s' * (origins != 1)}): "
    head += f"MAE {model['mae']:.3g}"
    if key == "mase":
        head += f", MASE {model['mase']:.3g}"
    line = f"{head} ({key.upper()}: {others})"
    band = result.get("band")
    if band:
        line += (
            f"; {band['coverage']:.0%} band holds {band['mean']['empirical_coverage']:.1%} "
            f"of the truth, mean width {band['mean']['width']:.3g}"
        )
    return line


def pick_origins(count: int, wanted: int = PLOTTED_ORIGINS) -> np.ndarray:
    """Indices of a few origins spread evenly from the first to the last."""
    return np.unique(np.linspace(0, count - 1, min(wanted, count)).round().astype(int))


def backtest_run(
    run_dir: str | Path,
    horizon: int | None = None,
    stride: int | None = None,
    coverage: float | None = None,
):
    """`backtest(...)` of a trained run on its own split, with its plots and, for a
    calibrated run, its band at `coverage` (default 0.9) (`backtest_model`)."""
    from engine.training.intervals import CALIBRATION_FILE
    from engine.training.prepare import apply_precision, prepare_data
    from engine.training.runs import load_run

    run = load_run(run_dir, for_export=False)
    if coverage is not None and run.calibration is None:
        raise InputError(f"{run_dir} has no interval band (no {CALIBRATION_FILE}): drop --coverage")
    apply_precision("float32")
    data = prepare_data(run.config)
    return backtest_model(
        run.model,
        data,
        run.config.window_size,
        horizon,
        stride,
        run_dir,
        calibration=run.calibration,
        coverage=coverage,
    )


def backtest_model(
    model,
    data,
    window_size: int,
    horizon=None,
    stride=None,
    run_dir=None,
    calibration: dict | None = None,
    coverage: float | None = None,
):
    """`backtest(...)` of a Keras model on a run's data (`engine.training.prepare.RunData`):
    default horizon and stride as above, and with `run_dir` the plots it writes into
    `RUN_DIR/plots/`: `backtest.png` (MAE by step) and `backtest_origins.png`. With a
    `calibration` (engine/training/intervals.py) the result has `band`: the empirical
    coverage and the width of the band at `coverage` (default 0.9), per step."""
    from engine.training.intervals import DEFAULT_COVERAGE, band_figures
    from engine.training.plots import plot_backtest_errors, plot_backtest_origins
    from engine.training.step import make_predict, predict_in_batches

    period = data.period
    valid_length = len(data.series) - data.split
    horizon = default_horizon(period) if horizon is None else horizon
    check_horizon(valid_length, horizon, 1 if stride is None else stride)
    stride = default_stride(valid_length, horizon) if stride is None else stride
    predict = make_predict(model)

    def predict_next(windows: np.ndarray) -> np.ndarray:
        return predict_in_batches(predict, windows)

    origins = origin_indices(data.split, len(data.series), horizon, stride)
    paths = backtest_paths(predict_next, data.series, origins, window_size, horizon, period)
    # MASE's scale comes from the whole training part (`data.train` stops at the selection slice).
    result = summarise(paths, data.series[: data.split], stride, period)
    half_width = None
    if calibration is not None:
        residuals = calibration["residuals"]
        coverage = DEFAULT_COVERAGE if coverage is None else coverage
        result["band"] = band_figures(paths.truth, paths.forecasts["model"], residuals, coverage)
        half_width = np.asarray(result["band"]["width"]) / 2
    if run_dir is None:
        return result
    plots = Path(run_dir) / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    maes = {name: figures["mae"] for name, figures in result["forecasts"].items()}
    chosen = pick_origins(len(paths.origins))
    baseline = "seasonal_naive" if "seasonal_naive" in paths.forecasts else "naive"
    shown = {name: paths.forecasts[name][chosen] for name in ("model", baseline)}
    result["plots"] = {
        "errors": str(plot_backtest_errors(maes, plots / "backtest.png")),
        "origins": str(
            plot_backtest_origins(
                data.series,
                paths.origins[chosen],
                shown,
                plots / "backtest_origins.png",
                band=None if half_width is None else (half_width, coverage),
            )
        ),
    }
    return result
