"""The course's learning-rate sweep: raise the rate exponentially, one batch a step,
and watch the loss. The suggestion is half-way along the smoothed loss's longest fall."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from engine.errors import InputError, RunFailed
from engine.series.metrics import figure
from engine.training.config import TrainConfig
from engine.training.losses import get_loss


def sweep_rates(min_lr: float, max_lr: float, steps: int) -> np.ndarray:
    """Geometric rates from `min_lr` to `max_lr`; the course's 1e-8 * 10**(step/20) is
    `min_lr=1e-8` with 20 steps a decade."""
    return min_lr * (max_lr / min_lr) ** (np.arange(steps) / max(steps - 1, 1))


def smooth(values: np.ndarray, beta: float = 0.9) -> np.ndarray:
    """Bias-corrected exponential moving average."""
    smoothed, average = np.empty(len(values)), 0.0
    for index, value in enumerate(values):
        average = beta * average + (1 - beta) * value
        smoothed[index] = average / (1 - beta ** (index + 1))
    return smoothed


def suggest(lrs: np.ndarray, smoothed_losses: np.ndarray) -> float:
    """The rate half-way along the longest valley of the smoothed loss (fastai's "valley"
    rule). The valley is the longest falling subsequence of the smoothed loss (its steps
    need not be adjacent), taken as the span of that many steps up to where it ends:
    batch-to-batch noise makes short dips, not long falls. The steepest point of the
    curve, the rule this replaced, was often a noise dip among the first steps (1e-7 in
    most of `benchmarks/lr_find_rules.py`'s sweeps)."""
    losses = np.asarray(smoothed_losses, dtype=np.float64)
    if len(lrs) < 3:
        return float(lrs[0])
    # falling[i]: the longest strictly falling subsequence that ends at step i.
    falling = np.ones(len(losses), dtype=np.int64)
    for index in range(1, len(losses)):
        higher_before = losses[:index] > losses[index]
        if higher_before.any():
            falling[index] = 1 + falling[:index][higher_before].max()
    end = int(np.argmax(falling))  # the first step that ends a longest one
    start = max(end - int(falling[end]) + 1, 0)
    return float(lrs[start + (end - start) // 2])


def find_lr(
    config: TrainConfig,
    min_lr: float = 1e-7,
    max_lr: float = 1.0,
    steps: int = 140,
    out_dir: str | None = None,
    quiet: bool = False,
) -> dict:
    """Run the sweep on a fresh model, one batch a step, under `config.strategy` and with
    `config.fast`'s step; returns `{"suggested_lr", "lrs", "losses", "replicas", ...}`."""
    import keras

    from engine.series.windows import windowed_dataset
    from engine.training.distribute import distribute_dataset, is_chief, make_strategy
    from engine.training.plots import plot_lr_sweep
    from engine.training.prepare import apply_precision, prepare_data, resolve_config
    from engine.training.progress import Progress
    from engine.training.step import build_training

    if not (math.isfinite(min_lr) and math.isfinite(max_lr) and 0 < min_lr < max_lr):
        raise InputError(f"--min-lr must be positive and below --max-lr, not {min_lr} and {max_lr}")
    if steps < 3:
        raise InputError("--steps must be at least 3")
    config = resolve_config(config.validate())
    # The sweep steps exactly as `engine train` would with the same flags: same strategy,
    # same fast path, so the rate it suggests is for that step.
    strategy = make_strategy(config)  # first: devices and collectives precede TF's runtime
    progress = Progress(quiet)
    apply_precision(config.precision)
    keras.utils.set_random_seed(config.seed)
    data = prepare_data(config)
    loss_fn = get_loss(config.loss, config.huber_delta)
    _, optimizer, train_step = build_training(
        config, data, strategy, loss_fn, total_steps=steps, learning_rate=float(min_lr)
    )
    batches = windowed_dataset(
        data.train, config.window_size, config.batch_size, config.shuffle_buffer, seed=config.seed
    ).repeat()
    batches = distribute_dataset(strategy, batches)

    rates = sweep_rates(min_lr, max_lr, steps)
    lrs, losses = [], []
    best, diverged = math.inf, False
    for rate, (windows, targets) in zip(rates, batches):
        optimizer.learning_rate = float(rate)  # assigns the optimizer's rate variable
        loss, _ = train_step(windows, targets)
        loss = float(loss)
        if not math.isfinite(loss) or loss > 4 * best:
            progress.line(f"stopped at lr {rate:.2e}: the loss diverged")
            diverged = True
            break
        best = min(best, loss)
        lrs.append(float(rate))
        losses.append(loss)
        if len(lrs) % 20 == 0:
            progress.line(f"lr {rate:.2e}  loss {figure(loss)}")
    if len(lrs) < 3:
        raise RunFailed("the loss diverged within the first steps: lower --min-lr")
    smoothed = smooth(np.asarray(losses))
    suggested = suggest(np.asarray(lrs), smoothed)
    result = {
        "suggested_lr": suggested,
        "lrs": lrs,
        "losses": losses,
        "smoothed_losses": smoothed.tolist(),
        "replicas": strategy.num_replicas_in_sync,
        # Never diverging, the sweep may have stopped short of the rates that train: SGD's
        # rate is in the loss's units, which a series in small units makes tiny.
        "diverged": diverged,
    }
    if out_dir is not None and is_chief(strategy):  # one plot per cluster, not per worker
        path = Path(out_dir) / "lr_find.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        plot_lr_sweep(np.asarray(lrs), np.asarray(losses), smoothed, suggested, path)
        result["plot"] = str(path)
    return result
