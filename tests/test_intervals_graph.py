"""The conformal band in the serving graph against a Python reference written here from the
definition (export/intervals.py's docstring), and the graph's refusal of a bad coverage."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from export.graph import build_serving_module
from export.intervals import conformal_rank, half_widths

WINDOW = 5


def reference_half_width(residuals: np.ndarray, coverage: float, step: int) -> float:
    """q_step, one step at a time, straight from the definition."""
    n, calibrated = residuals.shape
    c = float(np.float32(coverage))  # what the graph receives
    k = min(math.ceil((n + 1) * c), n)
    if step <= calibrated:
        return float(sorted(residuals[:, step - 1])[k - 1])
    return float(sorted(residuals[:, calibrated - 1])[k - 1]) * math.sqrt(step / calibrated)


def linear_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    values = keras.Input(shape=(None,))
    hidden = keras.layers.Reshape((-1, 1))(values)
    hidden = keras.layers.GlobalAveragePooling1D()(hidden)
    return keras.Model(values, keras.layers.Dense(1)(hidden))


@pytest.fixture(scope="module")
def residuals():
    # Ties and a zero column, so the rank arithmetic has to be exact.
    values = np.abs(np.random.default_rng(5).normal(size=(37, 6))) * np.arange(1, 7)
    values[:5, 2] = values[5, 2]
    values[:, 4] = 0.0
    return values


@pytest.fixture(scope="module")
def forecast_function(residuals):
    _, signatures = build_serving_module(linear_model(), WINDOW, residuals)
    return signatures["forecast"]


SERIES = np.random.default_rng(1).normal(50, 10, size=(3, WINDOW + 2)).astype(np.float32)


@pytest.mark.parametrize("coverage", [0.01, 0.5, 0.8, 0.9, 0.95, 0.97, 0.99])
@pytest.mark.parametrize("horizon", [1, 6, 11])
def test_the_graph_band_equals_the_reference(forecast_function, residuals, coverage, horizon):
    outputs = forecast_function(
        series=tf.constant(SERIES), horizon=tf.constant(horizon), coverage=tf.constant(coverage)
    )
    forecast = outputs["forecast"].numpy().astype(np.float64)
    want = np.array([reference_half_width(residuals, coverage, h) for h in range(1, horizon + 1)])
    for name, sign in (("lower", -1), ("upper", 1)):
        got = outputs[name].numpy().astype(np.float64)
        assert got.shape == (3, horizon)
        np.testing.assert_allclose(got, forecast + sign * want[None, :], rtol=1e-6, atol=1e-6)
    # The NumPy reference the export checks use agrees too.
    np.testing.assert_allclose(half_widths(residuals, coverage, horizon), want, rtol=1e-12)


def test_the_rank_uses_the_float32_coverage():
    assert conformal_rank(99, 0.9) == 90  # float32 0.9 is just below 0.9: 89.99998 -> 90
    assert conformal_rank(99, 0.8) == 81  # float32 0.8 is just above 0.8: 80.000001 -> 81
    assert conformal_rank(9, 0.95) == 9  # (n + 1) c > n: the largest residual
    assert conformal_rank(9, 1e-6) == 1


def test_the_band_widens_beyond_the_calibrated_horizon(forecast_function, residuals):
    outputs = forecast_function(
        series=tf.constant(SERIES), horizon=tf.constant(24), coverage=tf.constant(0.9)
    )
    width = (outputs["upper"] - outputs["lower"]).numpy()[0]
    np.testing.assert_allclose(width[23] / width[5], math.sqrt(24 / 6), rtol=1e-5)


@pytest.mark.parametrize("coverage", [0.0, 1.0, -0.2, 1.5, float("nan"), float("inf")])
def test_the_graph_refuses_a_coverage_outside_0_1(forecast_function, coverage):
    with pytest.raises(tf.errors.InvalidArgumentError, match="`coverage` must be between 0"):
        forecast_function(
            series=tf.constant(SERIES), horizon=tf.constant(3), coverage=tf.constant(coverage)
        )


@pytest.mark.parametrize("coverage", [{}, {"coverage": tf.constant(0.9)}])
@pytest.mark.parametrize("horizon", [0, -1, -5])
def test_the_graph_refuses_a_horizon_below_1_before_the_band_reads_it(
    forecast_function, horizon, coverage
):
    # Once a negative horizon with the default coverage reached the band's tf.range first,
    # and the answer was "Requires start <= limit when delta > 0".
    with pytest.raises(tf.errors.InvalidArgumentError, match="`horizon` must be at least 1"):
        forecast_function(series=tf.constant(SERIES), horizon=tf.constant(horizon), **coverage)


def test_without_residuals_the_forecast_signature_is_unchanged():
    _, signatures = build_serving_module(linear_model(), WINDOW)
    function = signatures["forecast"].get_concrete_function()
    assert sorted(function.structured_outputs) == ["forecast"]
    assert [spec.name for spec in function.structured_input_signature[0]] == ["series", "horizon"]


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((0, 3)), "must be \\[origins, horizon\\]"),
        (np.zeros(4), "must be \\[origins, horizon\\]"),
        (np.full((4, 2), -1.0), "finite and non-negative"),
        (np.full((4, 2), np.nan), "finite and non-negative"),
    ],
)
def test_bad_residuals_are_an_export_error(bad, message):
    from export.errors import ExportError

    with pytest.raises(ExportError, match=message):
        build_serving_module(linear_model(), WINDOW, bad)
