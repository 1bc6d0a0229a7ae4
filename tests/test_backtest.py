"""`engine backtest`: rolling-origin figures against a slow step-by-step reference, the
baselines on hand-made series, the MASE scale, the command line and its bad input."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from cli_runner import engine_in_process, run_engine

from engine.errors import InputError
from engine.training.backtest import (
    backtest,
    backtest_run,
    baseline_paths,
    default_horizon,
    default_stride,
    rolling_model_forecasts,
    summary_line,
)

PERIOD = 12
SERIES_LENGTH = 240  # split 0.7: 168 training, 72 validation points
WINDOW = 8


def wavy_series(length: int = SERIES_LENGTH, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    time = np.arange(length)
    return 50 + 0.05 * time + 10 * np.sin(2 * np.pi * time / PERIOD) + rng.normal(0, 1, length)


def linear_predict_next(windows: np.ndarray) -> np.ndarray:
    """A fixed linear model of the window, float32 as a served model computes."""
    weights = np.linspace(0.02, 0.2, windows.shape[1]).astype("float32")
    weights /= weights.sum() * np.float32(1.01)
    return windows.astype("float32") @ weights + np.float32(0.4)


def reference_figures(predict_next, series, split, window_size, horizon, stride, period):
    """The backtest written out slowly: per origin, per step, one window at a time."""
    series = [float(value) for value in series]
    lag = period or 1
    train = series[:split]
    in_sample = [abs(train[i] - train[i - lag]) for i in range(lag, len(train))]
    scale = sum(in_sample) / len(in_sample)
    names = ["model", "naive", "seasonal_naive", "drift"] if period else ["model", "naive", "drift"]
    errors = {name: [[] for _ in range(horizon)] for name in names}  # [step][origin]
    origin = split
    while origin + horizon <= len(series):
        history = series[:origin]
        window = [np.float32(value) for value in history[-window_size:]]
        for step in range(1, horizon + 1):
            row = np.array([window], dtype="float32")
            next_value = np.float32(np.asarray(predict_next(row)).reshape(-1)[0])
            window = window[1:] + [next_value]
            guesses = {"model": float(next_value), "naive": history[-1]}
            if period:
                target = origin + step - 1
                back = target - period
                while back >= origin:
                    back -= period
                guesses["seasonal_naive"] = history[back]
            slope = (history[-1] - history[0]) / (len(history) - 1)
            guesses["drift"] = history[-1] + step * slope
            for name in names:
                errors[name][step - 1].append((series[origin + step - 1], guesses[name]))
        origin += stride
    result = {}
    for name in names:
        per_step = {"mae": [], "rmse": [], "mase": [], "smape": []}
        for pairs in errors[name]:
            absolute = [abs(truth - guess) for truth, guess in pairs]
            per_step["mae"].append(sum(absolute) / len(pairs))
            per_step["rmse"].append(math.sqrt(sum(a * a for a in absolute) / len(pairs)))
            per_step["mase"].append(per_step["mae"][-1] / scale)
            ratios = []
            for truth, guess in pairs:
                size = abs(truth) + abs(guess)
                ratios.append(200 * abs(truth - guess) / size if size else 0.0)
            per_step["smape"].append(sum(ratios) / len(ratios))
        result[name] = per_step
    return result, scale


def assert_matches_reference(result, predict_next, series, split, horizon, stride, period):
    reference, scale = reference_figures(
        predict_next, series, split, WINDOW, horizon, stride, period
    )
    assert result["mase_scale"] == pytest.approx(scale, rel=1e-12)
    assert set(result["forecasts"]) == set(reference)
    for name, figures in reference.items():
        for key, values in figures.items():
            got = result["forecasts"][name][key]
            assert got == pytest.approx(values, rel=1e-6), (name, key)
            assert result["forecasts"][name]["mean"][key] == pytest.approx(
                sum(values) / len(values), rel=1e-6
            )


@pytest.mark.parametrize(("horizon", "stride", "period"), [(10, 3, PERIOD), (30, 1, None)])
def test_figures_equal_a_slow_reference(horizon, stride, period):
    series = wavy_series()
    split = 168
    result = backtest(linear_predict_next, series, split, WINDOW, horizon, stride, period)
    origins = list(range(split, len(series) - horizon + 1, stride))
    assert (result["origins"], result["first_origin"], result["last_origin"]) == (
        len(origins), origins[0], origins[-1]
    )  # fmt: skip
    assert (result["horizon"], result["stride"], result["period"]) == (horizon, stride, period)
    assert_matches_reference(result, linear_predict_next, series, split, horizon, stride, period)
    json.dumps(result, allow_nan=False)


def test_baselines_on_a_hand_made_series():
    series = np.array([1.0, 3.0, 2.0, 5.0, 4.0, 7.0, 6.0, 9.0])
    origins = np.array([4, 6])
    paths = baseline_paths(series, origins, horizon=3, period=2)
    # naive: the last value of the history, repeated
    np.testing.assert_array_equal(paths["naive"], [[5, 5, 5], [7, 7, 7]])
    # seasonal naive, period 2: the latest value a whole number of periods before each target
    np.testing.assert_array_equal(paths["seasonal_naive"], [[2, 5, 2], [4, 7, 4]])
    # drift through (0, 1) and (3, 5): slope 4/3; through (0, 1) and (5, 7): slope 6/5
    np.testing.assert_allclose(paths["drift"], [[5 + 4 / 3, 5 + 8 / 3, 9], [8.2, 9.4, 10.6]])
    assert "seasonal_naive" not in baseline_paths(series, origins, 3, period=5)
    assert "seasonal_naive" not in baseline_paths(series, origins, 3, period=None)


def test_mase_scale_is_the_training_parts_seasonal_naive_mae():
    series = wavy_series()
    train = series[:168]
    result = backtest(linear_predict_next, series, 168, WINDOW, 6, 4, PERIOD)
    scale = np.mean(np.abs(train[PERIOD:] - train[:-PERIOD]))
    assert result["mase_scale"] == pytest.approx(scale, rel=1e-12)
    model = result["forecasts"]["model"]
    assert model["mase"] == pytest.approx([mae / scale for mae in model["mae"]], rel=1e-12)
    lag_one = backtest(linear_predict_next, series, 168, WINDOW, 6, 4, None)["mase_scale"]
    assert lag_one == pytest.approx(np.mean(np.abs(np.diff(train))), rel=1e-12)


def test_bad_horizon_and_stride():
    series = wavy_series()
    with pytest.raises(InputError, match="needs at least 73"):
        backtest(linear_predict_next, series, 168, WINDOW, 73)
    for horizon, stride in ((0, 1), (5, 0)):
        with pytest.raises(InputError, match="at least 1"):
            backtest(linear_predict_next, series, 168, WINDOW, horizon, stride)
    # exactly the validation part's length is one origin
    assert backtest(linear_predict_next, series, 168, WINDOW, 72)["origins"] == 1


def test_defaults():
    assert default_horizon(None) == 30
    assert default_horizon(12) == 12
    assert default_horizon(365) == 30
    assert default_stride(461, 30) == 1
    assert default_stride(2000, 30) == 4  # 1971 origins at stride 1 -> 493 at stride 4


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One real run: a tiny RNN trained for one epoch on a short seasonal CSV (`engine
    train` in this process: TensorFlow is imported here already)."""
    from engine.cli import main

    root = tmp_path_factory.mktemp("backtest")
    csv = root / "wavy.csv"
    csv.write_text("value\n" + "\n".join(f"{value:.6f}" for value in wavy_series()) + "\n")
    run_dir = root / "run"
    main([
        "train", "--model", "rnn", "--epochs", "1", "--window-size", str(WINDOW),
        "--units", "4", "--data", str(csv), "--period", str(PERIOD),
        "--run-dir", str(run_dir), "--quiet",
    ])  # fmt: skip
    return run_dir


def test_a_trained_run_matches_the_reference(tiny_run):
    from engine.training.prepare import prepare_data
    from engine.training.runs import load_run
    from engine.training.step import make_predict, predict_in_batches

    result = backtest_run(tiny_run, horizon=9, stride=5)
    run = load_run(tiny_run, for_export=False)
    data = prepare_data(run.config)
    predict = make_predict(run.model)

    def predict_next(windows):
        return predict_in_batches(predict, windows)

    assert result["period"] == PERIOD
    assert_matches_reference(result, predict_next, data.series, data.split, 9, 5, PERIOD)
    for name in ("errors", "origins"):
        assert Path(result["plots"][name]).stat().st_size > 1000
    assert summary_line(result).startswith("backtest (9 steps, 13 origins): MAE ")
    one = {**result, "horizon": 1, "origins": 1}
    assert summary_line(one).startswith("backtest (1 step, 1 origin): MAE ")

    # Horizon 1 from every origin is `engine evaluate`'s one-step validation forecast.
    from engine.training.evaluate import evaluate_run

    one_step = rolling_model_forecasts(
        predict_next, data.series, np.arange(data.split, len(data.series)), WINDOW, 1
    )
    np.testing.assert_allclose(
        one_step[:, 0], predict_in_batches(predict, data.valid_windows), rtol=1e-6
    )
    first = backtest_run(tiny_run, horizon=1, stride=1)["forecasts"]
    evaluated = evaluate_run(tiny_run)
    for name in set(first) & set(evaluated):  # evaluate knows only the series' own period
        assert first[name]["mae"][0] == pytest.approx(evaluated[name]["mae"], rel=1e-5), name


def test_command_json_and_table(tiny_run, capsys):
    result = run_engine("backtest", str(tiny_run), "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for key in ("horizon", "stride", "origins", "first_origin", "last_origin", "period",
                "mase_scale", "forecasts", "plots"):  # fmt: skip
        assert key in figures, key
    assert figures["horizon"] == PERIOD  # the run's period, at most 60
    assert list(figures["forecasts"]) == ["model", "naive", "seasonal_naive", "drift"]
    for forecast in figures["forecasts"].values():
        assert len(forecast["mae"]) == len(forecast["smape"]) == PERIOD
        assert set(forecast["mean"]) == {"mae", "rmse", "mase", "smape"}
    assert (tiny_run / "plots" / "backtest.png").is_file()
    assert (tiny_run / "plots" / "backtest_origins.png").is_file()

    status, out, err = engine_in_process(
        capsys, "backtest", str(tiny_run), "--horizon", "20", "--stride", "7"
    )
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("8 origins 168..217 (stride 7), horizon 20")
    assert lines[1].split() == ["model", "naive", "seasonal_naive", "drift"]
    assert [line.split()[0] for line in lines[3:9]] == ["1", "2", "5", "10", "20", "mean"]
    # The run is calibrated: the band's table follows. Its 17-point selection slice leaves
    # the 10 origins a calibration needs for 8 steps of the run's 12.
    assert lines[9].startswith("90% band (calibrated for 8 steps")
    assert [line.split()[0] for line in lines[11:-1]] == ["1", "2", "5", "10", "20", "mean"]
    assert lines[-1].startswith("plots: ")


def test_command_bad_input(tiny_run, tmp_path, capsys):
    for args, message in (
        (["--horizon", "73"], "needs at least 73"),
        (["--stride", "0"], "'--stride': 0 is not in the range"),
    ):
        status, out, err = engine_in_process(capsys, "backtest", str(tiny_run), *args)
        assert (status, out, err.count("\n")) == (2, "", 1), err
        assert message in err
    status, _, err = engine_in_process(capsys, "backtest", str(tmp_path))
    assert (status, err.count("\n")) == (2, 1) and "no trained model" in err, err


def test_a_run_too_short_for_the_default_horizon_says_which_command_gives_one(tmp_path, capsys):
    csv = tmp_path / "short.csv"  # split 0.8: 20 validation points, the horizon 30
    csv.write_text("value\n" + "\n".join(f"{v:.6f}" for v in wavy_series()[:100]) + "\n")
    run_dir = tmp_path / "run"
    status, out, err = engine_in_process(
        capsys, "train", "--model", "rnn", "--epochs", "1", "--window-size", "10",
        "--units", "4", "--data", str(csv), "--split", "0.8", "--period", "0",
        "--run-dir", str(run_dir),
    )  # fmt: skip
    assert status == 0, err
    command = f"engine backtest {run_dir} --horizon 20"
    note = "no backtest: the validation part has 20 points, fewer than the horizon of 30"
    assert f"{note} ({command} or less)" in out
    assert json.loads((run_dir / "summary.json").read_text())["backtest"] is None
    status, out, err = engine_in_process(capsys, *command.split()[1:])
    assert status == 0 and "horizon 20" in out, err
