"""Our cells against keras.layers.SimpleRNN / LSTM / GRU / Bidirectional, case by case.

The cases and the comparison are `cells.equivalence`'s (what `engine verify` runs): same
weights, perturbed so no bias is zero; outputs, states and gradients within the dtype's
tolerance, as max |ours - keras| / max |keras|.
"""

import keras
import numpy as np
import pytest

import cells
from cells.equivalence import (
    TOLERANCES,
    Case,
    compare,
    default_cases,
    full_grid,
    mask_pattern,
    relative_difference,
)

CASES = default_cases()


@pytest.fixture(autouse=True)
def policy_is_restored():
    before = keras.config.dtype_policy().name
    yield
    assert keras.config.dtype_policy().name == before


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case.cell}-{case.dtype}-{case.config}")
def test_matches_keras(case):
    result = compare(case)
    assert result.error is None, result.error
    assert result.output_diff <= case.tolerance, result.tensors
    assert result.gradient_diff <= case.tolerance, result.tensors


def test_the_grid_covers_what_the_issue_names():
    grid = full_grid()
    for dtype in ("float64", "float32"):
        for cell in ("SimpleRNN", "LSTM", "GRU", "GRU(reset_after=False)"):
            mine = [case for case in grid if case.dtype == dtype and case.cell == cell]
            assert {case.return_sequences for case in mine} == {True, False}
            assert {case.time for case in mine} >= {1, 64}
            assert {case.features for case in mine} >= {1, 4}
            assert {case.bidirectional for case in mine} >= {"concat", "sum", "ave", "mul", "none"}
            for feature in ("go_backwards", "initial_state"):
                assert {case.unroll for case in mine if getattr(case, feature)} == {True, False}
            for mask in ("masking", "explicit"):
                assert {case.unroll for case in mine if case.mask == mask} == {True, False}
            assert {case.unroll for case in mine if case.layers == 2} == {True, False}
    assert {case.dtype for case in CASES} == set(TOLERANCES)
    assert {case.graph for case in CASES} == {True, False}


def test_mask_pattern_pads_start_end_and_middle():
    mask = mask_pattern(4, 8)
    assert not mask[0, :2].any() and mask[0, 2:].all()  # start
    assert mask[1, :6].all() and not mask[1, 6:].any()  # end
    assert mask[2, :4].all() and not mask[2, 4:6].any() and mask[2, 6:].all()  # middle
    assert mask[3].all()


def test_relative_difference():
    reference = np.array([[2.0, -4.0], [1.0, 0.0]])
    assert relative_difference(reference, reference) == 0.0
    assert relative_difference(reference + [[0.0, 0.4], [0.0, 0.0]], reference) == pytest.approx(
        0.1
    )
    assert relative_difference(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_difference(np.array([np.nan]), np.array([1.0])) == np.inf
    assert relative_difference(np.zeros(2), np.zeros(3)) == np.inf


def test_a_wrong_cell_is_caught(monkeypatch):
    """The comparison can fail: a GRU that swaps z and 1 - z differs from Keras's."""
    original = cells.GRUCell.step

    def swapped(self, x_t, states):
        h, _ = original(self, x_t, states)
        # Undo h = z h' + (1 - z) c by mixing with the previous state the other way.
        return 0.9 * h + 0.1 * states[0], [0.9 * h + 0.1 * states[0]]

    monkeypatch.setattr(cells.GRUCell, "step", swapped)
    result = compare(Case(cell="GRU", dtype="float64", return_sequences=True))
    assert not result.passed
    assert result.output_diff > 1e-3


def test_a_case_that_cannot_run_fails_with_its_error(monkeypatch):
    def broken(self, x_t, states):
        raise RuntimeError("boom")

    monkeypatch.setattr(cells.SimpleRNNCell, "step", broken)
    result = compare(Case(cell="SimpleRNN", dtype="float32"))
    assert not result.passed
    assert "boom" in result.error
    assert result.as_json()["output_diff"] is None


def test_graph_cases_do_not_warn_about_retracing():
    """Each graph case is a new tf.function traced once; `engine verify` runs many in a row and
    TensorFlow's "triggered tf.function retracing" warning must not flood its stderr."""
    import logging

    import tensorflow as tf

    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    tf.get_logger().addHandler(handler)
    try:
        for index in range(7):
            result = compare(Case(cell="SimpleRNN", dtype="float32", time=1, graph=True), index)
            assert result.passed, result.error
    finally:
        tf.get_logger().removeHandler(handler)
    assert not [record for record in records if "retracing" in record.getMessage()]
