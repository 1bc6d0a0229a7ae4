"""Every layer of ours serialises: get_config round trips, and a model saves to .keras and
loads back computing the same; plus `engine verify`'s command-line contract."""

import json

import keras
import numpy as np
import pytest

import cells
from cells.equivalence import report as verify_module
from engine import cli


@pytest.mark.parametrize(
    "layer",
    [
        cells.SimpleRNNCell(3, activation="relu"),
        cells.LSTMCell(3, unit_forget_bias=False, recurrent_activation="hard_sigmoid"),
        cells.GRUCell(3, reset_after=False, use_bias=False),
        cells.Recurrent(cells.GRUCell(2), return_sequences=True, go_backwards=True),
        cells.SimpleRNN(4, return_state=True, unroll=True),
        cells.LSTM(4, kernel_initializer="he_normal", unroll=False),
        cells.GRU(4, reset_after=False, go_backwards=True),
        cells.Bidirectional(cells.LSTM(2, return_sequences=True), merge_mode=None),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trips(layer):
    serialized = keras.saving.serialize_keras_object(layer)
    json.dumps(serialized)  # plain JSON
    rebuilt = keras.saving.deserialize_keras_object(serialized)
    assert type(rebuilt) is type(layer)
    assert rebuilt.get_config() == layer.get_config()


def test_model_saves_and_loads_with_identical_outputs(tmp_path):
    inputs = keras.Input((None, 2))
    masked = keras.layers.Masking()(inputs)
    hidden = cells.SimpleRNN(6, return_sequences=True)(masked)
    hidden = cells.Bidirectional(cells.LSTM(5, return_sequences=True), merge_mode="ave")(hidden)
    hidden = cells.Recurrent(cells.GRUCell(4, reset_after=False), go_backwards=True)(hidden)
    outputs = keras.layers.Dense(1)(hidden)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(3, 7, 2)).astype("float32")
    x[0, :2] = 0.0  # padding, so the mask matters
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded(x), model(x))
    assert [type(layer).__name__ for layer in loaded.layers] == [
        type(layer).__name__ for layer in model.layers
    ]


def test_verify_json_contract(capsys):
    cli.main(["verify", "--cell", "SimpleRNN", "--dtype", "mixed_float16", "--json"])  # no exit
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True
    assert len(report["cases"]) == 2
    for row in report["cases"]:
        keys = {"cell", "config", "dtype", "output_diff", "gradient_diff", "tolerance", "passed"}
        assert keys <= set(row)
        assert row["cell"] == "SimpleRNN" and row["dtype"] == "mixed_float16"
        assert row["output_diff"] <= row["tolerance"] and row["passed"]


def test_verify_exits_1_when_a_case_fails(monkeypatch, capsys):
    real_compare = verify_module.compare

    def failing(case, seed=0):
        result = real_compare(case, seed)
        result.output_diff, result.passed = 1.0, False
        return result

    monkeypatch.setattr(verify_module, "compare", failing)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["verify", "--cell", "GRU", "--dtype", "mixed_float16", "--quiet"])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert "FAIL" in captured.out
    assert captured.err.strip().startswith("engine: failed:")
    assert len(captured.err.strip().splitlines()) == 1
