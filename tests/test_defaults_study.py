"""benchmarks/defaults_study.py, without training: its data sets never hold the reported
points, a `{delta:X}` flag resolves as the engine scales Huber's delta, and its rule adopts a
candidate only when it is better on every data set."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import defaults_study  # noqa: E402

from engine.series.course import course_series  # noqa: E402
from engine.training.config import TrainConfig  # noqa: E402
from engine.training.prepare import resolve_config  # noqa: E402


def test_sibling_and_development_data_sets(tmp_path):
    data_sets = defaults_study.write_data_sets(["course-noise1", "sunspots-dev"], tmp_path)
    sibling = data_sets["course-noise1"]
    _, values = course_series(seed=1)
    written = np.loadtxt(tmp_path / "course-noise1.csv", skiprows=1)
    np.testing.assert_array_equal(written, values)
    assert not np.array_equal(values, course_series(seed=42)[1])  # not the reported series
    assert sibling["flags"][-4:] == ["--split", "1000", "--period", "365"]
    # The sunspots' development split ends where the reported split's training part ends.
    rows = (tmp_path / "sunspots-dev.csv").read_text().splitlines()
    assert len(rows) == 1 + defaults_study.SUNSPOTS_TRAINING_PART == 1 + round(0.8 * 2820)
    assert data_sets["sunspots-dev"]["flags"][-2:] == ["--split", "1974"]
    with pytest.raises(SystemExit, match="reported series"):
        defaults_study.write_data_sets(["course-noise42"], tmp_path)


def test_a_delta_flag_resolves_as_the_engine_scales_its_default(tmp_path):
    data_sets = defaults_study.write_data_sets(["course-noise1"], tmp_path)
    flags = defaults_study.candidate_flags(
        "--huber-delta {delta:0.1}", data_sets["course-noise1"]["train"]
    )
    engine = resolve_config(
        TrainConfig(data=str(tmp_path / "course-noise1.csv"), column="value", split="1000")
    )
    assert flags == ["--huber-delta", f"{engine.huber_delta:.4g}"]
    assert defaults_study.candidate_flags(" --refit", np.arange(5.0)) == ["--refit"]


def test_the_rule_needs_every_data_set():
    names = ["default", "better", "mixed", "tied"]
    means = {
        "a": {"default": 4.0, "better": 3.9, "mixed": 3.0, "tied": 4.0},
        "b": {"default": 10.0, "better": 9.99, "mixed": 10.01, "tied": 9.0},
    }
    assert defaults_study.adopt(means, names) == {"better": True, "mixed": False, "tied": False}


def test_the_spread_beside_the_rule_reads_an_ensembles_members():
    runs = [
        {"data": "a", "candidate": "ensemble", "mae": 4.0, "members": [4.1, 4.2, 4.3]},
        {"data": "a", "candidate": "ensemble", "mae": 4.2, "members": [4.0, 4.5, 4.6]},
        {"data": "a", "candidate": "default", "mae": 4.1, "members": []},
        {"data": "a", "candidate": "default", "mae": 4.3, "members": []},
    ]
    figures = defaults_study.spread(runs, "a", "ensemble")
    assert figures["members"] == 6
    assert figures["members_mean"] == pytest.approx(np.mean([4.1, 4.2, 4.3, 4.0, 4.5, 4.6]))
    assert figures["members_sd"] == pytest.approx(np.std([4.1, 4.2, 4.3, 4.0, 4.5, 4.6], ddof=1))
    assert figures["candidate_sd"] == pytest.approx(np.std([4.0, 4.2], ddof=1))
    assert defaults_study.spread(runs, "a", "default") is None
