"""Where a series comes from (the course series or a CSV column) and where it is split.

A series is a 1-D float64 array `[time]`; bad files are an `InputError` naming the row.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from engine.errors import InputError
from engine.series.course import COURSE_LENGTH, COURSE_PERIOD, COURSE_SPLIT, course_series
from engine.series.dates import (
    Frequency,
    irregularity,
    parse_date,
    parse_dates,
    regular_frequency,
)


@dataclass(frozen=True)
class Series:
    """A loaded series and where it came from (for metadata and messages)."""

    values: np.ndarray  # [time] float64
    description: str
    period: int | None = None  # known seasonal period, if any
    frequency: Frequency | None = None  # of the date column, if the CSV has one
    last_date: dt.datetime | None = None  # the date of the last value, with the frequency


def load_series(
    data: str = "synthetic",
    column: str | None = None,
    date_column: str | None = None,
    header: bool | None = None,
) -> Series:
    """`data` is `synthetic` (the course series) or a CSV path."""
    if data == "synthetic":
        _, values = course_series()
        return Series(values, "synthetic course series (length 1461, seed 42)", COURSE_PERIOD)
    read = read_csv(data, column, date_column, header)
    frequency_name = f" ({read.frequency.name})" if read.frequency is not None else ""
    description = f"csv {Path(data).name}{frequency_name} column {read.label}"
    if read.dates_note:
        description += f" ({read.dates_note})"
    return Series(read.values, description, frequency=read.frequency, last_date=read.last_date)


class CsvColumn(NamedTuple):
    """What `read_csv` found: the series and what its file says about it."""

    values: np.ndarray  # [time] float64
    frequency: Frequency | None  # of the date column, when one is given or regular
    label: str  # the column, for messages (a defaulted column among several says so)
    last_date: dt.datetime | None  # the last value's date, with the frequency
    dates_note: str | None = None  # why a date column nobody named was not used


DELIMITERS = (",", ";", "\t")
DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d+$")


def _delimiter(text: str) -> str:
    """The delimiter the first line uses most: a comma, else a semicolon or a tab (as
    spreadsheets in many locales export); a comma for a single column."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    counts = [first.count(delimiter) for delimiter in DELIMITERS]
    return DELIMITERS[counts.index(max(counts))] if max(counts) else ","


def _looks_numeric(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_index(text: str) -> bool:
    return text.strip().lstrip("-").isdigit()


def _column_index(name_or_index: str, names: list[str] | None, path: str) -> int:
    if names is not None and name_or_index in names:
        return names.index(name_or_index)
    if _is_index(name_or_index):
        return int(name_or_index)
    available = ", ".join(names) if names else "no header"
    raise InputError(f"{path}: no column {name_or_index!r} (columns: {available})")


def load_csv(
    path: str,
    column: str | None = None,
    date_column: str | None = None,
    header: bool | None = None,
) -> np.ndarray:
    """One numeric column of a CSV file as a float64 series (see `read_csv`)."""
    return read_csv(path, column, date_column, header).values


def read_csv(
    path: str,
    column: str | None = None,
    date_column: str | None = None,
    header: bool | None = None,
) -> CsvColumn:
    """Read one numeric column of a CSV file as a float64 series, with its dates' frequency,
    the column's name for messages and the last value's date (`CsvColumn`).

    `column` is a header name or a 0-based index (default: the last column, so that a
    `date,value` file works without flags). `header=None` detects a header row (a first
    row with a non-numeric cell in the value column). With `date_column`, rows are sorted
    by that column's ISO dates, which must be regular (no duplicate, no gap); otherwise file
    order is kept, and a column of regular ISO dates, if there is one, only tells the
    frequency (one running newest first is an error: the series would run backwards; an
    irregular one is not used, and `dates_note` says where it breaks). Any
    missing, non-numeric or non-finite value is an `InputError` naming the row (1-based
    line number in the file).
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            text = handle.read()
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text)))
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{path}: not a readable CSV file ({error})") from None
    numbered = [
        (line, row) for line, row in enumerate(rows, start=1) if any(c.strip() for c in row)
    ]
    if not numbered:
        raise InputError(f"{path}: the file is empty")

    first = numbered[0][1]
    if header is None:
        if column is not None and not _is_index(column):
            header = True  # a column name needs a header row
        else:
            probe = len(first) - 1 if column is None else int(column)
            header = not (-len(first) <= probe < len(first) and _looks_numeric(first[probe]))
    names = [c.strip() for c in first] if header else None
    body = numbered[1:] if header else numbered
    width = len(first)
    if width == 1 and body:
        # In a one-column file an empty line between values is a value left out, not
        # spacing: skipped, every later value would move one step back in time.
        present = {line for line, _ in body}
        gap = next((n for n in range(body[0][0], body[-1][0]) if n not in present), None)
        if gap is not None:
            raise InputError(f"{path}: row {gap}: missing value (an empty line)")

    value_index = width - 1 if column is None else _column_index(column, names, path)
    if not -width <= value_index < width:
        raise InputError(f"{path}: no column {column!r} (the file has {width} columns)")
    label = names[value_index] if names else str(value_index % width)
    if column is None and width > 2:  # which of several a user may not have meant
        label += f", the last of {width} (--column picks another)"

    values = []
    for line, row in body:
        if value_index >= len(row) or value_index < -len(row):
            raise InputError(f"{path}: row {line}: missing value in column {column or value_index}")
        cell = row[value_index].strip()
        if cell == "":
            raise InputError(f"{path}: row {line}: missing value")
        try:
            value = float(cell)
        except ValueError:
            hint = ""
            if DECIMAL_COMMA.match(cell):
                hint = f" (a decimal comma? write {cell.replace(',', '.')})"
            elif column is None and parse_date(cell) is not None:
                hint = " (a date: the last column is read by default, --column names another)"
            raise InputError(f"{path}: row {line}: {cell!r} is not a number{hint}") from None
        if not math.isfinite(value):
            raise InputError(f"{path}: row {line}: {cell!r} is not a finite number")
        values.append(value)
    if not values:
        raise InputError(f"{path}: no data rows")
    series = np.asarray(values, dtype="float64")
    lines = [line for line, _ in body]

    def cells(index: int) -> list[str]:
        return [row[index].strip() if -len(row) <= index < len(row) else "" for _, row in body]

    if date_column is not None:
        date_index = _column_index(date_column, names, path)
        dates = parse_dates(cells(date_index), lines, path, date_column)
        order = sorted(range(len(dates)), key=dates.__getitem__)
        frequency = regular_frequency([dates[i] for i in order], [lines[i] for i in order], path)
        return CsvColumn(series[order], frequency, label, dates[order[-1]])
    for index in range(width):  # a date column nobody named: its frequency, if regular
        if index in (value_index, value_index + width) or len(body) < 2:
            continue
        texts = cells(index)
        dates = [parse_date(text) for text in texts]
        if all(date is not None for date in dates) and not all(_looks_numeric(t) for t in texts):
            name = names[index] if names else str(index)
            if all(later < earlier for earlier, later in zip(dates, dates[1:])):
                # Read in file order, the series would run backwards in time: the training
                # part would be the future and the validation part the past.
                raise InputError(
                    f"{path}: the dates in column {name} run newest first: give "
                    f"--date-column {name} to order the rows by them"
                )
            # Out of order, a repeat or a gap: the dates say nothing reliable. Said, not
            # refused: weekdays-only dates are a regular series too. A missing row is not,
            # and the note is where a user learns of it.
            back = next((i for i in range(1, len(dates)) if dates[i] < dates[i - 1]), None)
            if back is not None:
                where = (
                    f"rows {lines[back - 1]} and {lines[back]} are out of order; "
                    f"--date-column {name} sorts the rows by them"
                )
            else:
                problem = irregularity(dates, lines)
                if problem is None:
                    return CsvColumn(
                        series, regular_frequency(dates, lines, path), label, dates[-1]
                    )
                where = problem[0]
            return CsvColumn(series, None, label, None, f"dates in column {name} not used: {where}")
    return CsvColumn(series, None, label, None)


def split_index(length: int, split: float | int | str | None) -> int:
    """Resolve `--split`: an index (`1000`), a fraction (`0.7`), or None for the default.

    The default is the course's 1000 for a series of the course's length, else 0.7.
    """
    if split is None:
        return COURSE_SPLIT if length == COURSE_LENGTH else int(round(length * 0.7))
    if isinstance(split, str):
        try:
            split = int(split) if _is_index(split) else float(split)
        except ValueError:
            raise InputError(f"--split must be an index or a fraction, not {split!r}") from None
    if isinstance(split, float):
        if not 0.0 < split < 1.0:
            raise InputError(f"--split fraction must be between 0 and 1, not {split}")
        index = int(round(length * split))
    else:
        index = int(split)
    if not 0 < index < length:
        raise InputError(
            f"--split {split} leaves no training or no validation data ({length} points)"
        )
    return index


def check_windowable(train_length: int, valid_length: int, window_size: int) -> None:
    """Both parts must give at least one (window, next value) pair."""
    if window_size < 1:
        raise InputError(f"--window-size must be at least 1, not {window_size}")
    if train_length < window_size + 1:
        raise InputError(
            f"too few rows for one window: the training part has {train_length} points, "
            f"a window needs {window_size + 1}"
        )
    if valid_length < 1:
        raise InputError("the validation part is empty")
