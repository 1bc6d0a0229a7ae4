"""The training loop: a `tf.function` step with `tf.GradientTape`, then evaluate, log,
checkpoint, early-stop. Everything a run does is in `train()`, top to bottom.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from engine.errors import InputError, RunFailed
from engine.series.metrics import forecast_errors
from engine.series.windows import windowed_dataset
from engine.training.config import TrainConfig, load_config
from engine.training.distribute import distribute_dataset, make_strategy, write_dir
from engine.training.losses import get_loss
from engine.training.prepare import (
    RunData,
    apply_precision,
    current_lr,
    prepare_data,
    resolve_config,
    steps_per_epoch,
)
from engine.training.progress import Progress
from engine.training.step import build_training, make_predict, predict_in_batches


def epoch_shuffle_seed(seed: int, epoch: int) -> int:
    """The data order of epoch `epoch` is a function of (seed, epoch) alone, so a resumed
    run replays exactly the order an uninterrupted one would have seen."""
    return (seed * 1_000_003 + epoch) % (2**31 - 1)


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
    """On `--resume` the run's own config.toml wins, except `epochs` (which may be raised) and
    where it runs (`strategy`, `replicas`): a run may resume on another number of replicas."""
    run_dir = Path(config.run_dir)
    saved = run_dir / "config.toml"
    if resume:
        if not saved.exists():
            raise InputError(f"{run_dir}: nothing to resume (no config.toml)")
        return load_config(saved).replace(
            run_dir=config.run_dir,
            epochs=config.epochs,
            strategy=config.strategy,
            replicas=config.replicas,
        )
    if (run_dir / "checkpoints").exists():
        raise InputError(f"{run_dir} already holds a run: use --resume, or another --run-dir")
    return config


def train(config: TrainConfig, resume: bool = False, quiet: bool = False) -> dict:
    """Train per `config`; returns the summary that is also written to summary.json."""
    import keras

    from engine.series.baselines import compute_baselines
    from engine.training.plots import plot_forecast, plot_losses

    # --- setup -------------------------------------------------------------------
    config = resolve_config(resolve_run(config, resume)).validate()
    strategy = make_strategy(config)  # first: devices and collectives precede TF's runtime
    run_dir = Path(config.run_dir)  # the run, read on --resume by every process
    out = write_dir(strategy, run_dir)  # what this process writes: run_dir on the chief
    progress = Progress(quiet)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    apply_precision(config.precision)
    keras.utils.set_random_seed(config.seed)
    data: RunData = prepare_data(config)
    steps = steps_per_epoch(config, data)
    loss_fn = get_loss(config.loss, config.huber_delta)
    model, optimizer, train_step = build_training(
        config, data, strategy, loss_fn, total_steps=steps * config.epochs
    )
    predict = make_predict(model)

    (out.path / "plots").mkdir(parents=True, exist_ok=True)
    (out.path / "config.toml").write_text(config.to_toml())
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
    manager = tf.train.CheckpointManager(checkpoint, out.path / "checkpoints", max_to_keep=2)
    best_manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), out.path / "checkpoints" / "best", max_to_keep=1
    )
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))  # any replica count wrote it
    if resume and latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        progress.line(f"resumed {run_dir} after epoch {int(epoch.numpy())}")
    metrics_path = out.path / "metrics.jsonl"
    history = _read_metrics(run_dir / "metrics.jsonl", int(epoch.numpy()))
    metrics_path.write_text("".join(json.dumps(entry) + "\n" for entry in history))
    writer = tf.summary.create_file_writer(str(out.path / "tensorboard"))
    replicas = strategy.num_replicas_in_sync
    progress.line(
        f"training {config.model} ({config.cells} cells, {model.count_params()} weights) on "
        f"{data.description}: {data.split} training / {len(data.valid_targets)} validation points"
        + (f", {replicas} replicas ({config.strategy})" if config.strategy != "default" else "")
    )
    if out.temporary:
        progress.line(f"not the chief: this worker writes to {out.path}, removed at the end")

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
            config.batch_size,  # the global batch, split among the replicas
            config.shuffle_buffer,
            seed=epoch_shuffle_seed(config.seed, current),
        )
        dataset = distribute_dataset(strategy, dataset)
        losses, skipped = [], 0
        for done, (windows, targets) in enumerate(dataset, start=1):
            loss, grads_finite = train_step(windows, targets)
            if bool(grads_finite):
                losses.append(float(loss))
            else:
                skipped += 1
            progress.step(current, config.epochs, done, steps)
        train_loss = float(np.mean(losses)) if losses else math.nan
        if not math.isfinite(train_loss) or (config.precision != "mixed_float16" and skipped):
            raise RunFailed(
                f"training diverged in epoch {current} (non-finite loss); the last good "
                f"checkpoint is in {out.path / 'checkpoints'}; try a lower --lr or clipping"
            )

        # --- evaluate and log ----------------------------------------------------
        forecast = predict_in_batches(predict, data.valid_windows)
        val = forecast_errors(data.valid_targets, forecast)
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
    model.save(out.path / "model.keras")
    forecast = predict_in_batches(predict, data.valid_windows)
    val = forecast_errors(data.valid_targets, forecast)
    summary = {
        "val_mae": val["mae"],
        "val_mse": val["mse"],
        "epochs_run": int(epoch.numpy()),
        "best_epoch": int(best_epoch.numpy()),
        "seconds": sum(entry["seconds"] for entry in history),
        "stop_reason": stop_reason,
        "weights": int(model.count_params()),
        "replicas": replicas,
        "data": data.description,
        "baselines": compute_baselines(data.series, data.split, data.period),
        "config": config.as_dict(),
    }
    _write_json(out.path / "summary.json", summary)
    plot_losses(history, out.path / "plots" / "loss.png")
    valid_time = np.arange(data.split, data.split + len(forecast))
    plot_forecast(
        valid_time,
        data.valid_targets,
        forecast,
        out.path / "plots" / "forecast.png",
        f"{config.model}: validation MAE {val['mae']:.3f}",
    )
    progress.line(
        f"done in {time.perf_counter() - started:.1f}s ({stop_reason}); best epoch "
        f"{summary['best_epoch']}: validation MAE {val['mae']:.4f} (naive "
        f"{summary['baselines']['naive']['mae']:.4f})"
    )
    out.cleanup()  # a worker's temporary copy; never the run dir
    return summary
