"""Period inference (engine/series/period.py) and the date column it reads (dates.py)."""

import datetime as dt

import numpy as np
import pytest
from cli_runner import engine_in_process

from engine.errors import InputError
from engine.series.course import course_series
from engine.series.dates import (
    Frequency,
    dates_after,
    parse_date,
    regular_frequency,
    steps_from,
)
from engine.series.load import load_series
from engine.series.period import infer_period


def seasonal(period, length, seed=0, noise=3.0):
    """A season of `period` (a sine and a square wave), noise and a trend."""
    rng = np.random.default_rng(seed)
    time = np.arange(length)
    phase = 2 * np.pi * time / period
    return (
        10 * np.sin(phase)
        + 3 * np.sign(np.sin(2 * phase))
        + rng.normal(0, noise, length)
        + 0.01 * time
    )


@pytest.mark.parametrize("period, length", [(7, 700), (12, 600), (24, 1500), (365, 1500)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_known_periods_are_found(period, length, seed):
    guess = infer_period(seasonal(period, length, seed))
    assert guess.period == period, guess.how
    assert f"period {period} inferred from the autocorrelation" in guess.how


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_season_in_noise_a_random_walk_or_a_smooth_series(seed):
    rng = np.random.default_rng(seed)
    for values in (
        rng.normal(size=1000),
        np.cumsum(rng.normal(size=1000)),
        np.convolve(rng.normal(size=1000), np.ones(20) / 20, "same"),
    ):
        guess = infer_period(values)
        assert guess.period is None, guess.how
        assert guess.how.startswith("no clear season")


def test_the_course_series_training_part_shows_its_year():
    _, series = course_series()
    assert infer_period(series[:1000]).period == 365


def write_dated(tmp_path, dates, values, name="dated.csv"):
    path = tmp_path / name
    path.write_text("date,value\n" + "".join(f"{d},{v}\n" for d, v in zip(dates, values)))
    return str(path)


def months(count, start_year=2000):
    return [f"{start_year + m // 12}-{m % 12 + 1:02d}" for m in range(count)]


def test_a_dated_csv_gives_its_frequency_and_period(tmp_path):
    values = seasonal(12, 240)
    monthly = load_series(write_dated(tmp_path, months(240), values))
    assert monthly.frequency.name == "monthly" and "(monthly)" in monthly.description
    guess = infer_period(values[:168], monthly.frequency)
    assert guess.period == 12 and "date column's monthly frequency" in guess.how
    days = np.arange("2020-01-01", "2021-12-01", dtype="datetime64[D]").astype(str)
    daily = load_series(write_dated(tmp_path, days, seasonal(7, len(days)), "daily.csv"))
    assert daily.frequency.name == "daily"
    assert infer_period(seasonal(7, len(days))[:500], daily.frequency).period == 7
    hours = [f"2020-01-{1 + h // 24:02d} {h % 24:02d}:00" for h in range(24 * 20)]
    hourly = load_series(write_dated(tmp_path, hours, seasonal(24, len(hours)), "hourly.csv"))
    assert hourly.frequency.name == "hourly"
    assert infer_period(seasonal(24, len(hours)), hourly.frequency).period == 24


def test_monthly_data_without_a_year_season_has_no_period(tmp_path):
    """A persistent monthly series (the sunspots' kind) is not seasonal at 12."""
    rng = np.random.default_rng(0)
    values = np.convolve(rng.normal(size=600), np.ones(30) / 30, "same")
    frequency = load_series(write_dated(tmp_path, months(600), values)).frequency
    guess = infer_period(values, frequency)
    assert guess.period is None and "tried 12" in guess.how


def test_an_undated_order_is_kept_and_an_irregular_unnamed_column_ignored(tmp_path):
    shuffled = ["2000-03", "2000-01", "2000-02"]
    series = load_series(write_dated(tmp_path, shuffled, [3, 1, 2]))
    assert series.values.tolist() == [3, 1, 2] and series.frequency is None
    # The description says why the dates were not used (once it said nothing).
    assert series.description == (
        "csv dated.csv column value (dates in column date not used: rows 2 and 3 are out of "
        "order; --date-column date sorts the rows by them)"
    )
    gap = load_series(write_dated(tmp_path, ["2000-01", "2000-02", "2000-04"], [1, 2, 3]))
    assert gap.frequency is None and gap.description.endswith(
        "(dates in column date not used: rows 3 and 4: 2000-04-01 follows 2000-02-01, "
        "2 months apart where the series steps 1 month)"
    )
    named = load_series(write_dated(tmp_path, shuffled, [3, 1, 2]), date_column="date")
    assert named.values.tolist() == [1, 2, 3] and named.frequency.name == "monthly"


@pytest.mark.parametrize(
    "dates, message",
    [
        (["2000-01", "2000-02", "2000-02", "2000-03"], "rows 3 and 4 both hold the date"),
        (["2000-01", "2000-02", "2000-04", "2000-05"], "rows 3 and 4: 2000-04-01 follows 2000-02"),
        (["2020-01-01 10:00", "2020-01-01 10:00"], "both hold the date 2020-01-01 10:00:00"),
        (["2020-01-01", "2020-01-02", "2020-01-04"], "2 days apart where the series steps 1 day"),
        (["2020-01-01", "Jan 2", "2020-01-03"], "row 3: 'Jan 2' in column date is not an ISO date"),
    ],
)
def test_a_date_column_with_duplicates_or_gaps_is_refused(tmp_path, dates, message):
    path = write_dated(tmp_path, dates, range(len(dates)))
    with pytest.raises(InputError, match=message):
        load_series(path, date_column="date")


def test_the_frequency_needs_two_dates():
    with pytest.raises(InputError, match="at least two rows"):
        regular_frequency([parse_date("2020-01-01")], [2], "one.csv")


def days(count):
    return (np.datetime64("2020-01-01") + np.arange(count)).astype(str).tolist()


@pytest.mark.parametrize(
    "dates, period, frequency",
    # A week is shorter than the seasonal model's 10 leads: it reads fewer (specs.py).
    [(months(200), 12, "monthly"), (days(200), 7, "daily")],
)
def test_train_says_how_it_found_the_period_and_writes_it(
    tmp_path, capsys, dates, period, frequency
):
    path = write_dated(tmp_path, dates, seasonal(period, 200), f"{frequency}.csv")
    run_dir = tmp_path / "run"
    status, out, err = engine_in_process(
        capsys, "train", "--data", path, "--epochs", "1", "--units", "4", "--layers", "1",
        "--run-dir", str(run_dir),
    )  # fmt: skip
    assert status == 0, err
    assert f"period {period} inferred from the date column's {frequency} frequency" in out
    assert "seasonal-gru: the default with a season" in out
    config = (run_dir / "config.toml").read_text()
    assert f"period = {period}\n" in config
    assert f'period_source = "period {period} inferred' in config


def test_real_series_shipped_in_pmdarima():
    """The monthly sunspots have no year season (their ~11-year cycle is no calendar
    period); the half-hourly Taylor demand repeats every week (336) and every day (48)."""
    from pmdarima import datasets

    sunspots = datasets.load_sunspots(as_series=True).to_numpy()
    train = sunspots[: int(round(0.8 * len(sunspots)))]
    dates = [parse_date(text) for text in ("1749-01", "1749-02", "1749-03")]
    monthly = regular_frequency(dates, [2, 3, 4], "sunspots.csv")
    assert monthly.name == "monthly"
    assert infer_period(train, monthly).period is None
    taylor = datasets.load_taylor(as_series=True).to_numpy()
    assert infer_period(taylor[: int(round(0.8 * len(taylor)))]).period == 336


def drifting_cycle(length, seed, shortest, longest):
    """A sine whose cycle lengthens steadily from `shortest` to `longest` steps, plus noise."""
    rng = np.random.default_rng(seed)
    phase = np.cumsum(2 * np.pi / np.geomspace(shortest, longest, length))
    return 10 * np.sin(phase) + rng.normal(0, 2, length)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_cycle_whose_length_wanders_is_no_season(seed):
    """A cycle from 85 to 170 steps passes the season test near its middle length (acf 0.38
    at 114, far above half way) but fades at twice that lag; one that keeps within 120 +- 7%
    repeats there and stays a season, as does a true season of the same length."""
    guess = infer_period(drifting_cycle(2400, seed, 85, 170))
    assert guess.period is None and "a cycle, not a season" in guess.how, guess.how
    assert infer_period(drifting_cycle(2400, seed, 112, 128)).period == 120
    assert infer_period(seasonal(120, 2400, seed)).period == 120


def test_the_sunspots_cycle_is_no_season_without_their_dates():
    """Without the month column the autocorrelation peaks at 127 months, the solar cycle,
    which fades at 254: no season, so the default is the non-seasonal model."""
    from pmdarima import datasets

    sunspots = datasets.load_sunspots(as_series=True).to_numpy()
    guess = infer_period(sunspots[: int(round(0.8 * len(sunspots)))])
    assert guess.period is None and "127" in guess.how and "fades at 254" in guess.how


def test_a_csv_of_a_drifting_cycle_trains_the_non_seasonal_default(tmp_path):
    from engine.training.config import TrainConfig
    from engine.training.prepare import resolve_config

    path = tmp_path / "cycle.csv"
    path.write_text(
        "value\n" + "".join(f"{v}\n" for v in drifting_cycle(3000, 0, 85, 170).tolist())
    )
    config = resolve_config(TrainConfig(data=str(path), split="0.8"))
    assert config.period == 0 and "a cycle, not a season" in config.period_source
    assert config.model == "ar-gru" and "without a season" in config.model_source


@pytest.mark.parametrize(
    "dates, after",
    [
        (["1999", "2000"], ["2001", "2002"]),
        (["2000-11", "2000-12"], ["2001-01", "2001-02"]),
        (["2000-01-01", "2000-04-01"], ["2000-07", "2000-10"]),  # quarters: month starts
        (["2020-02-27", "2020-02-28"], ["2020-02-29", "2020-03-01"]),
        (["2020-01-01 22:00", "2020-01-01 23:00"], ["2020-01-02 00:00", "2020-01-02 01:00"]),
        (
            ["2020-01-01 23:59:30", "2020-01-01 23:59:45"],
            ["2020-01-02 00:00:00", "2020-01-02 00:00:15"],
        ),
    ],
)
def test_the_dates_after_a_dated_series(tmp_path, dates, after):
    series = load_series(write_dated(tmp_path, dates, range(len(dates))), date_column="date")
    assert dates_after(series.last_date, series.frequency, 2) == after


def test_steps_from_the_last_date_run_both_ways():
    monthly = Frequency("monthly", 1, "months")
    got = steps_from(dt.datetime(2002, 6, 1), monthly, range(-7, 2))
    assert [d.strftime("%Y-%m") for d in got[:2]] + [d.strftime("%Y-%m") for d in got[-2:]] == [
        "2001-11", "2001-12", "2002-06", "2002-07",
    ]  # fmt: skip
    half_hourly = Frequency("half-hourly", 1800, "seconds")
    got = steps_from(dt.datetime(2020, 1, 1), half_hourly, range(-1, 1))
    assert got == [dt.datetime(2019, 12, 31, 23, 30), dt.datetime(2020, 1, 1)]


def test_the_last_date_of_a_named_date_column_is_its_latest(tmp_path):
    path = write_dated(tmp_path, ["2020-01-03", "2020-01-01", "2020-01-02"], [3, 1, 2])
    series = load_series(path, date_column="date")
    assert series.values.tolist() == [1, 2, 3] and series.last_date.day == 3
    assert load_series(write_dated(tmp_path, ["a", "b"], [1, 2], "no-dates.csv")).last_date is None


def test_times_with_offsets_are_steps_in_utc_across_a_daylight_saving_change(tmp_path):
    """Berlin's hourly wall clock reads 02:00 twice on 2020-10-25 (+02:00, then +01:00)."""
    times = ["2020-10-25T01:00+02:00", "2020-10-25T02:00+02:00", "2020-10-25T02:00+01:00",
             "2020-10-25T03:00+01:00"]  # fmt: skip
    series = load_series(write_dated(tmp_path, times, range(4)), date_column="date")
    assert series.frequency.name == "hourly" and series.values.tolist() == [0, 1, 2, 3]
    assert dates_after(series.last_date, series.frequency, 1) == ["2020-10-25 03:00"]  # UTC
