"""`engine train` end to end: the run dir, repeatability, early stopping, resume after
SIGKILL, divergence, the LR finder and evaluation."""

import json
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from cli_runner import engine_in_process, run_engine

from engine.errors import InputError
from engine.series.course import course_series
from engine.training.config import TrainConfig, load_config
from engine.training.prepare import resolve_config
from engine.training.train import train

SMALL = dict(model="rnn", units=8, layers=1, window_size=20)
SMALL_FLAGS = ["--model", "rnn", "--units", "8", "--layers", "1", "--quiet"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "small"
    summary = train(TrainConfig(**SMALL, epochs=3, run_dir=str(run_dir)), quiet=True)
    return run_dir, summary


def test_run_dir_holds_everything(finished_run):
    run_dir, summary = finished_run
    for name in ("config.toml", "metrics.jsonl", "summary.json", "model.keras"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "plots" / "loss.png").stat().st_size > 1000
    assert (run_dir / "plots" / "forecast.png").stat().st_size > 1000
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert list((run_dir / "checkpoints").glob("ckpt-3.index"))
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    for key in ("epoch", "loss", "val_loss", "val_mae", "lr", "seconds", "steps"):
        assert key in metrics[0]
    for key in ("val_mae", "val_mse", "epochs_run", "best_epoch", "seconds", "baselines", "config"):
        assert key in summary
    assert summary == json.loads((run_dir / "summary.json").read_text())
    # Best weights are restored: the final figure is the best epoch's, and the best epoch is
    # chosen on the selection slice alone: the latest one within one standard error of the
    # lowest selection MAE so far (the validation part plays no part).
    best_epoch, lowest, lowest_se = 0, float("inf"), 0.0
    for m in metrics:
        if m["selection_mae"] < lowest:
            lowest, lowest_se = m["selection_mae"], m["selection_mae_se"]
        if m["selection_mae"] <= lowest + lowest_se:
            best_epoch = m["epoch"]
    best = metrics[best_epoch - 1]
    assert summary["best_epoch"] == best_epoch
    assert summary["val_mae"] == pytest.approx(best["val_mae"], rel=1e-6)
    assert summary["selection_mae"] == pytest.approx(best["selection_mae"], rel=1e-6)
    # The run records the resolved settings (the model's defaults filled in).
    written = load_config(run_dir / "config.toml")
    assert written == resolve_config(TrainConfig(**SMALL, epochs=3, run_dir=str(run_dir)))
    assert (written.anchor, written.units, written.layers) == ("last", 8, 1)


def test_same_seed_same_figures(finished_run, tmp_path):
    _, first = finished_run
    again = train(TrainConfig(**SMALL, epochs=3, run_dir=str(tmp_path / "again")), quiet=True)
    assert again["val_mae"] == first["val_mae"]


def test_early_stopping_restores_the_best_epoch(tmp_path):
    config = TrainConfig(**SMALL, epochs=12, patience=1, lr=0.05, lr_schedule="constant")
    summary = train(config.replace(run_dir=str(tmp_path / "early")), quiet=True)
    metrics = [json.loads(line) for line in (tmp_path / "early" / "metrics.jsonl").open()]
    assert summary["epochs_run"] == len(metrics)
    assert summary["epochs_run"] < 12, "a rate of 0.05 should stop improving well before 12 epochs"
    assert summary["epochs_run"] - summary["best_epoch"] == 1
    assert summary["val_mae"] == pytest.approx(min(m["val_mae"] for m in metrics), rel=1e-6)


def test_refuses_to_overwrite_a_run(finished_run):
    run_dir, _ = finished_run
    with pytest.raises(InputError, match="already holds a run"):
        train(TrainConfig(**SMALL, epochs=1, run_dir=str(run_dir)), quiet=True)


def train_until(run_dir, epochs: str, checkpoint_file: str, **popen) -> subprocess.Popen:
    """`engine train` of the small model in a subprocess, once `checkpoint_file` is written."""
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "train", *SMALL_FLAGS, "--epochs", epochs,
         "--run-dir", str(run_dir)],
        stdout=subprocess.DEVNULL,
        # A shell's background jobs ignore SIGINT; a terminal's Ctrl-C does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **popen,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while not (run_dir / "checkpoints" / checkpoint_file).exists():
        assert process.poll() is None, "the run ended before the signal"
        assert time.monotonic() < deadline, "no checkpoint appeared in time"
        time.sleep(0.05)
    return process


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    epochs = "5"
    whole = run_engine(
        "train", *SMALL_FLAGS, "--epochs", epochs, "--run-dir", str(tmp_path / "whole")
    )
    assert whole.returncode == 0, whole.stderr

    killed_dir = tmp_path / "killed"
    process = train_until(killed_dir, epochs, "ckpt-2.index", stderr=subprocess.DEVNULL)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (killed_dir / "model.keras").exists(), "killed too late to test a resume"

    # As the docs have it: no flag but the run dir (the epochs are the run's own 5, not 60).
    resumed = run_engine("train", "--resume", "--run-dir", str(killed_dir))
    assert resumed.returncode == 0, resumed.stderr

    import cells  # noqa: F401 - registers our layers
    import engine.model.scaling  # noqa: F401

    for a, b in zip(
        keras.saving.load_model(tmp_path / "whole" / "model.keras").get_weights(),
        keras.saving.load_model(killed_dir / "model.keras").get_weights(),
    ):
        np.testing.assert_array_equal(a, b)
    metrics = [json.loads(line) for line in (killed_dir / "metrics.jsonl").open()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4, 5]


def test_ctrl_c_exits_130_and_says_how_to_resume(tmp_path):
    run_dir = tmp_path / "interrupted"
    process = train_until(run_dir, "500", "checkpoint", stderr=subprocess.PIPE, text=True)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    # Once "engine: aborted" and exit 1, as for a failed run.
    assert process.returncode == 130
    assert err.strip() == (
        "engine: interrupted; to go on from the last finished epoch: engine train --resume "
        f"--run-dir {run_dir}"
    )


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--model", "gru"], 'was trained with model = "rnn", not "gru": --resume continues'),
        (["--seed", "7"], "was trained with seed = 42, not 7"),
        (["--epochs", "2"], "--epochs 2 is fewer than the 3 epochs"),
    ],
)
def test_resume_refuses_settings_it_would_not_keep(finished_run, capsys, flags, fragment):
    # Once `--resume --model gru` resumed the rnn without a word.
    run_dir, _ = finished_run
    before = {path: path.read_bytes() for path in run_dir.glob("*") if path.is_file()}
    status, out, err = engine_in_process(
        capsys, "train", "--resume", *flags, "--run-dir", str(run_dir)
    )
    assert (status, out) == (2, "")
    assert fragment in err
    assert len(err.strip().splitlines()) == 1
    assert {path: path.read_bytes() for path in run_dir.glob("*") if path.is_file()} == before


def test_divergence_exits_1_with_one_line(tmp_path):
    run_dir = tmp_path / "diverge"
    result = run_engine(
        "train", *SMALL_FLAGS, "--epochs", "3", "--optimizer", "sgd", "--lr", "1e12",
        "--loss", "mse", "--lr-schedule", "constant", "--run-dir", str(run_dir),
    )  # fmt: skip
    assert result.returncode == 1
    assert "diverged" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list((run_dir / "checkpoints").glob("ckpt-*.index")), "a bad epoch was checkpointed"


def test_lr_find_json_and_plot(tmp_path):
    result = run_engine(
        "lr-find", *SMALL_FLAGS, "--steps", "60", "--min-lr", "1e-6", "--max-lr", "10",
        "--run-dir", str(tmp_path), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    sweep = json.loads(result.stdout)
    assert len(sweep["lrs"]) == len(sweep["losses"]) >= 10
    assert sweep["lrs"] == sorted(sweep["lrs"])
    assert sweep["lrs"][0] <= sweep["suggested_lr"] <= sweep["lrs"][-1]
    assert (tmp_path / "plots" / "lr_find.png").is_file()


def test_evaluate_json(finished_run):
    run_dir, summary = finished_run
    result = run_engine("evaluate", str(run_dir), "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures["model"]) >= {"mae", "mse", "rmse", "mase"}
    assert figures["model"]["mae"] == pytest.approx(summary["val_mae"], rel=1e-5)
    assert figures["naive"]["mae"] == pytest.approx(5.937908, abs=1e-4)


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--clip-norm", "1", "--clip-value", "1"], "at most one of"),
        (["--clip-global-norm", "0"], "--clip-global-norm must be positive, not 0.0"),
        (["--refit", "--selection-fraction", "0"], "--refit needs a selection slice"),
        (["--model", "transformer"], "--model must be one of"),
        (["--precision", "float8"], "--precision must be one of"),
        (["--window-size", "0"], "--window-size must be at least 1"),
        (["--config", "absent.toml"], "no such config file"),
    ],
)
def test_bad_train_flags_exit_2(tmp_path, capsys, flags, fragment):
    # In this process (the console entry point, as a user runs it): a subprocess per case
    # would only add TensorFlow's start-up. test_csv_too_short_for_one_window_exits_2 runs
    # the same path in a fresh process.
    status, out, err = engine_in_process(capsys, "train", *flags, "--run-dir", str(tmp_path / "b"))
    assert (status, out) == (2, "")
    assert fragment in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("command", ["train", "lr-find"])
def test_a_run_dir_under_a_file_is_refused_before_any_work(tmp_path, capsys, command):
    # Once an internal NotADirectoryError (exit 1) when the plots folder was made.
    (tmp_path / "a-file").write_text("")
    run_dir = tmp_path / "a-file" / "run"
    status, out, err = engine_in_process(capsys, command, *SMALL_FLAGS, "--run-dir", str(run_dir))
    assert (status, out) == (2, "")
    assert err.strip() == (
        f"engine: error: --run-dir {run_dir}: {tmp_path / 'a-file'} is a file, not a directory"
    )


@pytest.mark.parametrize("command", [["evaluate"], ["backtest"], ["export", "--quiet"]])
def test_a_damaged_model_file_is_bad_input(finished_run, tmp_path, capsys, command):
    # Once an internal error, Keras's ValueError ("File not found") for a file it could not read.
    run_dir, _ = finished_run
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "config.toml").write_text((run_dir / "config.toml").read_text())
    (damaged / "model.keras").write_text("not a zip file")
    extra = ["--model-base-path", str(tmp_path / "models")] if command[0] == "export" else []
    status, out, err = engine_in_process(capsys, *command, str(damaged), *extra)
    assert (status, out) == (2, "")
    assert f"{damaged / 'model.keras'}: not a readable Keras model" in err
    assert len(err.strip().splitlines()) == 1


def test_config_file_then_flags(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('model = "gru"\nepochs = 7\nlr = 0.01\n')
    config = load_config(path).replace(epochs=9)
    assert (config.model, config.epochs, config.lr) == ("gru", 9, 0.01)
    path.write_text("no_such_key = 1\n")
    with pytest.raises(InputError, match="unknown setting"):
        load_config(path)


@pytest.mark.parametrize(
    "line, message",
    [
        ('lr = "fast"', 'lr must be a number, not "fast"'),
        ("epochs = 2.5", "epochs must be an integer, not 2.5"),
        ("epochs = true", "epochs must be an integer, not true"),
        ("fast = 1", "fast must be true or false, not 1"),
        ("model = 3", "model must be a string, not 3"),
        ("seed = [1]", "seed must be an integer, not [1]"),
    ],
)
def test_config_file_values_of_the_wrong_type_are_named(tmp_path, line, message):
    # Once these reached the loop and failed there as an internal TypeError.
    path = tmp_path / "run.toml"
    path.write_text(line + "\n")
    with pytest.raises(InputError, match=re.escape(f"{path}: {message}")):
        load_config(path)


def test_config_file_numbers_take_the_fields_types(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("lr = 1\nsplit = 0.8\nperiod = 0\n")
    config = load_config(path)
    assert (config.lr, config.split, config.period) == (1.0, "0.8", 0)
    assert isinstance(config.lr, float)


def test_default_model_is_seasonal_and_resolves_its_window():
    config = resolve_config(TrainConfig())
    assert (config.model, config.period, config.window_size) == ("seasonal-gru", 365, 384)
    with pytest.raises(InputError, match="--window-size of at least 384"):
        resolve_config(TrainConfig(window_size=100))


def test_a_csv_gets_its_period_inferred_and_a_seasonal_model_needs_one(tmp_path):
    path = tmp_path / "series.csv"
    path.write_text("value\n" + "\n".join(str(i % 7) for i in range(200)) + "\n")
    config = resolve_config(TrainConfig(data=str(path)))  # once the default needed --period
    assert (config.model, config.period, config.window_size) == ("seasonal-gru", 7, 26)
    assert "period 7 inferred from the autocorrelation" in config.period_source
    with pytest.raises(InputError, match="--period"):
        resolve_config(TrainConfig(data=str(path), model="seasonal-gru", period=0))
    assert resolve_config(TrainConfig(data=str(path), period=7)).window_size == 26
    no_season = resolve_config(TrainConfig(data=str(path), period=0))
    assert (no_season.model, no_season.window_size) == ("ar-gru", 30)
    assert "without a season" in no_season.model_source


def test_csv_too_short_for_one_window_exits_2(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("value\n" + "\n".join(str(i) for i in range(15)) + "\n")  # 10 to train on
    result = run_engine(
        "train", "--data", str(path), "--model", "rnn", "--run-dir", str(tmp_path / "r")
    )
    assert result.returncode == 2
    assert "too few rows for one window" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("loss", ["huber", "mae"])
def test_adam_trains_the_same_whatever_the_series_units(tmp_path, loss):
    """The same series in units 10,000 times smaller trains to the same forecasts, scaled.
    With Adam's epsilon a fixed 1e-7, a series moving by 1e-4 a step barely trained (its
    MASE three times the same series' in units)."""
    _, values = course_series()
    figures = []
    for units in (1.0, 1e-4):
        path = tmp_path / f"units{units}.csv"
        path.write_text("value\n" + "\n".join(repr(float(v) * units) for v in values[:700]) + "\n")
        config = TrainConfig(**SMALL, epochs=2, loss=loss, period=0, data=str(path), split="500")
        summary = train(config.replace(run_dir=str(tmp_path / f"run{units}")), quiet=True)
        figures.append(summary["val_mae"] / units)
    assert figures[1] == pytest.approx(figures[0], rel=1e-3)
