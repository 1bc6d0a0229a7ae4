"""The CLI's contract: help lists every command; bad input is one line and exit 2."""

import json

import numpy as np
import pytest
from cli_runner import engine_in_process, run_engine

COMMANDS = ["train", "lr-find", "evaluate", "baselines", "verify", "export", "serve", "forecast"]


def test_help_lists_every_command():
    result = run_engine("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


def test_baselines_json_has_the_course_figures():
    result = run_engine("baselines", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert abs(figures["naive"]["mae"] - 5.937908) < 1e-4
    assert abs(figures["moving_average"]["mae"] - 7.142419) < 1e-4
    assert {"mae", "mse"} <= set(figures["naive"])
    assert {"window", "mae", "mse"} <= set(figures["moving_average"])


def test_baselines_infer_the_period_as_train_does(tmp_path, capsys):
    days = np.datetime64("2020-01-01") + np.arange(140)
    weekly = 10 + 5 * np.sin(2 * np.pi * np.arange(140) / 7)
    path = tmp_path / "daily.csv"
    path.write_text("day,units\n" + "".join(f"{d},{v:.3f}\n" for d, v in zip(days, weekly)))
    status, out, err = engine_in_process(capsys, "baselines", "--data", str(path))
    assert status == 0, err
    assert "period 7 inferred from the date column's daily frequency" in out
    assert "seasonal_naive" in out
    status, out, err = engine_in_process(capsys, "baselines", "--data", str(path), "--period", "0")
    assert (status, "--period 0: no season" in out, "seasonal" in out) == (0, True, False)


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--period", "-2"], "--period must be 0 (no season) or a period of at least 2 steps"),
        (["--period", "1"], "--period 1 is no season"),  # once naive forecasts named seasonal
        (["--window", "0"], "'--window': 0 is not in the range x>=1"),
    ],
)
def test_baselines_refuse_what_train_refuses(capsys, flags, fragment):
    # A negative period was an internal error (arrays that could not be broadcast).
    status, out, err = engine_in_process(capsys, "baselines", *flags)
    assert (status, out) == (2, "")
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_baselines_say_when_the_period_is_too_long_for_seasonal_ones(capsys):
    status, out, _ = engine_in_process(capsys, "baselines", "--period", "5000")
    assert status == 0 and "seasonal" not in out.split("no seasonal baselines")[1]
    assert "no seasonal baselines: period 5000 is longer than the training part" in out


@pytest.mark.parametrize(
    "content, extra, fragment",
    [
        ("value\n1\n2\nhello\n4\n", [], "row 4"),
        ("value\n1\nnan\n3\n", [], "row 3"),
        ("value\n1\ninf\n3\n", [], "row 3"),
        ("value\n1\n2\n3\n", ["--column", "price"], "no column 'price'"),
    ],
)
def test_bad_csv_is_one_line_and_exit_2(tmp_path, content, extra, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = run_engine("baselines", "--data", str(path), *extra)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_too_few_rows_for_one_window_is_exit_2(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("value\n1\n2\n3\n4\n5\n")
    result = run_engine("baselines", "--data", str(path), "--window", "30")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_option_is_one_line_and_exit_2():
    result = run_engine("baselines", "--no-such-flag")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_lr_find_bad_rate_range_is_bad_input(capsys):
    status, out, err = engine_in_process(
        capsys, "lr-find", "--min-lr", "2", "--max-lr", "1", "--model", "rnn"
    )
    assert (status, out) == (2, ""), err
    assert "--min-lr must be positive and below --max-lr" in err
    assert len(err.strip().splitlines()) == 1


def test_config_validation_and_the_loop_import_neither_tensorflow_nor_click():
    """A config is plain data: checking one costs no TensorFlow import; the training loop is
    a library function and knows nothing of the command line."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from engine.errors import InputError\n"
        "from engine.training.config import TrainConfig\n"
        "TrainConfig(model='rnn', loss='mae').validate()\n"
        "try:\n"
        "    TrainConfig(loss='hinge').validate()\n"
        "except InputError as error:\n"
        "    assert '--loss must be one of huber, mse, mae' in str(error), error\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "import engine.training.train\n"
        "assert 'click' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
