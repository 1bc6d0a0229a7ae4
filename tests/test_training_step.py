"""The training step's fast path: what it picks, and that every path trains alike.

The fast path is the engine's step over statically unrolled cells (the cells unroll a known
window length by themselves); the plain reference is the same step over the cells'
`tf.while_loop`; XLA (`jit_compile=True`) stays available to `make_train_step` and must agree
with both. Tolerances are on the weights after a few Adam steps: Adam moves each weight by
about `lr` (1e-3) a step. Paths that only round differently (float32, ~6e-8 a rounding, summed
in another order by the loop's gradient accumulation or by XLA's fusions) were measured to
agree within 6e-8; WEIGHT_ATOL = 1e-6 leaves a margin of about 20 and is a thousandth of one
step's move, while one wrong gradient, gate or sign moves a weight by ~1e-3.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import cells
from cells.equivalence import TOLERANCES, relative_difference
from engine.model.builders import build_model
from engine.series.course import course_series
from engine.series.windows import windowed_dataset
from engine.training.config import TrainConfig
from engine.training.losses import get_loss
from engine.training.prepare import make_optimizer
from engine.training.step import make_train_step, step_options

WINDOW, BATCH, STEPS = 12, 16, 3
WEIGHT_ATOL = 1e-6


@pytest.fixture(autouse=True)
def restore_policy():
    yield
    keras.config.set_dtype_policy("float32")


def batches(count=STEPS):
    """`count` batches `(float32 [BATCH, WINDOW], float32 [BATCH])` of the course series, in
    the order the engine reads them (no shuffle)."""
    _, series = course_series()
    dataset = windowed_dataset(series[:200].astype("float32"), WINDOW, BATCH, shuffle_buffer=None)
    return list(dataset.take(count))


def twin(name, cells_kind="custom", loop=False, reference=None):
    """Model `name` (small), with `reference`'s weights when given; `loop` turns the cells'
    static unrolling off (the plain while-loop path)."""
    keras.utils.set_random_seed(3)
    model = build_model(name, cells_kind, units=8, layers=1, scale=10.0, offset=50.0)
    if loop:
        for layer in model._flatten_layers():
            if isinstance(layer, cells.Recurrent):
                layer.unroll = False
    if reference is not None:
        model.set_weights(reference.get_weights())
    return model


def train(model, config=TrainConfig(), **options):
    """STEPS engine steps (Adam, cosine schedule, Huber) on `batches()`; returns the step."""
    optimizer = make_optimizer(config, total_steps=100)
    optimizer.build(model.trainable_variables)
    step = make_train_step(model, optimizer, get_loss("huber"), **options)
    for windows, targets in batches():
        loss, finite = step(windows, targets)
        assert bool(finite) and np.isfinite(float(loss))
    return step


def weight_gap(ours, theirs) -> float:
    return max(
        float(np.max(np.abs(a - b))) for a, b in zip(ours.get_weights(), theirs.get_weights())
    )


def op_types(concrete) -> set:
    """Every op type in a traced step, including inside its functions (gradients, loops)."""
    graph_def = concrete.graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types |= {node.op for node in function.node_def}
    return types


@pytest.mark.parametrize("fast", [True, False])
def test_step_options_build_a_step_on_cpu(fast):
    options = step_options(TrainConfig(fast=fast))
    assert set(options) == {"jit_compile", "unroll"}
    assert options["unroll"] is (None if fast else False)  # --no-fast: the cells' while-loop
    # Measured slower on CPU (docs/performance.md), so never picked; off with --no-fast.
    assert options["jit_compile"] is False
    for precision in ("mixed_float16", "mixed_bfloat16"):
        assert step_options(TrainConfig(fast=fast, precision=precision))["jit_compile"] is False


def test_engine_step_unrolls_a_known_window_and_loops_over_an_unknown_one():
    model = twin("gru")
    optimizer = make_optimizer(TrainConfig(), total_steps=100)
    optimizer.build(model.trainable_variables)
    step = make_train_step(model, optimizer, get_loss("huber"), **step_options(TrainConfig()))
    windows, targets = batches(1)[0]
    # The engine calls its step on concrete batches, so the trace knows the window length.
    known = op_types(step.get_concrete_function(windows, targets))
    assert not {"While", "StatelessWhile"} & known
    unknown = op_types(
        step.get_concrete_function(
            tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.float32)
        )
    )
    assert {"While", "StatelessWhile"} & unknown
    # --no-fast: the plain path loops even over a known window.
    plain = make_train_step(
        model, optimizer, get_loss("huber"), **step_options(TrainConfig(fast=False))
    )
    assert {"While", "StatelessWhile"} & op_types(plain.get_concrete_function(windows, targets))
    # A model trained on the fast path still runs on any window length.
    assert model(tf.zeros([2, 30])).shape == (2, 1)
    assert model(tf.zeros([2, 5])).shape == (2, 1)


@pytest.mark.parametrize("name", ["rnn", "bilstm", "gru"])
def test_unrolled_fast_path_trains_like_the_loop(name):
    fast = twin(name)
    plain = twin(name, loop=True, reference=fast)
    assert weight_gap(fast, plain) == 0.0
    train(fast, **step_options(TrainConfig(fast=True)))
    train(plain, **step_options(TrainConfig(fast=False)))
    assert weight_gap(fast, twin(name)) > 1e-4  # it trained: Adam moves weights ~lr a step
    assert weight_gap(fast, plain) <= WEIGHT_ATOL


@pytest.mark.parametrize("name, loop", [("rnn", False), ("lstm", True)])
def test_xla_step_trains_like_the_plain_step(name, loop):
    plain = twin(name, loop=loop)
    xla = twin(name, loop=loop, reference=plain)
    train(plain, jit_compile=False)
    train(xla, jit_compile=True)
    assert weight_gap(xla, plain) <= WEIGHT_ATOL


@pytest.mark.parametrize("name", ["bilstm", "gru"])
def test_cells_match_keras_inside_an_xla_step(name):
    """Loss and gradients of our cells equal the built-ins' within the equivalence suite's
    float32 tolerance when both are XLA-compiled, on the unrolled and the loop path."""
    reference = twin(name, "keras")
    models = {
        "keras": reference,
        "unrolled": twin(name, reference=reference),
        "loop": twin(name, loop=True, reference=reference),
    }
    windows, targets = batches(1)[0]
    windows = windows[:, -6:]  # a short window keeps XLA's compilation of three models quick
    loss_fn = get_loss("huber")

    @tf.function(jit_compile=True)
    def loss_and_gradients(model):
        with tf.GradientTape() as tape:
            loss = loss_fn(targets[:, None], model(windows, training=True))
        return loss, tape.gradient(loss, model.trainable_variables)

    results = {kind: loss_and_gradients(model) for kind, model in models.items()}
    keras_loss, keras_gradients = results["keras"]
    for kind in ("unrolled", "loop"):
        loss, gradients = results[kind]
        assert relative_difference(loss, keras_loss) <= TOLERANCES["float32"], kind
        for ours, theirs in zip(gradients, keras_gradients):
            assert relative_difference(ours, theirs) <= TOLERANCES["float32"], kind


def test_inputs_are_projected_ahead_inside_bidirectional_only():
    """The measured choice (docs/performance.md): a lone recurrence steps with `cell.step`,
    the two of a Bidirectional project all steps' inputs first, also once reloaded; and both
    loops agree with each other on the same weights."""
    lone = cells.LSTM(6, return_sequences=True)
    both_ways = cells.Bidirectional(cells.LSTM(6, return_sequences=True))
    assert lone.project_inputs_ahead is False
    assert both_ways.forward_layer.project_inputs_ahead is True
    assert both_ways.backward_layer.project_inputs_ahead is True
    reloaded = cells.Bidirectional.from_config(both_ways.get_config())
    assert reloaded.forward_layer.project_inputs_ahead is True

    sequences = tf.random.stateless_normal([4, 9, 3], seed=[1, 2])
    for cell_layer in (cells.SimpleRNN, cells.LSTM, cells.GRU):
        layer = cell_layer(5, return_sequences=True, unroll=True)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(sequences)
            per_step = layer(sequences)
            layer.project_inputs_ahead = True
            ahead = layer(sequences)
            layer.project_inputs_ahead = False
        assert relative_difference(ahead, per_step) <= TOLERANCES["float32"]
        weights = layer.trainable_variables
        for want, got in zip(
            tape.gradient(per_step, [sequences, *weights]),
            tape.gradient(ahead, [sequences, *weights]),
            strict=True,
        ):
            assert relative_difference(got, want) <= TOLERANCES["float32"]
