"""The training loop: a `tf.function` step with `tf.GradientTape`, then evaluate, log,
checkpoint, early-stop. Everything a run does is in `train()`, top to bottom.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from engine.config import TrainConfig, load_config
from engine.data import windowed_dataset
from engine.errors import InputError, RunFailed
from engine.fast_path import step_options
from engine.losses import get_loss
from engine.metrics import figures
from engine.prepare import (
    RunData,
    apply_precision,
    build_run_model,
    current_lr,
    make_optimizer,
    prepare_data,
    steps_per_epoch,
)


def make_train_step(model, optimizer, loss_fn, jit_compile: bool = False):
    """One optimisation step on a batch `(windows [batch, time], targets [batch])`.

    Returns `(loss, grads_finite)`. Under mixed_float16 the optimizer is a
    `LossScaleOptimizer`: the loss is scaled inside the tape, and `apply` unscales the
    gradients, skips the step if any is non-finite and adjusts the scale. For any other
    optimizer `scale_loss` is the identity. Clipping is the optimizer's (`clipnorm`,
    `global_clipnorm` or `clipvalue`), applied to the unscaled gradients.
    """

    @tf.function(jit_compile=jit_compile)
    def train_step(windows, targets):
        with tf.GradientTape() as tape:
            predictions = model(windows, training=True)
            loss = loss_fn(targets[:, None], predictions)
            scaled_loss = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled_loss, model.trainable_variables)
        grads_finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        optimizer.apply(grads, model.trainable_variables)
        return loss, grads_finite

    return train_step


def make_predict(model):
    @tf.function
    def predict(windows):
        return model(windows, training=False)

    return predict


def predict_in_batches(predict, windows: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """`[n, time]` -> `[n]` forecasts."""
    parts = [
        predict(windows[i : i + batch_size]).numpy()[:, 0]
        for i in range(0, len(windows), batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros((0,), "float32")


def epoch_shuffle_seed(seed: int, epoch: int) -> int:
    """The data order of epoch `epoch` is a function of (seed, epoch) alone, so a resumed
    run replays exactly the order an uninterrupted one would have seen."""
    return (seed * 1_000_003 + epoch) % (2**31 - 1)


class Progress:
    """A bar per epoch on a terminal, one line per epoch otherwise, nothing when quiet."""

    def __init__(self, quiet: bool, stream=None):
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.bar = not quiet and self.stream.isatty()

    def epoch_bar(self, epoch: int, epochs: int, steps: int):
        import click

        if not self.bar:
            return None
        return click.progressbar(length=steps, label=f"epoch {epoch}/{epochs}", file=self.stream)

    def line(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)


def _write_json(path: Path, payload) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(temporary, path)


def _read_metrics(path: Path, up_to_epoch: int) -> list[dict]:
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [entry for entry in lines if entry["epoch"] <= up_to_epoch]


def resolve_run(config: TrainConfig, resume: bool) -> TrainConfig:
    """On `--resume` the run's own config.toml wins (only `epochs` may be raised)."""
    run_dir = Path(config.run_dir)
    saved = run_dir / "config.toml"
    if resume:
        if not saved.exists():
            raise InputError(f"{run_dir}: nothing to resume (no config.toml)")
        return load_config(saved).replace(run_dir=config.run_dir, epochs=config.epochs)
    if (run_dir / "checkpoints").exists():
        raise InputError(f"{run_dir} already holds a run: use --resume, or another --run-dir")
    return config


def train(config: TrainConfig, resume: bool = False, quiet: bool = False) -> dict:
    """Train per `config`; returns the summary that is also written to summary.json."""
    import keras

    from engine.baselines import compute_baselines
    from engine.plots import plot_forecast, plot_losses

    # --- setup -------------------------------------------------------------------
    config = resolve_run(config, resume).validate()
    run_dir = Path(config.run_dir)
    progress = Progress(quiet)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    apply_precision(config.precision)
    keras.utils.set_random_seed(config.seed)
    data: RunData = prepare_data(config)
    steps = steps_per_epoch(config, data)
    model = build_run_model(config, data)
    optimizer = make_optimizer(config, total_steps=steps * config.epochs)
    optimizer.build(model.trainable_variables)
    loss_fn = get_loss(config.loss, config.huber_delta)
    train_step = make_train_step(model, optimizer, loss_fn, **step_options(config))
    predict = make_predict(model)

    (run_dir / "plots").mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(config.to_toml())
    epoch = tf.Variable(0, dtype=tf.int64, name="epoch")
    best_val_mae = tf.Variable(math.inf, dtype=tf.float64, name="best_val_mae")
    best_epoch = tf.Variable(0, dtype=tf.int64, name="best_epoch")
    checkpoint = tf.train.Checkpoint(
        model=model,
        optimizer=optimizer,
        epoch=epoch,
        best_val_mae=best_val_mae,
        best_epoch=best_epoch,
    )
    manager = tf.train.CheckpointManager(checkpoint, run_dir / "checkpoints", max_to_keep=2)
    best_manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), run_dir / "checkpoints" / "best", max_to_keep=1
    )
    if resume and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        progress.line(f"resumed {run_dir} after epoch {int(epoch.numpy())}")
    metrics_path = run_dir / "metrics.jsonl"
    history = _read_metrics(metrics_path, int(epoch.numpy()))
    metrics_path.write_text("".join(json.dumps(entry) + "\n" for entry in history))
    writer = tf.summary.create_file_writer(str(run_dir / "tensorboard"))
    progress.line(
        f"training {config.model} ({config.cells} cells, {model.count_params()} weights) on "
        f"{data.description}: {data.split} training / {len(data.valid_targets)} validation points"
    )

    started = time.perf_counter()
    stop_reason = "completed all epochs"
    while int(epoch.numpy()) < config.epochs:
        # --- one epoch of steps --------------------------------------------------
        current = int(epoch.numpy()) + 1
        epoch_started = time.perf_counter()
        lr = current_lr(optimizer)
        dataset = windowed_dataset(
            data.train,
            config.window_size,
            config.batch_size,
            config.shuffle_buffer,
            seed=epoch_shuffle_seed(config.seed, current),
        )
        losses, skipped = [], 0
        bar = progress.epoch_bar(current, config.epochs, steps)
        for windows, targets in dataset:
            loss, grads_finite = train_step(windows, targets)
            if bool(grads_finite):
                losses.append(float(loss))
            else:
                skipped += 1
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.render_finish()
        train_loss = float(np.mean(losses)) if losses else math.nan
        if not math.isfinite(train_loss) or (config.precision != "mixed_float16" and skipped):
            raise RunFailed(
                f"training diverged in epoch {current} (non-finite loss); the last good "
                f"checkpoint is in {run_dir / 'checkpoints'}; try a lower --lr or clipping"
            )

        # --- evaluate and log ----------------------------------------------------
        forecast = predict_in_batches(predict, data.valid_windows)
        val = figures(data.valid_targets, forecast)
        val_loss = float(loss_fn(data.valid_targets[:, None], forecast[:, None]))
        entry = {
            "epoch": current,
            "loss": train_loss,
            "val_loss": val_loss,
            "val_mae": val["mae"],
            "val_mse": val["mse"],
            "lr": lr,
            "seconds": time.perf_counter() - epoch_started,
            "steps": steps,
        }
        if config.precision == "mixed_float16":
            entry["loss_scale"] = float(optimizer.dynamic_scale.numpy())
            entry["skipped_steps"] = skipped
        history.append(entry)
        with metrics_path.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
        with writer.as_default(step=current):
            for key in ("loss", "val_loss", "val_mae", "lr"):
                tf.summary.scalar(key, entry[key])
        progress.line(
            f"epoch {current}/{config.epochs}  loss {train_loss:.4f}  val_loss {val_loss:.4f}  "
            f"val_mae {val['mae']:.4f}  lr {lr:.2e}  {entry['seconds']:.1f}s"
        )

        # --- checkpoint and early stopping ----------------------------------------
        improved = val["mae"] < float(best_val_mae.numpy())
        if improved:
            best_val_mae.assign(val["mae"])
            best_epoch.assign(current)
            best_manager.save(checkpoint_number=current)  # before the main checkpoint
        epoch.assign(current)
        manager.save(checkpoint_number=current)
        if config.patience and current - int(best_epoch.numpy()) >= config.patience:
            stop_reason = f"early stop: no better validation MAE for {config.patience} epochs"
            break

    # --- finish: best weights, model, summary, plots ---------------------------------
    if best_manager.latest_checkpoint:
        tf.train.Checkpoint(model=model).restore(best_manager.latest_checkpoint).expect_partial()
    model.save(run_dir / "model.keras")
    forecast = predict_in_batches(predict, data.valid_windows)
    val = figures(data.valid_targets, forecast)
    summary = {
        "val_mae": val["mae"],
        "val_mse": val["mse"],
        "epochs_run": int(epoch.numpy()),
        "best_epoch": int(best_epoch.numpy()),
        "seconds": sum(entry["seconds"] for entry in history),
        "stop_reason": stop_reason,
        "weights": int(model.count_params()),
        "data": data.description,
        "baselines": compute_baselines(data.series, data.split, data.period),
        "config": config.as_dict(),
    }
    _write_json(run_dir / "summary.json", summary)
    plot_losses(history, run_dir / "plots" / "loss.png")
    valid_time = np.arange(data.split, data.split + len(forecast))
    plot_forecast(
        valid_time,
        data.valid_targets,
        forecast,
        run_dir / "plots" / "forecast.png",
        f"{config.model}: validation MAE {val['mae']:.3f}",
    )
    progress.line(
        f"done in {time.perf_counter() - started:.1f}s ({stop_reason}); best epoch "
        f"{summary['best_epoch']}: validation MAE {val['mae']:.4f} (naive "
        f"{summary['baselines']['naive']['mae']:.4f})"
    )
    return summary
