"""The named models: each builds from our cells and from Keras's with the same weights and
forecasts, survives a .keras round trip, and the new `ar-gru` exports and serves."""

import keras
import numpy as np
import pytest

from engine.model.builders import build_model, rebuild_with_custom_cells
from engine.model.scaling import SeasonalChannels
from engine.model.specs import MODELS, seasonal_leads

SMALL = dict(units=4, layers=1, scale=10.0, offset=50.0)


def windows_for(name, count=3):
    spec = MODELS[name]
    length = spec.default_window_size(12 if spec.seasonal else None)
    rng = np.random.default_rng(0)
    return (50 + np.cumsum(rng.normal(size=(count, length)), axis=1)).astype("float32")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_cells_rebuild_to_ours_with_the_same_forecast(name, tmp_path):
    period = 12 if MODELS[name].seasonal else None
    windows = windows_for(name)
    keras.utils.set_random_seed(1)
    theirs = build_model(name, "keras", period=period, window_size=windows.shape[1], **SMALL)
    want = theirs.predict_on_batch(windows)
    ours = rebuild_with_custom_cells(theirs, name, SMALL["units"], SMALL["layers"])
    np.testing.assert_allclose(ours.predict_on_batch(windows), want, rtol=1e-5, atol=1e-5)
    ours.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict_on_batch(windows), want, rtol=1e-5, atol=1e-5)


def test_ar_gru_is_a_linear_autoregression_plus_a_gru():
    """With the GRU's output weight at zero, the forecast is the window's linear model."""
    windows = windows_for("ar-gru")
    model = build_model("ar-gru", "custom", window_size=30, **SMALL)
    model.get_layer("output").set_weights([np.zeros((4, 1)), np.zeros(1)])
    coefficients = np.linspace(-0.2, 0.5, 30)[:, None].astype("float32")
    model.get_layer("linear_autoregression").set_weights([coefficients, np.array([0.1])])
    # The linear part reads the level (centred on the training mean), not the anchored window.
    centred = (windows - SMALL["offset"]) / SMALL["scale"]
    want = (centred @ coefficients + 0.1) * SMALL["scale"] + windows[:, -1:]
    np.testing.assert_allclose(model.predict_on_batch(windows), want, rtol=1e-5, atol=1e-4)
    # Only the last `window_size` values count, as the exported graph sends.
    longer = np.concatenate([np.zeros((3, 7), "float32"), windows], axis=1)
    model.get_layer("linear_autoregression").set_weights([coefficients, np.array([0.1])])
    np.testing.assert_allclose(model.predict_on_batch(longer), want, rtol=1e-5, atol=1e-4)


def test_ar_gru_exports_and_verifies(tmp_path):
    from export import export_model

    model = build_model("ar-gru", "custom", window_size=30, **SMALL)
    result = export_model(model, str(tmp_path / "base"), {"window_size": 30, "model": "ar-gru"})
    assert result.report.passed and result.version == 1


@pytest.mark.parametrize("period", [2, 4, 7, 12, 365])
def test_seasonal_channels_read_last_year_and_never_the_future(period):
    """Step `i` (time `u`) holds `x[u]` and last year's `x[u - period + 1 + j]`, `j = 0..leads`,
    all before the forecast's time; a short period gets fewer leads, never a future value."""
    recent, leads = 5, seasonal_leads(period)
    assert leads == min(10, period - 2)
    time = recent + period - 1 + 3  # three values older than the layer reads
    window = np.arange(time, dtype="float32")[None, :, None]  # each value is its own time
    channels = keras.ops.convert_to_numpy(SeasonalChannels(recent, period, leads)(window))[0]
    for i, step in enumerate(channels):
        u = time - recent + i
        assert step.tolist() == [u] + [u - period + 1 + j for j in range(leads + 1)]
    assert channels.max() == time - 1  # this year's latest value, in the recent channel
    with pytest.raises(ValueError, match="leads <= period - 2"):
        SeasonalChannels(recent, period, period - 1)


@pytest.mark.parametrize("period", [2, 7])
def test_a_seasonal_model_builds_for_a_short_period(period):
    model = build_model("seasonal-gru", "custom", period=period, **SMALL)
    windows = np.random.default_rng(0).normal(50, 5, (3, 20 + period - 1)).astype("float32")
    forecast = model.predict_on_batch(windows)
    assert forecast.shape == (3, 1) and np.isfinite(forecast).all()
