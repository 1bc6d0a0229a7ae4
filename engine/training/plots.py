"""PNG plots: a run's loss curves and validation forecast, the learning-rate sweep, and a
served forecast after its history."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.errors import InputError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def check_plot_path(path: str | Path) -> None:
    """Refuse, before any work, a plot path that cannot be written: a folder that does not
    exist, or a suffix matplotlib cannot write (`.png`, `.svg`, `.pdf`, ... are fine)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"cannot write plot {path}: {path.parent} is not a directory")
    plt = _pyplot()
    figure = plt.figure()
    formats = figure.canvas.get_supported_filetypes()
    plt.close(figure)
    if path.suffix.lstrip(".").lower() not in formats:
        raise InputError(
            f"cannot write plot {path}: give it a suffix such as .png "
            f"(one of {', '.join(sorted(formats))})"
        )


def _finish(plt, figure, axis, path: Path, xlabel: str, ylabel: str, dpi: int = 110) -> Path:
    """Label the axes, add the legend and write the PNG; a path that cannot be written is an
    `InputError`, and the figure is closed either way (pyplot keeps it alive otherwise)."""
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.legend()
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=dpi)
    except OSError as error:
        raise InputError(f"cannot write plot {path}: {error.strerror}") from error
    finally:
        plt.close(figure)
    return Path(path)


def plot_losses(metrics: list[dict], path: Path) -> Path:
    """A run's training and validation loss, and its validation MAE, per epoch."""
    return _loss_panels({"": metrics}, path, validation_loss=True)


def plot_member_losses(histories: list[list[dict]], path: Path) -> Path:
    """An ensemble's members side by side: training loss and validation MAE per epoch."""
    members = {f"member {index} ": metrics for index, metrics in enumerate(histories)}
    return _loss_panels(members, path, validation_loss=False)


def _loss_panels(runs: dict[str, list[dict]], path: Path, validation_loss: bool) -> Path:
    """Losses on a log scale (left) and validation MAE (right), one line per run, each
    labelled with its key."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for prefix, metrics in runs.items():
        epochs = [m["epoch"] for m in metrics]
        left.plot(epochs, [m["loss"] for m in metrics], label=f"{prefix}training loss")
        if validation_loss:
            left.plot(epochs, [m["val_loss"] for m in metrics], label=f"{prefix}validation loss")
        right.plot(epochs, [m["val_mae"] for m in metrics], label=f"{prefix}validation MAE")
    left.set_yscale("log")
    right.set_xlabel("epoch")
    right.set_ylabel("validation MAE (series units)")
    right.legend()
    return _finish(plt, figure, left, path, "epoch", "loss")


def plot_forecast(
    time: np.ndarray, truth: np.ndarray, forecast: np.ndarray, path: Path, title: str
) -> Path:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(11, 4))
    axis.plot(time, truth, label="validation series", linewidth=1)
    axis.plot(time, forecast, label="one-step forecast", linewidth=1)
    axis.set_title(title)
    return _finish(plt, figure, axis, path, "time step", "value")


def plot_lr_sweep(
    lrs: np.ndarray, losses: np.ndarray, smoothed: np.ndarray, suggested: float, path: Path
) -> Path:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.5))
    axis.semilogx(lrs, losses, alpha=0.35, label="loss per step")
    axis.semilogx(lrs, smoothed, label="smoothed")
    axis.axvline(suggested, color="tab:red", linestyle="--", label=f"suggested {suggested:.2e}")
    axis.set_yscale("log")
    return _finish(plt, figure, axis, path, "learning rate", "training loss")


def plot_history_and_forecast(
    history: np.ndarray,
    forecast: np.ndarray,
    path: Path,
    label: str,
    band: tuple[np.ndarray, np.ndarray, float] | None = None,
    dates: list | None = None,
) -> Path:
    """The recent history (at least a year, or four horizons) and the forecast after it;
    `band`: `(lower, upper, coverage)`, shaded around the forecast; `dates`: the x axis
    (one per history value and forecast step) instead of step numbers."""
    plt = _pyplot()
    shown = min(len(history), max(4 * len(forecast), 365))
    start = len(history) - shown
    x = np.arange(len(history) + len(forecast)) if dates is None else np.asarray(dates)
    figure, axis = plt.subplots(figsize=(10, 4))
    axis.plot(x[start : len(history)], history[start:], label="history", linewidth=1)
    steps = x[len(history) :]
    lines = axis.plot(steps, forecast, label=label, linewidth=1.5)
    if band is not None:
        lower, upper, coverage = band
        colour = lines[0].get_color()
        axis.fill_between(
            steps, lower, upper, color=colour, alpha=0.2, label=f"{coverage:.0%} band"
        )
    if dates is not None:
        figure.autofmt_xdate()
    xlabel = "time step" if dates is None else "date"
    return _finish(plt, figure, axis, path, xlabel, "value", dpi=100)


def plot_backtest_errors(maes: dict[str, list[float]], path: Path) -> Path:
    """MAE by horizon step, one line per forecaster (`engine backtest`)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9, 4.5))
    for name, values in maes.items():
        steps = np.arange(1, len(values) + 1)
        axis.plot(steps, values, label=name, linewidth=2 if name == "model" else 1, marker=".")
    axis.set_title("backtest: mean absolute error by horizon step")
    return _finish(plt, figure, axis, path, "horizon step", "MAE (series units)")


def plot_backtest_origins(
    series: np.ndarray,
    origins: np.ndarray,
    forecasts: dict[str, np.ndarray],
    path: Path,
    band: tuple[np.ndarray, float] | None = None,
) -> Path:
    """The series around a few origins and each forecaster's path from them
    (`forecasts[name][i]` starts at `origins[i]`); dotted lines mark the origins. `band`:
    `(half widths [horizon], coverage)`, shaded around the first forecaster's paths."""
    plt = _pyplot()
    horizon = next(iter(forecasts.values())).shape[1]
    start = max(0, int(origins[0]) - max(2 * horizon, 60))
    end = min(len(series), int(origins[-1]) + horizon)
    figure, axis = plt.subplots(figsize=(11, 4.5))
    axis.plot(np.arange(start, end), series[start:end], color="0.55", label="series", linewidth=1)
    colours = ("tab:red", "tab:blue", "tab:green", "tab:purple")
    for index, origin in enumerate(origins):
        axis.axvline(origin, color="0.8", linestyle=":", linewidth=1)
        steps = np.arange(origin, origin + horizon)
        for number, ((name, paths), colour) in enumerate(zip(forecasts.items(), colours)):
            label = name if index == 0 else None
            axis.plot(steps, paths[index], color=colour, linewidth=1.5, label=label)
            if band is not None and number == 0:
                half_width, coverage = band
                axis.fill_between(
                    steps,
                    paths[index] - half_width,
                    paths[index] + half_width,
                    color=colour,
                    alpha=0.15,
                    label=f"{name}: {coverage:.0%} band" if index == 0 else None,
                )
    axis.set_title(f"backtest: {horizon}-step forecasts from {len(origins)} origins")
    return _finish(plt, figure, axis, path, "time step", "value")
