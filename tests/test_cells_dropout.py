"""Dropout and recurrent dropout in our cells, against Keras 3's semantics.

Inference with the rates set equals Keras (and the cell without dropout); training with fixed
masks equals Keras in outputs and gradients (inputs and every weight) on both time-loop paths
and inside Bidirectional; the same seed draws the very masks Keras draws; masks are drawn once
per sequence and reused at every step; with both rates 0 the graph has no dropout op.
Tolerances are `TOLERANCES`'s, as max |ours - reference| / max |reference|.
"""

import collections
import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import cells
from cells.equivalence import (
    CELLS,
    TOLERANCES,
    Case,
    compare,
    dropout_subset,
    dtype_policy,
    relative_difference,
)

compare_module = importlib.import_module("cells.equivalence.compare")  # the name is the function's

KINDS = {
    "SimpleRNN": (cells.SimpleRNN, keras.layers.SimpleRNN, {}),
    "LSTM": (cells.LSTM, keras.layers.LSTM, {}),
    "GRU": (cells.GRU, keras.layers.GRU, {}),
    "GRU(reset_after=False)": (cells.GRU, keras.layers.GRU, {"reset_after": False}),
}
RATES = dict(dropout=0.3, recurrent_dropout=0.4)
PATHS = {
    "loop": dict(unroll=False),
    "unrolled": dict(unroll=True),
    "bidi-unrolled": dict(bidirectional="concat", unroll=True),  # inputs projected ahead
    "bidi-loop": dict(bidirectional="sum", unroll=False),
}


def assert_passes(case: Case, seed: int = 0):
    result = compare(case, seed)
    assert result.error is None, result.error
    assert result.output_diff <= case.tolerance, result.tensors
    assert result.gradient_diff <= case.tolerance, result.tensors


@pytest.mark.parametrize("unroll", [False, True], ids=["loop", "unrolled"])
@pytest.mark.parametrize("cell", CELLS)
def test_inference_with_rates_set_matches_keras(cell, unroll):
    case = Case(cell=cell, dtype="float32", return_sequences=True, unroll=unroll, **RATES)
    assert_passes(case)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cell", CELLS)
def test_training_with_fixed_masks_matches_keras(cell, path):
    """Outputs and gradients wrt inputs and every weight, both masks on, float64."""
    case = Case(
        cell=cell, dtype="float64", training=True, return_sequences=True, **RATES, **PATHS[path]
    )
    assert_passes(case)


@pytest.mark.parametrize(
    "rates",
    [dict(dropout=0.3), dict(recurrent_dropout=0.3)],
    ids=["inputs-only", "recurrent-only"],  # one shared input mask / one mask per gate
)
@pytest.mark.parametrize("cell", CELLS)
def test_training_with_one_rate_matches_keras(cell, rates):
    case = Case(cell=cell, dtype="float32", training=True, mask="explicit", **rates)
    assert_passes(case)


@pytest.mark.parametrize("cell", CELLS)
def test_mixed_precision_training_matches_keras(cell):
    case = Case(cell=cell, dtype="mixed_float16", training=True, return_sequences=True, **RATES)
    assert_passes(case)


def test_the_dropout_cases_are_in_engine_verify():
    cases = dropout_subset()
    for cell in CELLS:
        mine = [case for case in cases if case.cell == cell]
        assert {case.training for case in mine} == {True, False}
        assert {case.unroll for case in mine if case.training} == {True, False}
        assert any(case.bidirectional for case in mine)
    assert {case.dtype for case in cases} == set(TOLERANCES)
    with pytest.raises(ValueError, match="dropout"):
        Case(cell="LSTM", dtype="float32", dropout=1.0)


def test_a_wrong_mask_is_caught(monkeypatch):
    """The fixed-mask comparison can fail: Keras given other masks than ours differs."""
    real = compare_module.fix_dropout_masks

    def different(ours_cell, keras_cell, batch, rng):
        real(ours_cell, keras_cell, batch, rng)
        keras_cell.get_dropout_mask = lambda step_input: None  # Keras: no input dropout

    monkeypatch.setattr(compare_module, "fix_dropout_masks", different)
    result = compare(Case(cell="SimpleRNN", dtype="float64", training=True, **RATES))
    assert result.error is None
    assert not result.passed and result.output_diff > 1e-3


@pytest.mark.parametrize("rates", [dict(dropout=0.3), dict(recurrent_dropout=0.4), RATES])
@pytest.mark.parametrize("cell", CELLS)
def test_the_same_seed_draws_the_masks_keras_draws(cell, rates):
    """A fresh pair with one seed: the first training call is the same to the bit (same
    draws, in the same order, shapes and dtype: input masks, then recurrent masks)."""
    ours_class, keras_class, kwargs = KINDS[cell]
    x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
    ours = ours_class(6, seed=11, return_sequences=True, **rates, **kwargs)
    theirs = keras_class(6, seed=11, return_sequences=True, **rates, **kwargs)
    ours.build(x.shape), theirs.build(x.shape)  # built without a call: nothing drawn yet
    ours.set_weights(theirs.get_weights())
    np.testing.assert_array_equal(ours(x, training=True), theirs(x, training=True))


def identity_rnn(units, unroll, **rates):
    """A linear SimpleRNN without bias: `h_t = (x_t * m) K + (h_{t-1} * r) U`."""
    layer = cells.SimpleRNN(
        units,
        activation="linear",
        use_bias=False,
        return_sequences=True,
        unroll=unroll,
        seed=3,
        **rates,
    )
    layer.build((None, None, units))
    return layer


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("unroll", [False, True], ids=["loop", "unrolled"])
def test_the_input_mask_is_drawn_once_per_sequence(unroll, graph):
    """K = I, U = 0, x = 1: every step outputs the input mask itself."""
    rate, batch, units, steps = 0.3, 64, 64, 6
    layer = identity_rnn(units, unroll, dropout=rate)
    layer.cell.kernel.assign(np.eye(units))
    layer.cell.recurrent_kernel.assign(np.zeros((units, units)))
    run = tf.function(layer) if graph else layer
    y = run(tf.ones((batch, steps, units)), training=True).numpy()
    mask = y[:, 0]
    for t in range(steps):
        np.testing.assert_array_equal(y[:, t], mask)  # the same mask at every step
    np.testing.assert_allclose(np.unique(mask), [0.0, 1 / (1 - rate)], rtol=TOLERANCES["float32"])
    # Drops about `rate` of the entries (4 standard deviations of a binomial), per entry.
    dropped = float(np.mean(mask == 0))
    assert abs(dropped - rate) < 4 * np.sqrt(rate * (1 - rate) / mask.size)
    assert len({row.tobytes() for row in mask}) > 1  # one mask row per batch entry
    y_next = run(tf.ones((batch, steps, units)), training=True).numpy()
    assert not np.array_equal(y_next[:, 0], mask)  # a new mask for the next call


@pytest.mark.parametrize("unroll", [False, True], ids=["loop", "unrolled"])
def test_the_recurrent_mask_is_reused_at_every_step(unroll):
    """K = 0, U = I, h_0 = 1: h_t = r^t, so kept entries grow as (1 / (1 - rate))^t and the
    dropped ones stay the same zeros (a mask redrawn each step would drop more and more)."""
    rate, batch, units, steps = 0.4, 32, 48, 5
    layer = identity_rnn(units, unroll, recurrent_dropout=rate)
    layer.cell.kernel.assign(np.zeros((units, units)))
    layer.cell.recurrent_kernel.assign(np.eye(units))
    x = tf.ones((batch, steps, units))
    y = layer(x, initial_state=[tf.ones((batch, units))], training=True).numpy()
    kept = y[:, 0] != 0
    for t in range(steps):
        expected = np.where(kept, (1 / (1 - rate)) ** (t + 1), 0.0)
        np.testing.assert_allclose(y[:, t], expected, rtol=TOLERANCES["float32"], atol=0)
    dropped = 1 - float(np.mean(kept))
    assert abs(dropped - rate) < 4 * np.sqrt(rate * (1 - rate) / kept.size)


def spy_on_masks(cell) -> list:
    """Records every `dropout_masks` the cell returns (the hook a test may override)."""
    drawn = []
    original = cell.dropout_masks

    def spy(inputs, states, training=False):
        masks = original(inputs, states, training)
        drawn.append(masks)
        return masks

    cell.dropout_masks = spy
    return drawn


@pytest.mark.parametrize(
    ("cell", "rates", "counts"),
    [
        ("SimpleRNN", RATES, (1, 1)),
        ("LSTM", dict(dropout=0.3), (1, 0)),  # one input mask for all four gates
        ("LSTM", RATES, (4, 4)),  # recurrent_dropout: Keras's implementation=1, per gate
        ("GRU", dict(recurrent_dropout=0.3), (0, 3)),
        ("GRU(reset_after=False)", RATES, (3, 3)),
    ],
)
@pytest.mark.parametrize("unroll", [False, True], ids=["loop", "unrolled"])
def test_masks_per_call_per_gate_shapes_and_dtype(cell, rates, counts, unroll):
    ours_class, _, kwargs = KINDS[cell]
    batch, features, units = 3, 2, 5
    layer = ours_class(units, unroll=unroll, **rates, **kwargs)
    layer.build((batch, 4, features))
    drawn = spy_on_masks(layer.cell)
    x = tf.ones((batch, 4, features))
    layer(x, training=True)
    assert len(drawn) == 1  # once per call, whatever the number of steps
    masks = drawn[0]
    assert len(masks.inputs or ()) == counts[0] and len(masks.recurrent or ()) == counts[1]
    for mask in masks.inputs or ():
        assert mask.shape == (batch, features) and mask.dtype == tf.float32
    for mask in masks.recurrent or ():
        assert mask.shape == (batch, units) and mask.dtype == tf.float32
    layer(x, training=False)
    assert drawn[1] is None  # inference: nothing drawn


def test_bidirectional_passes_training_to_both_directions():
    layer = cells.Bidirectional(cells.GRU(4, unroll=True, dropout=0.5))
    layer.build((2, 3, 2))
    forward, backward = (
        spy_on_masks(layer.forward_layer.cell),
        spy_on_masks(layer.backward_layer.cell),
    )
    x = tf.ones((2, 3, 2))
    layer(x, training=True), layer(x)
    assert [m is None for m in forward] == [False, True]
    assert [m is None for m in backward] == [False, True]


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_masks_are_drawn_in_the_compute_dtype(policy):
    with dtype_policy(policy):
        layer = cells.LSTM(4, return_sequences=True, seed=1, **RATES)
        layer.build((2, 3, 2))
        drawn = spy_on_masks(layer.cell)
        y = tf.function(layer)(tf.ones((2, 3, 2)), training=True)
    compute = policy.removeprefix("mixed_")
    assert y.dtype == compute and np.all(np.isfinite(np.asarray(y, "float32")))
    assert all(mask.dtype == compute for mask in drawn[0].inputs + drawn[0].recurrent)
    assert all(w.dtype == "float32" for w in layer.weights)


@pytest.mark.parametrize("cell", CELLS)
def test_training_changes_outputs_and_inference_does_not(cell):
    ours_class, _, kwargs = KINDS[cell]
    x = np.random.default_rng(1).normal(size=(4, 6, 3)).astype("float32")
    plain = ours_class(5, return_sequences=True, **kwargs)
    with_dropout = ours_class(5, return_sequences=True, seed=2, **RATES, **kwargs)
    plain(x), with_dropout(x)
    with_dropout.set_weights(plain.get_weights())
    inference = with_dropout(x, training=False)
    assert relative_difference(inference, plain(x)) <= TOLERANCES["float32"]
    np.testing.assert_array_equal(with_dropout(x), inference)  # training defaults to False
    assert relative_difference(with_dropout(x, training=True), inference) > 1e-2


def test_a_model_in_training_mode_drops():
    """`training` reaches the cells from a model's call (fit passes training=True)."""
    model = keras.Sequential(
        [
            keras.Input((5, 2)),
            cells.Bidirectional(cells.LSTM(4, return_sequences=True, seed=0, **RATES)),
            cells.GRU(3, dropout=0.5, seed=1),
            keras.layers.Dense(1),
        ]
    )
    x = np.random.default_rng(2).normal(size=(8, 5, 2)).astype("float32")
    inference = model(x, training=False)
    np.testing.assert_allclose(model.predict(x, verbose=0), inference, atol=1e-6)
    assert relative_difference(model(x, training=True), inference) > 1e-2
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, np.zeros((8, 1)), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def graph_op_types(layer, x, training) -> collections.Counter:
    """Op types of a forward and backward pass in one tf.function, loop bodies included."""

    @tf.function
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nest.flatten(layer(x, training=training))
        return tape.gradient(y, [x, *layer.trainable_weights])

    graph = run.get_concrete_function(tf.TensorSpec(x.shape, tf.float32)).graph
    types = [op.type for op in graph.get_operations()]
    for function in graph._functions.values():
        types += [node.op for node in function.definition.node_def]
    return collections.Counter(types)


def random_ops(types) -> set:
    return {t for t in types if "Random" in t or "Dropout" in t or "Seed" in t}


@pytest.mark.parametrize(
    "make",
    [
        lambda **rates: cells.LSTM(4, unroll=False, **rates),
        lambda **rates: cells.SimpleRNN(4, unroll=True, return_sequences=True, **rates),
        lambda **rates: cells.Bidirectional(cells.GRU(4, unroll=True, **rates)),
    ],
    ids=["LSTM-loop", "SimpleRNN-unrolled", "Bidirectional-GRU-unrolled"],
)
def test_rates_of_zero_add_no_op_and_no_state(make):
    x = tf.ones((2, 5, 3))
    layer = make()
    layer(x)
    training, inference = graph_op_types(layer, x, True), graph_op_types(layer, x, False)
    assert training == inference and not random_ops(training)
    assert len(layer.variables) == len(layer.weights)  # no seed generator
    # Rates set: inference still draws nothing, training draws (a stateless uniform).
    with_dropout, with_recurrent_dropout = make(dropout=0.3), make(recurrent_dropout=0.3)
    with_dropout(x), with_recurrent_dropout(x)
    assert graph_op_types(with_dropout, x, False) == inference
    assert random_ops(graph_op_types(with_dropout, x, True))
    assert not random_ops(graph_op_types(with_recurrent_dropout, x, False))


@pytest.mark.parametrize("cell", CELLS)
def test_weights_do_not_change(cell):
    ours_class, keras_class, kwargs = KINDS[cell]
    ours, theirs = ours_class(5, **RATES, **kwargs), keras_class(5, **RATES, **kwargs)
    plain = ours_class(5, **kwargs)
    for layer in (ours, theirs, plain):
        layer.build((2, 3, 4))
    expected = [(w.name, tuple(w.shape)) for w in theirs.weights]
    assert [(w.name, tuple(w.shape)) for w in ours.weights] == expected
    assert [(w.name, tuple(w.shape)) for w in plain.weights] == expected


@pytest.mark.parametrize(
    "layer",
    [
        cells.SimpleRNNCell(3, dropout=0.1, recurrent_dropout=0.2, seed=5),
        cells.LSTMCell(3, recurrent_dropout=0.5),
        cells.GRUCell(3, reset_after=False, dropout=0.25, seed=0),
        cells.LSTM(4, dropout=0.2, recurrent_dropout=0.3, seed=7, unroll=True),
        cells.GRU(4, recurrent_dropout=0.1),
        cells.Bidirectional(cells.SimpleRNN(2, dropout=0.5, seed=1, return_sequences=True)),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trips_the_rates_and_seed(layer):
    config = layer.get_config()
    inner = config["layer"]["config"] if isinstance(layer, cells.Bidirectional) else config
    assert {"dropout", "recurrent_dropout", "seed"} <= set(inner)
    rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert rebuilt.get_config() == config
    if isinstance(rebuilt, cells.Bidirectional):
        rebuilt = rebuilt.forward_layer
    assert getattr(rebuilt, "cell", rebuilt).seed_generator is not None


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
@pytest.mark.parametrize("name", ["dropout", "recurrent_dropout"])
@pytest.mark.parametrize(
    "make", [cells.SimpleRNNCell, cells.LSTMCell, cells.GRUCell, cells.LSTM, cells.GRU]
)
def test_bad_rates_raise(make, name, value):
    with pytest.raises(ValueError, match=rf"^{name} must be a float in \[0, 1\), got {value}$"):
        make(3, **{name: value})


def test_a_bad_seed_raises():
    with pytest.raises(ValueError, match="seed must be an int or None"):
        cells.SimpleRNN(3, dropout=0.1, seed=1.5)


def test_a_model_with_dropout_saves_and_loads(tmp_path):
    inputs = keras.Input((None, 2))
    hidden = cells.Bidirectional(cells.GRU(3, return_sequences=True, seed=4, **RATES))(inputs)
    outputs = cells.LSTM(2, dropout=0.2)(hidden)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(3).normal(size=(2, 5, 2)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded(x), model(x))
    assert loaded.layers[2].cell.dropout == 0.2 and loaded.layers[1].forward_layer.cell.seed == 4
