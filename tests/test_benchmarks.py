"""The parts of benchmarks/ whose figures the README quotes and that can be wrong without
being slow: here, the ops counted by benchmarks/step_floor.py."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import step_floor  # noqa: E402
import train_step  # noqa: E402

from engine.training.config import TrainConfig  # noqa: E402


def test_floor_ops_reads_transposes():
    @tf.function
    def products(a, b):
        return (
            tf.matmul(a, b),  # [2, 3] x [3, 5]
            tf.matmul(a, a, transpose_a=True),  # [3, 2] x [2, 3]
            tf.matmul(b, a, transpose_a=True, transpose_b=True),  # [5, 3] x [3, 2]
            tf.matmul(a, b),
        )

    ops = step_floor.floor_ops(products.get_concrete_function(tf.zeros([2, 3]), tf.zeros([3, 5])))
    assert ops == {("MatMul", (2, 3, 5)): 2, ("MatMul", (3, 2, 3)): 1, ("MatMul", (5, 3, 2)): 1}


def test_a_stacked_lstm_step_has_only_the_work_the_recurrence_needs():
    """Per time step, forward `x W` and `h U` in each layer; backward the weight gradients
    `dW`, `dU`, the recurrent `dh` in each layer and `dx` from the second layer into the
    first: 11 products. Plus the Dense head's three. Less the two `dh` into the zero initial
    states, which nothing needs. And five activations a step and layer, three sigmoids and
    two tanh, as Keras's cell evaluates them. One redundant op a step would show here."""
    window, batch = 6, 4
    windows, targets = train_step.batch_of(window, batch)
    engine = train_step.make_variant("engine_custom_cells", "lstm", windows, targets, TrainConfig())
    ops = step_floor.floor_ops(engine.train_step.get_concrete_function(windows, targets))
    products = sum(n for (op_type, _), n in ops.items() if op_type == "MatMul")
    assert products == 11 * window + 3 - 2
    units = 64  # the lstm model's
    assert ops[("MatMul", (batch, units, 4 * units))] == 3 * window  # h U, and x W of layer 2
    assert ops[("Sigmoid", (batch, units))] == 3 * 2 * window
    assert ops[("Tanh", (batch, units))] == 2 * 2 * window
    assert sum(ops.values()) == products + 5 * 2 * window


def test_the_course_noise_floor_is_the_mean_absolute_noise_of_the_validation_part():
    import noise_floor

    noise = 5.0 * np.random.RandomState(42).randn(4 * 365 + 1)[1000:]
    assert noise_floor.noise_floor(42) == pytest.approx(np.abs(noise).mean(), rel=1e-9)
    floors = [noise_floor.noise_floor(seed) for seed in range(1, 41)]
    assert np.mean(floors) == pytest.approx(5 * np.sqrt(2 / np.pi), abs=0.05)


def test_the_noise_floor_counts_each_training_seed_once(tmp_path):
    import noise_floor

    def write(name, summary):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "summary.json").write_text(json.dumps(summary))

    write("course-noise1-default-seed1", {"config": {"seed": 1}, "val_mae": 4.3})
    members = [{"seed": 1, "val_mae": 4.3}, {"seed": 2, "val_mae": 4.2}]
    write("course-noise1-ensemble-3-seed1", {"ensemble": {"members": members}, "val_mae": 4.1})
    assert noise_floor.study_runs(tmp_path) == {1: [4.3, 4.2]}
    write("course-noise1-other-seed1", {"config": {"seed": 1}, "val_mae": 4.0})
    with pytest.raises(SystemExit, match="differ"):
        noise_floor.study_runs(tmp_path)
