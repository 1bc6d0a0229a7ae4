"""PNG plots of a run: loss curves, validation forecast, learning-rate sweep."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _save(plt, figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)  # pyplot keeps every open figure alive otherwise
    return path


def plot_losses(metrics: list[dict], path: Path) -> Path:
    plt = _pyplot()
    epochs = [m["epoch"] for m in metrics]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(epochs, [m["loss"] for m in metrics], label="training loss")
    left.plot(epochs, [m["val_loss"] for m in metrics], label="validation loss")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.set_yscale("log")
    left.legend()
    right.plot(epochs, [m["val_mae"] for m in metrics], color="tab:green")
    right.set_xlabel("epoch")
    right.set_ylabel("validation MAE (series units)")
    return _save(plt, figure, path)


def plot_forecast(
    time: np.ndarray, truth: np.ndarray, forecast: np.ndarray, path: Path, title: str
) -> Path:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(11, 4))
    axis.plot(time, truth, label="validation series", linewidth=1)
    axis.plot(time, forecast, label="one-step forecast", linewidth=1)
    axis.set_xlabel("time step")
    axis.set_ylabel("value")
    axis.set_title(title)
    axis.legend()
    return _save(plt, figure, path)


def plot_lr_sweep(
    lrs: np.ndarray, losses: np.ndarray, smoothed: np.ndarray, suggested: float, path: Path
) -> Path:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.5))
    axis.semilogx(lrs, losses, alpha=0.35, label="loss per step")
    axis.semilogx(lrs, smoothed, label="smoothed")
    axis.axvline(suggested, color="tab:red", linestyle="--", label=f"suggested {suggested:.2e}")
    axis.set_yscale("log")
    axis.set_xlabel("learning rate")
    axis.set_ylabel("training loss")
    axis.legend()
    return _save(plt, figure, path)
