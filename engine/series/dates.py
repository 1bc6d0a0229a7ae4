"""A CSV's date column: ISO dates parsed, duplicates and gaps refused, the frequency named.

A series is taken to be regular: one value per step, no step missing. A date column that
says otherwise is an `InputError` naming the rows, since every window would silently mix
steps of different lengths.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from engine.errors import InputError

# Seasonal periods worth testing for each frequency, in steps (the examples and
# their usual companions: the day and the week of hourly data, the week and the year of
# daily data).
PERIOD_CANDIDATES = {
    "minutely": (60, 1440),
    "half-hourly": (48, 336),
    "hourly": (24, 168),
    "daily": (7, 365),
    "weekly": (52,),
    "monthly": (12,),
    "quarterly": (4,),
    "yearly": (),
}
_SECONDS = {60: "minutely", 1800: "half-hourly", 3600: "hourly", 86400: "daily", 604800: "weekly"}
_MONTHS = {1: "monthly", 3: "quarterly", 12: "yearly"}


@dataclass(frozen=True)
class Frequency:
    """How far apart consecutive dates are: `name` (a key of PERIOD_CANDIDATES, or a
    description such as "every 2 days") and the step in months or seconds."""

    name: str
    step: int
    unit: str  # "months" or "seconds"

    @property
    def period_candidates(self) -> tuple[int, ...]:
        return PERIOD_CANDIDATES.get(self.name, ())


def parse_date(text: str) -> dt.datetime | None:
    """ISO 8601 dates and times (`2020-01-31`, `2020-01-31 13:00`, `2020-01`, `2020`), or None;
    one with a UTC offset (`2020-10-25T02:00+01:00`) as the UTC time it names."""
    text = text.strip()
    try:
        if len(text) == 4 and text.isdigit():
            return dt.datetime(int(text), 1, 1)
        if len(text) == 7 and text[4] == "-":
            return dt.datetime(int(text[:4]), int(text[5:]), 1)
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    # A time with an offset is taken in UTC: local wall-clock times repeat and skip an hour
    # at daylight-saving changes, where the instants themselves stay one step apart.
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def parse_dates(texts: list[str], lines: list[int], path: str, column: str) -> list[dt.datetime]:
    """Every cell of the date column parsed; the first one that is not a date names its row."""
    dates = []
    for text, line in zip(texts, lines):
        value = parse_date(text)
        if value is None:
            raise InputError(
                f"{path}: row {line}: {text!r} in column {column} is not an ISO date "
                "(such as 2020-01-31, 2020-01 or 2020-01-31 13:00)"
            )
        dates.append(value)
    return dates


def _month_index(date: dt.datetime) -> int:
    return date.year * 12 + date.month - 1


def regular_frequency(dates: list[dt.datetime], lines: list[int], path: str) -> Frequency:
    """The one step between consecutive (sorted) dates; duplicates and gaps are errors."""
    if len(dates) < 2:
        raise InputError(f"{path}: the date column needs at least two rows to give a frequency")
    problem = irregularity(dates, lines)
    if problem is not None:
        where, advice = problem
        raise InputError(f"{path}: {where}: {advice}")
    steps, unit = _steps(dates)
    step = steps[0]
    if unit == "months":
        name = _MONTHS.get(step, f"every {step} months")
    else:
        name = _SECONDS.get(step, f"every {_describe(step, unit)}")
    return Frequency(name, step, unit)


def irregularity(dates: list[dt.datetime], lines: list[int]) -> tuple[str, str] | None:
    """Where consecutive (sorted) dates stop being one step apart, as `(where, advice)` for a
    message: a repeated date or a gap, named by its rows; None when they are regular."""
    for index in range(1, len(dates)):
        if dates[index] == dates[index - 1]:
            where = (
                f"rows {lines[index - 1]} and {lines[index]} both hold the date "
                f"{shown(dates[index])}"
            )
            return where, "one value per date"
    steps, unit = _steps(dates)
    step = Counter(steps).most_common(1)[0][0]
    for index, gap in enumerate(steps):
        if gap != step:
            where = (
                f"rows {lines[index]} and {lines[index + 1]}: {shown(dates[index + 1])} follows "
                f"{shown(dates[index])}, {_describe(gap, unit)} apart where the series steps "
                f"{_describe(step, unit)}"
            )
            return where, "fill or drop the gap first"
    return None


def _steps(dates: list[dt.datetime]) -> tuple[list[int], str]:
    """The steps between consecutive dates, in months when every date is a month's start
    (months differ in length), else in seconds: `(steps, unit)`."""
    if all(d.day == 1 and d.time() == dt.time() for d in dates):
        return [_month_index(b) - _month_index(a) for a, b in zip(dates, dates[1:])], "months"
    return [int((b - a).total_seconds()) for a, b in zip(dates, dates[1:])], "seconds"


def shown(date: dt.datetime) -> str:
    """`2020-01-31` for a midnight, `2020-01-31 13:00:00` otherwise (for messages)."""
    return date.date().isoformat() if date.time() == dt.time() else date.isoformat(sep=" ")


def _describe(step: int, unit: str) -> str:
    if unit == "months":
        return f"{step} month" + ("s" if step != 1 else "")
    for size, name in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if step % size == 0:
            count = step // size
            return f"{count} {name}" + ("s" if count != 1 else "")
    return f"{step} seconds"  # pragma: no cover - every step is a whole number of seconds


def steps_from(last: dt.datetime, frequency: Frequency, steps: range) -> list[dt.datetime]:
    """The dates `steps` steps of `frequency` away from `last` (negative: before it)."""
    if frequency.unit == "months":
        months = [_month_index(last) + frequency.step * k for k in steps]
        return [dt.datetime(m // 12, m % 12 + 1, 1) for m in months]
    return [last + dt.timedelta(seconds=frequency.step * k) for k in steps]


def dates_after(last: dt.datetime, frequency: Frequency, count: int) -> list[str]:
    """The `count` dates that follow `last` at `frequency`, written as the series' dates
    are (`2021`, `2021-02`, `2021-02-03` or `2021-02-03 04:00`): a forecast's labels."""
    dates = steps_from(last, frequency, range(1, count + 1))
    if frequency.unit == "months":
        form = "%Y" if frequency.step % 12 == 0 else "%Y-%m"
    elif frequency.step % 86400 == 0 and last.time() == dt.time():
        form = "%Y-%m-%d"
    else:
        form = "%Y-%m-%d %H:%M" if frequency.step % 60 == 0 else "%Y-%m-%d %H:%M:%S"
    return [date.strftime(form) for date in dates]
