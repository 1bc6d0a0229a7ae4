"""Properties of the cells: equivalence over random shapes (hypothesis), weights that move
both ways with the built-ins, the built-ins' initial distributions, variable time lengths
and mixed precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cells
from cells.equivalence import CELLS, Case, compare, dtype_policy

BUILT_INS = {
    "SimpleRNN": (cells.SimpleRNN, keras.layers.SimpleRNN, {}),
    "LSTM": (cells.LSTM, keras.layers.LSTM, {}),
    "GRU": (cells.GRU, keras.layers.GRU, {}),
    "GRU(reset_after=False)": (cells.GRU, keras.layers.GRU, {"reset_after": False}),
}


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    cell=st.sampled_from(CELLS),
    batch=st.integers(1, 8),
    time=st.integers(1, 40),
    features=st.integers(1, 4),
    units=st.integers(1, 48),
    return_sequences=st.booleans(),
    go_backwards=st.booleans(),
    unroll=st.booleans(),
    mask=st.sampled_from(["", "explicit"]),
)
def test_equivalent_for_any_shape(
    cell, batch, time, features, units, return_sequences, go_backwards, unroll, mask
):
    case = Case(
        cell=cell,
        dtype="float32",
        batch=batch,
        time=time,
        features=features,
        units=units,
        return_sequences=return_sequences,
        go_backwards=go_backwards,
        unroll=unroll,
        mask=mask,
    )
    result = compare(case)
    assert result.passed, (result.error, result.tensors)


@pytest.mark.parametrize("name", CELLS)
def test_weights_have_the_built_in_names_shapes_and_move_both_ways(name):
    ours_class, keras_class, kwargs = BUILT_INS[name]
    ours, theirs = ours_class(5, **kwargs), keras_class(5, **kwargs)
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    ours(x), theirs(x)
    assert [w.name for w in ours.weights] == [w.name for w in theirs.weights]
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    # theirs -> ours, then ours (changed) -> theirs.
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours(x), theirs(x), rtol=0, atol=1e-6)
    ours.set_weights([w + 0.1 for w in ours.get_weights()])
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours(x), theirs(x), rtol=0, atol=1e-6)


def test_fresh_weights_follow_the_built_in_initialisers():
    units, features = 32, 3
    layer = cells.LSTM(units)
    layer(np.zeros((1, 2, features), "float32"))
    kernel, recurrent, bias = (w.numpy() for w in layer.cell.weights)
    limit = np.sqrt(6 / (features + 4 * units))  # glorot_uniform
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.5 * limit
    # orthogonal [units, 4 units]: orthonormal rows
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(units), atol=1e-5)
    # unit_forget_bias: [0, 1, 0, 0] blocks
    expected = np.concatenate([np.zeros(units), np.ones(units), np.zeros(2 * units)])
    np.testing.assert_array_equal(bias, expected)
    gru = cells.GRU(4)
    gru(np.zeros((1, 2, features), "float32"))
    assert gru.cell.bias.shape == (2, 12) and not gru.cell.bias.numpy().any()


def test_without_bias_and_other_activations():
    for name in CELLS:
        ours_class, keras_class, kwargs = BUILT_INS[name]
        extra = {"use_bias": False, "activation": "relu"}
        if name != "SimpleRNN":
            extra["recurrent_activation"] = "hard_sigmoid"
        ours, theirs = ours_class(3, **kwargs, **extra), keras_class(3, **kwargs, **extra)
        x = np.random.default_rng(1).normal(size=(2, 5, 2)).astype("float32")
        ours(x), theirs(x)
        assert len(ours.weights) == 2
        ours.set_weights(theirs.get_weights())
        np.testing.assert_allclose(ours(x), theirs(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("unroll", [None, False])
def test_variable_time_length(unroll):
    model = keras.Sequential(
        [
            keras.Input((None, 1)),
            cells.SimpleRNN(4, return_sequences=True, unroll=unroll),
            cells.Bidirectional(cells.LSTM(3, unroll=unroll)),
        ]
    )

    @tf.function(input_signature=[tf.TensorSpec([None, None, 1], tf.float32)])
    def run(x):
        return model(x)

    for steps in (1, 5, 9):
        x = np.ones((2, steps, 1), "float32")
        assert run(x).shape == (2, 6)
        np.testing.assert_allclose(run(x), model(x), atol=1e-6)


def test_unroll_needs_a_known_length():
    layer = cells.GRU(2, unroll=True)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 1], tf.float32)])
    def run(x):
        return layer(x)

    with pytest.raises(ValueError, match="unroll=True"):
        run(np.ones((1, 3, 1), "float32"))


def test_the_loop_reads_inputs_through_tensor_arrays():
    """No strided slice of the whole sequence inside the while loop (O(T^2) gradients)."""
    layer = cells.LSTM(3, unroll=False)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        return tape.gradient(y, x)

    graph = step.get_concrete_function(tf.TensorSpec([2, 7, 1], tf.float32)).graph
    assert {"While", "StatelessWhile"} & {op.type for op in graph.get_operations()}
    bodies = [
        {node.op for node in function.definition.node_def} for function in graph._functions.values()
    ]
    assert any("TensorListGetItem" in ops for ops in bodies)  # TensorArray reads
    assert not any("StridedSlice" in ops for ops in bodies)  # no xs[t] inside the loops


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_float32_variables(policy):
    with dtype_policy(policy):
        layer = cells.Bidirectional(cells.GRU(4, return_sequences=True, return_state=True))
        outputs = layer(np.ones((2, 3, 1), "float32"))
    assert keras.config.dtype_policy().name == "float32"
    assert all(w.dtype == "float32" for w in layer.weights)
    compute = policy.removeprefix("mixed_")
    assert all(tensor.dtype == compute for tensor in outputs)
