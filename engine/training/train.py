"""The training loop: a `tf.function` step with `tf.GradientTape`, then evaluate, log,
checkpoint, early-stop. Everything a run does is in `train()`, top to bottom; `run_epoch` is
one pass of steps, `refit` the optional second fit on the whole training part, and
`finish_run` what every run (an ensemble's too) ends with.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from engine.errors import InputError, RunFailed
from engine.series.metrics import figure, forecast_errors
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
from engine.training.runs import check_creatable
from engine.training.step import build_training, make_predict, predict_in_batches

SELECTED_MODEL_FILE = "model.selected.keras"  # with --refit: the best epoch's model


def epoch_shuffle_seed(seed: int, epoch: int) -> int:
    """The data order of epoch `epoch` is a function of (seed, epoch) alone, so a resumed
    run replays exactly the order an uninterrupted one would have seen."""
    return (seed * 1_000_003 + epoch) % (2**31 - 1)


def _write_json(path: Path, payload) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(temporary, path)


def read_metrics(path: Path, up_to_epoch: int) -> list[dict]:
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [entry for entry in lines if entry["epoch"] <= up_to_epoch]


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no NaN


def selection_errors(predict, data: RunData) -> dict:
    """MAE, MSE and the MAE's standard error on the selection slice (NaN without one)."""
    if not len(data.selection_targets):
        return {"mae": math.nan, "mse": math.nan, "mae_se": math.nan}
    forecast = predict_in_batches(predict, data.selection_windows)
    errors = np.abs(data.selection_targets - forecast).astype("float64")
    standard_error = (
        float(np.std(errors, ddof=1) / np.sqrt(len(errors))) if len(errors) > 1 else 0.0
    )
    return {**forecast_errors(data.selection_targets, forecast), "mae_se": standard_error}


def run_epoch(train_step, strategy, data: RunData, config: TrainConfig, epoch: int, progress, of):
    """One pass over the windows of `data.train` in epoch `epoch`'s order (a function of the
    seed and the epoch): `(mean loss, skipped steps)`. Raises `RunFailed` on divergence (a
    skipped step is divergence unless the loss scale under mixed_float16 skipped it)."""
    dataset = windowed_dataset(
        data.train,
        config.window_size,
        config.batch_size,  # the global batch, split among the replicas
        config.shuffle_buffer,
        seed=epoch_shuffle_seed(config.seed, epoch),
    )
    steps = steps_per_epoch(config, data)
    losses, skipped = [], 0
    for done, (windows, targets) in enumerate(distribute_dataset(strategy, dataset), start=1):
        loss, grads_finite = train_step(windows, targets)
        if bool(grads_finite):
            losses.append(float(loss))
        else:
            skipped += 1
        progress.step(epoch, of, done, steps)
    train_loss = float(np.mean(losses)) if losses else math.nan
    if not math.isfinite(train_loss) or (config.precision != "mixed_float16" and skipped):
        raise RunFailed(
            f"training diverged in epoch {epoch} (non-finite loss); the last good "
            f"checkpoint is in {Path(config.run_dir) / 'checkpoints'}; try a lower --lr or "
            "clipping"
        )
    return train_loss, skipped


def refit(config: TrainConfig, data: RunData, strategy, loss_fn, epochs: int, progress):
    """The run's training again from its first step, on the whole training part (the
    selection slice included), for the `epochs` the slice picked: the same seed, initial
    weights and learning-rate schedule, with the training part's most recent points, the
    nearest to what is forecast, no longer held out. Returns `(model, predict)`.

    Not checkpointed: it is a function of the config and the best epoch alone, so a run
    resumed after its last epoch simply refits again."""
    import keras

    whole = dataclasses.replace(data, selection=data.split)
    keras.utils.set_random_seed(config.seed)
    steps = steps_per_epoch(config, whole)
    model, _, train_step = build_training(
        config, whole, strategy, loss_fn, total_steps=steps * config.epochs
    )
    predict = make_predict(model)
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        loss, _ = run_epoch(train_step, strategy, whole, config, epoch, progress, epochs)
        forecast = predict_in_batches(predict, data.valid_windows)
        progress.line(
            f"refit epoch {epoch}/{epochs}  loss {figure(loss)}  val_mae "
            f"{figure(forecast_errors(data.valid_targets, forecast)['mae'])}  "
            f"{time.perf_counter() - started:.1f}s"
        )
    return model, predict


RESUME_MAY_CHANGE = ("run_dir", "epochs", "strategy", "replicas")  # all else is the run's own


def resolve_run(config: TrainConfig, resume: bool, given=None) -> TrainConfig:
    """On `--resume` the run's own config.toml wins, except `epochs` (which may be raised) and
    where it runs (`strategy`, `replicas`): a run may resume on another number of replicas.

    `given` names the settings the user gave (flags, a `--config` file): then `epochs` is the
    run's own unless given, and any other given setting must equal the run's, since a resume
    cannot change the model or its data. `None` (a call from Python) takes all three from
    `config` and checks nothing else."""
    run_dir = Path(config.run_dir)
    saved = run_dir / "config.toml"
    if resume:
        if not saved.exists():
            raise InputError(f"{run_dir}: nothing to resume (no config.toml)")
        original = load_config(saved)
        for name in sorted(set(given or ()) - set(RESUME_MAY_CHANGE)):
            if getattr(config, name) != getattr(original, name):
                was, now = (json.dumps(getattr(c, name)) for c in (original, config))
                raise InputError(
                    f"{run_dir} was trained with {name} = {was}, not {now}: --resume continues "
                    f"a run as it began (drop --{name.replace('_', '-')}, or start a new run in "
                    "another --run-dir)"
                )
        changes = {name: getattr(config, name) for name in RESUME_MAY_CHANGE}
        if given is not None and "epochs" not in given:
            changes["epochs"] = original.epochs
        resumed = original.replace(**changes)
        done = epochs_done(run_dir)
        if resumed.epochs < done:
            raise InputError(
                f"--epochs {resumed.epochs} is fewer than the {done} epochs {run_dir} has "
                "run: a resume can only add epochs"
            )
        return resumed
    if (run_dir / "checkpoints").exists() or (run_dir / "members").exists():
        raise InputError(f"{run_dir} already holds a run: use --resume, or another --run-dir")
    check_creatable(run_dir, "--run-dir")
    return config


def epochs_done(run_dir: Path) -> int:
    """The most epochs in a latest checkpoint of the run or of its ensemble's members."""
    done = 0
    for directory in [run_dir / "checkpoints", *run_dir.glob("members/*/checkpoints")]:
        latest = tf.train.latest_checkpoint(str(directory))
        if latest is not None:
            epoch = tf.train.load_variable(latest, "epoch/.ATTRIBUTES/VARIABLE_VALUE")
            done = max(done, int(epoch))
    return done


def train(config: TrainConfig, resume: bool = False, quiet: bool = False, given=None) -> dict:
    """Train per `config`; returns the summary that is also written to summary.json. `given`:
    the settings the user named, checked against the run's own on `resume` (`resolve_run`)."""
    import keras

    from engine.training.backtest import default_horizon
    from engine.training.intervals import calibrate
    from engine.training.plots import plot_losses

    # --- setup -------------------------------------------------------------------
    config = resolve_config(resolve_run(config, resume, given)).validate()
    if config.ensemble > 1:  # N runs of this function, then the mean of their forecasts
        from engine.training.ensemble import train_ensemble

        return train_ensemble(config, resume, quiet)
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
    # The best epoch is picked on the selection slice, never on the validation part: the
    # latest epoch whose selection MAE is within one standard error of the lowest so far
    # (a difference smaller than the slice's own noise picks nothing; the schedule was made
    # to end at the last epoch). Without a slice (--selection-fraction 0): the last epoch.
    lowest_selection_mae = tf.Variable(math.inf, dtype=tf.float64, name="lowest_selection_mae")
    lowest_selection_se = tf.Variable(0.0, dtype=tf.float64, name="lowest_selection_se")
    best_epoch = tf.Variable(0, dtype=tf.int64, name="best_epoch")
    checkpoint = tf.train.Checkpoint(
        model=model,
        optimizer=optimizer,
        epoch=epoch,
        lowest_selection_mae=lowest_selection_mae,
        lowest_selection_se=lowest_selection_se,
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
    history = read_metrics(run_dir / "metrics.jsonl", int(epoch.numpy()))
    metrics_path.write_text("".join(json.dumps(entry) + "\n" for entry in history))
    writer = tf.summary.create_file_writer(str(out.path / "tensorboard"))
    replicas = strategy.num_replicas_in_sync
    progress.line(
        f"training {config.model} ({config.cells} cells, {model.count_params()} weights) on "
        f"{data.description}: {data.selection} training, {data.split - data.selection} "
        f"selection, {len(data.valid_targets)} validation points"
        + (f", {replicas} replicas ({config.strategy})" if config.strategy != "default" else "")
    )
    progress.line(f"{config.period_source}; model {config.model_source}")
    if out.temporary:
        progress.line(f"not the chief: this worker writes to {out.path}, removed at the end")

    started = time.perf_counter()
    stop_reason = "completed all epochs"
    while int(epoch.numpy()) < config.epochs:
        # --- one epoch of steps --------------------------------------------------
        current = int(epoch.numpy()) + 1
        epoch_started = time.perf_counter()
        lr = current_lr(optimizer)
        train_loss, skipped = run_epoch(
            train_step, strategy, data, config, current, progress, config.epochs
        )

        # --- evaluate (the selection slice picks, the validation part is reported) ---
        selection = selection_errors(predict, data)
        forecast = predict_in_batches(predict, data.valid_windows)
        val = forecast_errors(data.valid_targets, forecast)
        val_loss = float(loss_fn(data.valid_targets[:, None], forecast[:, None]))
        entry = {
            "epoch": current,
            "loss": train_loss,
            "val_loss": val_loss,
            "val_mae": val["mae"],
            "val_mse": val["mse"],
            "selection_mae": _json_number(selection["mae"]),
            "selection_mae_se": _json_number(selection["mae_se"]),
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
            for key in ("loss", "val_loss", "val_mae", "selection_mae", "lr"):
                if entry[key] is not None:
                    tf.summary.scalar(key, entry[key])
        progress.line(
            f"epoch {current}/{config.epochs}  loss {figure(train_loss)}  selection_mae "
            f"{figure(selection['mae'])}  val_mae {figure(val['mae'])}  lr {lr:.2e}  "
            f"{entry['seconds']:.1f}s"
        )

        # --- checkpoint and early stopping ----------------------------------------
        if selection["mae"] < float(lowest_selection_mae.numpy()):
            lowest_selection_mae.assign(selection["mae"])
            lowest_selection_se.assign(selection["mae_se"])
        threshold = float(lowest_selection_mae.numpy() + lowest_selection_se.numpy())
        if math.isnan(selection["mae"]) or selection["mae"] <= threshold:
            best_epoch.assign(current)
            best_manager.save(checkpoint_number=current)  # before the main checkpoint
        epoch.assign(current)
        manager.save(checkpoint_number=current)
        if config.patience and current - int(best_epoch.numpy()) >= config.patience:
            stop_reason = (
                f"early stop: {config.patience} epochs without a selection MAE within one "
                "standard error of the lowest"
            )
            break

    # --- finish: best weights, the band, the refit, model, summary, plots ---------------
    if best_manager.latest_checkpoint:
        tf.train.Checkpoint(model=model).restore(best_manager.latest_checkpoint).expect_partial()
    selection = selection_errors(predict, data)  # of the model that never saw the slice
    # The band the exported `forecast` returns: this model's errors on the selection slice.
    calibration, band_note = calibrate(
        lambda windows: predict_in_batches(predict, windows),
        data,
        config.window_size,
        config.interval_horizon or default_horizon(data.period),
    )
    refitted = None
    if config.refit and data.selection < data.split:
        refit_started = time.perf_counter()
        # Kept beside the refit: an ensemble calibrates its mean's band on these models.
        model.save(out.path / SELECTED_MODEL_FILE)
        model, predict = refit(config, data, strategy, loss_fn, int(best_epoch.numpy()), progress)
        refitted = {
            "epochs": int(best_epoch.numpy()),
            "points": data.split,
            "seconds": time.perf_counter() - refit_started,
        }
    facts = {
        "epochs_run": int(epoch.numpy()),
        "best_epoch": int(best_epoch.numpy()),
        "refit": refitted,
        "seconds": sum(entry["seconds"] for entry in history)
        + (refitted["seconds"] if refitted else 0.0),
        "stop_reason": stop_reason,
        "replicas": replicas,
    }
    summary, backtest_note = finish_run(
        model, predict, config, data, out.path, selection, calibration, facts
    )
    plot_losses(history, out.path / "plots" / "loss.png")
    picked_by = (
        f"by selection MAE {figure(selection['mae'])}"
        if data.selection < data.split
        else "the last: no selection slice"
    )
    progress.line(
        f"done in {time.perf_counter() - started:.1f}s ({stop_reason}); best epoch "
        f"{summary['best_epoch']} ({picked_by})"
        + (f", refit on all {data.split} training points" if refitted else "")
        + f": validation MAE {figure(summary['val_mae'])} "
        f"(naive {figure(summary['baselines']['naive']['mae'])})"
    )
    progress.line(band_note)
    progress.line(backtest_note)
    out.cleanup()  # a worker's temporary copy; never the run dir
    return summary


def finish_run(model, predict, config, data, out_path: Path, selection, calibration, facts):
    """What every run ends with, for its final model (one, refitted, or an ensemble's mean):
    model.keras, the validation figures, calibration.json, the backtest, summary.json and
    plots/forecast.png. `facts` are the summary's keys about how the model was trained.
    Returns `(summary, the backtest's one-line note)`."""
    from engine.series.baselines import compute_baselines
    from engine.training.backtest import HorizonTooLong, backtest_model, summary_line
    from engine.training.intervals import CALIBRATION_FILE
    from engine.training.plots import plot_forecast

    model.save(out_path / "model.keras")
    forecast = predict_in_batches(predict, data.valid_windows)
    val = forecast_errors(data.valid_targets, forecast)
    summary = {
        "val_mae": val["mae"],
        "val_mse": val["mse"],
        "selection_mae": _json_number(selection["mae"]),
        "selection_points": int(len(data.selection_targets)),
        **facts,
        "weights": int(model.count_params()),
        "data": data.description,
        "period": config.period or None,
        "period_source": config.period_source,
        "baselines": compute_baselines(data.series, data.split, data.period),
        "config": config.as_dict(),
    }
    if calibration is not None:
        _write_json(out_path / CALIBRATION_FILE, calibration)
        summary["calibration"] = {k: v for k, v in calibration.items() if k != "residuals"}
    else:
        (out_path / CALIBRATION_FILE).unlink(missing_ok=True)  # a resumed run's old one
        summary["calibration"] = None
    try:  # the multi-step figure the served `forecast` signature gives, on the same part
        summary["backtest"] = backtest_model(
            model, data, config.window_size, run_dir=out_path, calibration=calibration
        )
        backtest_note = summary_line(summary["backtest"])
    except HorizonTooLong as error:  # a validation part shorter than the default horizon
        summary["backtest"] = None
        backtest_note = (
            f"no backtest: the validation part has {error.valid_length} points, fewer than "
            f"the horizon of {error.horizon}"
        )
        if error.valid_length:
            backtest_note += f" (engine backtest {out_path} --horizon {error.valid_length} or less)"
    _write_json(out_path / "summary.json", summary)
    valid_time = np.arange(data.split, data.split + len(forecast))
    plot_forecast(
        valid_time,
        data.valid_targets,
        forecast,
        out_path / "plots" / "forecast.png",
        f"{config.model}: validation MAE {figure(val['mae'], 3)}",
    )
    return summary, backtest_note
