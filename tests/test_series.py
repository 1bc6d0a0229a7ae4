import re

import numpy as np
import pytest

from engine.errors import InputError
from engine.series.course import course_series
from engine.series.load import load_csv, load_series, split_index
from engine.series.metrics import figure
from engine.series.windows import Normalization, window_pairs, windowed_dataset


def test_course_series_shape_and_known_values():
    time, series = course_series()
    assert time.shape == series.shape == (1461,)
    assert time.dtype == np.float32
    # Pins the course definition: baseline + trend + season + RandomState(42) noise.
    noise = np.random.RandomState(42).randn(1461) * 5
    assert series[0] == pytest.approx(10 + 40 * 1.0 + noise[0])
    assert series[1] - noise[1] == pytest.approx(10 + 0.05 + 40 * np.cos(2 * np.pi / 365))
    assert series[1460] - noise[1460] == pytest.approx(10 + 0.05 * 1460 + 40)  # a new period
    assert series[200] - noise[200] == pytest.approx(10 + 0.05 * 200 + 40 / np.exp(3 * 200 / 365))


def test_course_split_is_1000_and_461():
    _, series = course_series()
    index = split_index(len(series), None)
    train, valid = series[:index], series[index:]
    assert (len(train), len(valid)) == (1000, 461)


@pytest.mark.parametrize(
    "split, expected", [("10", 10), (10, 10), ("0.5", 50), (0.25, 25), ("99", 99)]
)
def test_split_index_by_index_or_fraction(split, expected):
    assert split_index(100, split) == expected


@pytest.mark.parametrize("split", ["0", "100", "1.5", "-3", "abc", 0.0])
def test_split_index_rejects_bad_values(split):
    with pytest.raises(InputError):
        split_index(100, split)


def test_normalization_uses_training_part_only():
    train, valid = np.array([1.0, 2.0, 3.0]), np.array([100.0])
    norm = Normalization.fit(train)
    assert norm.mean == pytest.approx(2.0)
    assert norm.invert(norm.apply(valid)) == pytest.approx(valid)


@pytest.mark.parametrize("window_size, batch_size", [(5, 4), (20, 32), (1, 7)])
def test_windowed_dataset_yields_exactly_the_numpy_pairs(window_size, batch_size):
    series = np.arange(60, dtype="float32") * 1.5 - 3
    expected_windows, expected_targets = window_pairs(series, window_size)

    unshuffled = list(windowed_dataset(series, window_size, batch_size, shuffle_buffer=None))
    windows = np.concatenate([w.numpy() for w, _ in unshuffled])
    targets = np.concatenate([t.numpy() for _, t in unshuffled])
    np.testing.assert_array_equal(windows, expected_windows)
    np.testing.assert_array_equal(targets, expected_targets)
    assert all(w.shape[0] <= batch_size for w, _ in unshuffled)

    # Shuffled: the same multiset of pairs, in another order.
    shuffled = list(windowed_dataset(series, window_size, batch_size, shuffle_buffer=1000, seed=1))
    pairs = np.concatenate(
        [np.concatenate([w.numpy(), t.numpy()[:, None]], axis=1) for w, t in shuffled]
    )
    expected = np.concatenate([expected_windows, expected_targets[:, None]], axis=1)
    np.testing.assert_array_equal(
        pairs[np.lexsort(pairs.T[::-1])], expected[np.lexsort(expected.T[::-1])]
    )


def write(tmp_path, text, name="series.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_csv_header_names_and_indices(tmp_path):
    # Out of order (not newest first, which is refused below): file order unless named.
    path = write(tmp_path, "date,value,other\n2020-01-02,2,9\n2020-01-01,1,8\n2020-01-03,3,7\n")
    assert load_csv(path, column="value").tolist() == [2.0, 1.0, 3.0]
    assert load_csv(path, column="2").tolist() == [9.0, 8.0, 7.0]
    assert load_csv(path).tolist() == [9.0, 8.0, 7.0]  # default: the last column
    assert load_csv(path, column="value", date_column="date").tolist() == [1.0, 2.0, 3.0]
    # The run's first line names the column it read, and says when it picked one of several.
    assert load_series(path).description.startswith(
        "csv series.csv column other, the last of 3 (--column picks another) (dates in"
    )
    assert load_series(path, column="1").description.startswith("csv series.csv column value (")
    two = write(tmp_path, "date,value\n2020-01-01,1\n2020-01-02,2\n", "two.csv")
    assert load_series(two).description == "csv two.csv (daily) column value"
    assert load_series(write(tmp_path, "1\n2\n", "bare.csv")).description.endswith("column 0")


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_delimiter_is_the_first_lines(tmp_path, delimiter):
    text = f"date{delimiter}value\n2020-01-01{delimiter}1.5\n2020-01-02{delimiter}2.5\n"
    series = load_series(write(tmp_path, text))
    assert series.values.tolist() == [1.5, 2.5] and series.frequency.name == "daily"


def test_a_decimal_comma_is_named_in_the_error(tmp_path):
    with pytest.raises(
        InputError, match=r"row 2: '5,3' is not a number \(a decimal comma\? write 5.3\)"
    ):
        load_csv(write(tmp_path, "date;value\n2020-01-01;5,3\n"))


def test_dates_newest_first_are_refused_unless_named_to_order_the_rows(tmp_path):
    path = write(tmp_path, "day,sales\n2020-01-03,3\n2020-01-02,2\n2020-01-01,1\n")
    with pytest.raises(InputError, match="column day run newest first: give --date-column day"):
        load_series(path)
    ordered = load_series(path, date_column="day")
    assert ordered.values.tolist() == [1, 2, 3] and ordered.frequency.name == "daily"


def test_a_date_in_the_default_column_points_at_column(tmp_path):
    with pytest.raises(InputError, match=r"'2020-01-01' is not a number \(a date: .*--column"):
        load_csv(write(tmp_path, "value,date\n5.3,2020-01-01\n"))
    assert load_csv(write(tmp_path, "value,date\n5.3,2020-01-01\n"), column="value").tolist() == [
        5.3
    ]


def test_csv_without_header(tmp_path):
    path = write(tmp_path, "1.5\n2.5\n3.5\n")
    assert load_csv(path).tolist() == [1.5, 2.5, 3.5]
    # Empty lines before and after the values are spacing, not missing values.
    assert load_csv(write(tmp_path, "\nvalue\n1.5\n2.5\n\n\n", "spaced.csv")).tolist() == [1.5, 2.5]


@pytest.mark.parametrize(
    "text, column, message",
    [
        ("value\n1\nabc\n3\n", None, "row 3: 'abc' is not a number"),
        ("value\n1\nnan\n3\n", None, "row 3: 'nan' is not a finite number"),
        ("value\n1\n2\ninf\n", None, "row 4: 'inf' is not a finite number"),
        ("a,value\n1,1\n2,\n", "value", "row 3: missing value"),
        ("value\n1\n\n3\n", None, "row 3: missing value (an empty line)"),
        ("1\n2\n \n3\n", None, "row 3: missing value (an empty line)"),
        ("value\n1\n2\n", "price", "no column 'price'"),
    ],
)
def test_csv_bad_values_name_the_row(tmp_path, text, column, message):
    with pytest.raises(InputError, match=re.escape(message)):
        load_csv(write(tmp_path, text), column=column)


def test_csv_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_csv(str(tmp_path / "absent.csv"))


@pytest.mark.parametrize(
    "value, decimals, shown",
    [
        (4.34251, 4, "4.3425"),
        (0.0, 4, "0.0000"),
        (0.0734, 4, "0.0734"),
        (3.66e-07, 4, "3.66e-07"),  # a series in small units: once "0.0000"
        (8.585203e17, 4, "8.585e+17"),
        (115.404099, 6, "115.404099"),
        (7.35e-05, 3, "7.35e-05"),
        (float("nan"), 4, "nan"),
    ],
)
def test_figures_keep_their_digits_in_any_units(value, decimals, shown):
    assert figure(value, decimals) == shown
