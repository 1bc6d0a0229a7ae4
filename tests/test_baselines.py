import numpy as np
import pytest

from engine.series.baselines import compute_baselines, moving_average_forecast, naive_forecast
from engine.series.course import course_series


def test_course_figures_are_reproduced():
    """The course's published week-1 figures, to 1e-4."""
    _, series = course_series()
    results = compute_baselines(series, 1000, period=365)
    assert results["naive"]["mae"] == pytest.approx(5.937908, abs=1e-4)
    assert results["naive"]["mse"] == pytest.approx(61.827538, abs=1e-4)
    assert results["moving_average"]["mae"] == pytest.approx(7.142419, abs=1e-4)
    assert results["moving_average"]["mse"] == pytest.approx(106.674576, abs=1e-4)
    assert results["moving_average"]["window"] == 30
    # The course's best statistical forecast (differenced moving average + smoothed past).
    assert results["seasonal_difference"]["mae"] == pytest.approx(4.5694, abs=1e-3)


def test_forecasts_use_only_the_past():
    series = np.arange(10, dtype="float64") ** 2
    assert naive_forecast(series, 7).tolist() == [36.0, 49.0, 64.0]
    assert moving_average_forecast(series, 7, 2).tolist() == [
        (25 + 36) / 2,
        (36 + 49) / 2,
        (49 + 64) / 2,
    ]


def test_seasonal_naive_only_with_a_period():
    series = np.sin(np.arange(100) * 2 * np.pi / 10)
    assert "seasonal_naive" not in compute_baselines(series, 60, window=5)
    seasonal = compute_baselines(series, 60, period=10, window=5)["seasonal_naive"]
    assert seasonal["mae"] == pytest.approx(0.0, abs=1e-12)
