"""Honest selection: the best epoch is picked on a slice at the end of the training part,
never on the validation part, and bad series are refused before anything is written."""

import json

import numpy as np
import pytest
from cli_runner import engine_in_process

from engine.errors import InputError
from engine.series.course import course_series
from engine.training.config import TrainConfig
from engine.training.prepare import prepare_data, resolve_config
from engine.training.train import train


def test_the_selection_slice_never_overlaps_the_reported_part():
    config = resolve_config(TrainConfig(model="rnn"))
    data = prepare_data(config)
    _, series = course_series()
    window = config.window_size
    assert (data.selection, data.split, len(data.series)) == (900, 1000, 1461)
    # Fitted on targets before the slice; selected on the slice; reported after the split.
    fitted_targets = np.arange(window, data.selection)
    selection_targets = np.arange(data.selection, data.split)
    valid_targets = np.arange(data.split, len(series))
    assert len(data.train) == data.selection and data.train_pairs == len(fitted_targets)
    np.testing.assert_array_equal(
        data.selection_targets, series[selection_targets].astype("float32")
    )
    np.testing.assert_array_equal(data.valid_targets, series[valid_targets].astype("float32"))
    assert not set(fitted_targets) & set(selection_targets)
    assert not set(selection_targets) & set(valid_targets)
    # Each window holds the values just before its target, never the target itself.
    first = data.selection_windows[0]
    np.testing.assert_array_equal(
        first, series[data.selection - window : data.selection].astype("float32")
    )


def test_period_0_means_no_season_even_for_the_course_series():
    """Baselines, backtests and MASE follow the run's period, not the series' own."""
    config = resolve_config(TrainConfig(model="rnn", period=0))
    assert config.period == 0 and prepare_data(config).period is None
    assert prepare_data(resolve_config(TrainConfig(model="rnn"))).period == 365


def test_without_a_slice_the_last_epoch_is_kept(tmp_path):
    config = TrainConfig(model="rnn", units=4, layers=1, epochs=2, selection_fraction=0.0)
    summary = train(config.replace(run_dir=str(tmp_path / "run")), quiet=True)
    assert summary["best_epoch"] == 2 and summary["selection_mae"] is None
    with pytest.raises(InputError, match="--patience needs a selection slice"):
        TrainConfig(selection_fraction=0.0, patience=3).validate()
    with pytest.raises(InputError, match=r"--selection-fraction must be in \[0, 0.5\)"):
        TrainConfig(selection_fraction=0.5).validate()


def write(tmp_path, lines, name="series.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize(
    "lines, extra, fragment",
    [
        (
            ["value", *map(str, range(30))],
            ["--model", "rnn"],
            "the series needs at least 33 points",
        ),
        (["value", *["5"] * 300], ["--model", "rnn"], "is constant (every value is 5)"),
        (
            ["date,value", "2020-01-01,1", "2020-01-02,2", "2020-01-05,3", "2020-01-06,4"],
            ["--date-column", "date"],
            "3 days apart where the series steps 1 day",
        ),
        (
            ["date,value", "2020-01-01,1", "2020-01-01,2", "2020-01-02,3"],
            ["--date-column", "date"],
            "both hold the date 2020-01-01",
        ),
    ],
)
def test_bad_series_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, lines, extra, fragment):
    run_dir = tmp_path / "run"
    status, _, err = engine_in_process(
        capsys, "train", "--data", write(tmp_path, lines), *extra, "--run-dir", str(run_dir)
    )
    assert status == 2, err
    assert fragment in err
    assert len(err.strip().splitlines()) == 1
    assert not run_dir.exists()


def test_the_named_minimum_length_is_enough(tmp_path, capsys):
    """The length the too-short error names trains."""
    short = write(tmp_path, ["value", *map(str, range(29))])
    _, _, err = engine_in_process(capsys, "train", "--data", short, "--model", "rnn")
    minimum = int(err.split("needs at least ")[1].split()[0])
    values = [str(np.sin(i / 3)) for i in range(minimum)]
    path = write(tmp_path, ["value", *values], "enough.csv")
    status, out, err = engine_in_process(
        capsys, "train", "--data", path, "--model", "rnn", "--units", "4", "--epochs", "1",
        "--run-dir", str(tmp_path / "run"), "--json",
    )  # fmt: skip
    assert status == 0, err
    assert json.loads(out)["selection_points"] >= 1


def test_the_refit_is_the_run_on_the_whole_training_part(tmp_path):
    """The refit is exactly a run with no slice (same seed, initial weights, schedule and
    data order) when the slice picked the last epoch; the band's residuals are the first
    model's, the same with or without the refit, while the saved model is the refit's."""
    small = TrainConfig(model="rnn", units=4, layers=1, epochs=2)
    refitted = train(small.replace(refit=True, run_dir=str(tmp_path / "refit")), quiet=True)
    assert refitted["best_epoch"] == 2  # the case the equality is about
    assert refitted["refit"]["epochs"] == 2 and refitted["refit"]["points"] == 1000
    whole = train(
        small.replace(selection_fraction=0.0, run_dir=str(tmp_path / "whole")), quiet=True
    )
    assert whole["refit"] is None  # nothing held out, nothing to refit
    assert refitted["val_mae"] == whole["val_mae"]
    held_out = train(small.replace(run_dir=str(tmp_path / "held")), quiet=True)  # the default
    assert held_out["refit"] is None and held_out["val_mae"] != refitted["val_mae"]
    assert held_out["selection_mae"] == refitted["selection_mae"]
    residuals = [
        json.loads((tmp_path / name / "calibration.json").read_text())["residuals"]
        for name in ("refit", "held")
    ]
    assert residuals[0] == residuals[1]
    # Killed after its last epoch's checkpoint, a run resumes by refitting to the same model.
    (tmp_path / "refit" / "model.keras").unlink()
    resumed = train(small.replace(run_dir=str(tmp_path / "refit")), resume=True, quiet=True)
    assert resumed["val_mae"] == refitted["val_mae"] and resumed["refit"] == {
        **refitted["refit"],
        "seconds": resumed["refit"]["seconds"],
    }
