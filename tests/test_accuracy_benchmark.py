"""benchmarks/accuracy.py's statistical reference, without training: its one-step and fed-back
forecasts are statsmodels' own with the parameters fitted on the training part, and its
AR(30) gives the known one-step MAE on the sunspots' last 20%."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import accuracy  # noqa: E402

from engine.series.load import load_series  # noqa: E402
from engine.training.backtest import horizon_errors  # noqa: E402

AutoReg = pytest.importorskip("statsmodels.tsa.ar_model").AutoReg


def seasonal_series(length=300, period=12, seed=0):
    rng = np.random.default_rng(seed)
    time = np.arange(length)
    return 10 + 0.02 * time + 3 * np.sin(2 * np.pi * time / period) + rng.normal(0, 0.5, length)


def test_forecasts_are_statsmodels_own_with_the_training_fit():
    series, split, lags = seasonal_series(), 240, [1, 2, 3, 11, 12, 13]
    const, coefs, lag_array = accuracy.fit_ar(series[:split], lags)
    params = np.concatenate([[const], coefs])
    # One-step: every forecast from the true values before it.
    expected = AutoReg(series, lags=lags, trend="c").predict(params, start=split, end=299)
    got = accuracy.ar_one_step(series, split, const, coefs, lag_array)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # Multi-step: from each origin, the history before it alone, forecasts fed back.
    origins = np.array([240, 247, 290])
    paths = accuracy.ar_paths(series, origins, 10, const, coefs, lag_array)
    for row, origin in enumerate(origins):
        history = AutoReg(series[:origin], lags=lags, trend="c")
        wanted = history.predict(params, start=origin, end=origin + 9)
        np.testing.assert_allclose(paths[row], wanted, rtol=1e-10)


def test_reference_uses_the_backtests_split_origins_and_scale():
    series = seasonal_series()
    backtest = dict(horizon=12, stride=5, first_origin=240, last_origin=285, mase_scale=2.0)
    reference = accuracy.ar_reference(series, backtest, period=12)
    assert reference["ar30"]["lags"] == list(range(1, 31))
    assert reference["seasonal_ar"]["lags"] == list(range(1, 31))  # 11..13 are in 1..30
    assert set(accuracy.ar_reference(series, backtest, period=0)) == {"ar30"}
    const, coefs, lags = accuracy.fit_ar(series[:240], list(range(1, 31)))
    origins = np.arange(240, 286, 5)
    truth = series[origins[:, None] + np.arange(12)[None, :]]
    paths = accuracy.ar_paths(series, origins, 12, const, coefs, lags)
    assert reference["ar30"]["backtest"] == horizon_errors(truth, paths, 2.0)
    one_step = accuracy.ar_one_step(series, 240, const, coefs, lags)
    assert reference["ar30"]["mae"] == pytest.approx(np.mean(np.abs(series[240:] - one_step)))


def test_the_ar_interval_is_statsmodels_gaussian_one():
    """Step 1's 90% half-width is z_0.95 times the fit's residual deviation; later steps add
    the fed-back innovations (psi weights), so the interval only widens."""
    from scipy.stats import norm
    from statsmodels.tsa.arima_process import arma2ma

    series, lags = seasonal_series(), list(range(1, 31))
    half_width = accuracy.ar_half_widths(series[:240], lags, 12)
    fit = AutoReg(series[:240], lags=lags, trend="c").fit()
    psi = arma2ma(np.r_[1, -fit.params[1:]], [1], lags=12)
    want = norm.ppf(0.95) * np.sqrt(fit.sigma2 * np.cumsum(psi**2))
    np.testing.assert_allclose(half_width, want, rtol=1e-6)

    truth = np.array([[0.0, 0.0], [1.0, 3.0]])
    band = accuracy.band_of(truth, np.zeros_like(truth), np.array([0.5, 3.0]))
    assert band["empirical_coverage"] == [0.5, 1.0] and band["width"] == [1.0, 6.0]


def test_sunspots_csv_and_the_known_ar30_figure(tmp_path):
    pytest.importorskip("pmdarima")
    data, column, flags = accuracy.write_series("sunspots", tmp_path)
    assert flags == ["--data", data, "--column", "sunspots", "--split", "0.8"]
    lines = Path(data).read_text().splitlines()
    assert lines[:2] == ["month,sunspots", "1749-01,58.0"] and lines[-1].startswith("1983-12,")
    series = load_series(data, column=column).values
    assert len(series) == 2820
    backtest = dict(horizon=30, stride=2, first_origin=2256, last_origin=2790, mase_scale=1.0)
    reference = accuracy.ar_reference(series, backtest, period=0)
    assert reference["ar30"]["mae"] == pytest.approx(13.268, abs=5e-4)
