"""The loop under tf.distribute: mirrored on 2 logical CPU devices and two multi-worker
processes on loopback end with the weights of the default (one device) run; a checkpoint
moves between replica counts. Sizes are small so the module stays quick.

The mirrored runs share one subprocess: logical CPU devices must be set up before
TensorFlow's runtime starts, which this pytest process has long done.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from cli_runner import run_engine

from engine.training.config import TrainConfig
from engine.training.train import train

SMALL = dict(model="rnn", units=8, layers=1, window_size=20)  # 31 global batches of 32 an epoch
SMALL_FLAGS = ["--model", "rnn", "--units", "8", "--layers", "1", "--quiet"]
TOLERANCE = 1e-5  # max |ours - reference| / max |reference|, per weight tensor
MIXED_TOLERANCE = 2e-2  # float16 arithmetic, as in test_train_loop


def run_dir_config(run_dir, **changes):
    return TrainConfig(**SMALL, run_dir=str(run_dir)).replace(**changes)


def checkpoint_differences(reference, other) -> dict[str, float]:
    """Per tensor of the reference checkpoint (model and optimizer state): the relative
    max difference of the same tensor in `other`."""
    ours, theirs = tf.train.load_checkpoint(str(other)), tf.train.load_checkpoint(str(reference))
    differences = {}
    for name, _ in tf.train.list_variables(str(reference)):
        want = theirs.get_tensor(name)
        if name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH"):
            continue
        got = ours.get_tensor(name)
        if want.dtype.kind != "f":  # step and epoch counters
            differences[name] = 0.0 if np.array_equal(got, want) else np.inf
            continue
        scale = max(float(np.max(np.abs(want))), 1e-12)
        differences[name] = float(np.max(np.abs(got - want))) / scale
    return differences


def assert_same_weights(reference_dir, run_dir, epoch, tolerance=TOLERANCE):
    differences = checkpoint_differences(
        reference_dir / "checkpoints" / f"ckpt-{epoch}", run_dir / "checkpoints" / f"ckpt-{epoch}"
    )
    # The model's weights are saved once, under the optimizer that tracks them.
    assert any("_trainable_variables" in name for name in differences)
    assert any("optimizer/_variables" in name for name in differences)  # Adam's moments
    worst = max(differences, key=differences.get)
    assert differences[worst] <= tolerance, f"{worst}: {differences[worst]:.3g}"


def model_difference(reference_dir, run_dir) -> float:
    import cells  # noqa: F401 - registers our layers
    import engine.model.scaling  # noqa: F401

    want = keras.saving.load_model(reference_dir / "model.keras").get_weights()
    got = keras.saving.load_model(run_dir / "model.keras").get_weights()
    return max(
        float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)) for a, b in zip(got, want)
    )


def metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def interrupted_copy(run_dir, destination, after_epoch: int):
    """A copy of a finished run as a run killed after `after_epoch` would have left it: later
    checkpoints, the model and the summary gone, the checkpoint state pointing back."""
    shutil.copytree(run_dir, destination)
    checkpoints = destination / "checkpoints"
    for path in checkpoints.glob("ckpt-*"):
        if int(path.name.split(".")[0].split("-")[1]) > after_epoch:
            path.unlink()
    tf.compat.v1.train.update_checkpoint_state(
        str(checkpoints), str(checkpoints / f"ckpt-{after_epoch}")
    )
    (destination / "model.keras").unlink()
    (destination / "summary.json").unlink()
    return destination


def child_env(**extra) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    return {**env, **extra}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("distribute")


@pytest.fixture(scope="module")
def default_runs(runs):
    """One-device runs: 3 epochs (the reference, and a copy stopped after epoch 2 to resume on
    two replicas), and 1 epoch of 12 steps under mixed_float16."""
    train(run_dir_config(runs / "default", epochs=3), quiet=True)
    interrupted_copy(runs / "default", runs / "resumed-on-2", after_epoch=2)
    # 12 steps over the whole training part (no selection slice), on both sides.
    mixed = run_dir_config(
        runs / "default-mixed",
        epochs=1,
        precision="mixed_float16",
        split="400",
        selection_fraction=0.0,
    )
    train(mixed, quiet=True)
    keras.config.set_dtype_policy("float32")
    return runs


def mirrored_process(invocations: list[list[str]], results_path: str) -> None:
    """Runs in a fresh process (see `mirrored_runs`): `engine train` per invocation (the first
    splits the CPU into two logical devices), then one poisoned mixed-precision step."""
    from engine.cli import main

    for args in invocations:
        main(args)
    results = {"poisoned": poisoned_step_on_two_replicas(), "uneven": uneven_batches()}
    Path(results_path).write_text(json.dumps(results))


def uneven_batches() -> dict:
    """Batches of 3 and 1 on two replicas (split 2 + 1, then 1 + 0) against one device."""
    from engine.model.builders import build_model
    from engine.series.course import course_series
    from engine.training.losses import get_loss
    from engine.training.prepare import make_optimizer
    from engine.training.step import make_train_step

    keras.config.set_dtype_policy("float32")
    _, series = course_series()
    series = series[:40].astype("float32")
    windows, targets = np.stack([series[i : i + 20] for i in range(3)]), series[20:23]

    def run(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(1)
            model = build_model("rnn", "custom", units=8, layers=1, scale=float(series.std()))
            config = TrainConfig(optimizer="sgd", lr=0.01, lr_schedule="constant")
            optimizer = make_optimizer(config, 0)
            optimizer.build(model.trainable_variables)
            step = make_train_step(model, optimizer, get_loss("huber"))
        losses, sizes = [], []
        for size in (3, 1, 1):
            batch = tf.data.Dataset.from_tensors((windows[:size], targets[:size]))
            batch = next(iter(strategy.experimental_distribute_dataset(batch)))
            sizes.append([len(part) for part in strategy.experimental_local_results(batch[1])])
            losses.append(float(step(*batch)[0]))
        return losses, sizes, [v.numpy() for v in model.trainable_variables]

    one_losses, _, one_weights = run(tf.distribute.get_strategy())
    two_losses, sizes, two_weights = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    return {
        "sizes": sizes,
        "losses": [one_losses, two_losses],
        "difference": max(
            float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
            for a, b in zip(two_weights, one_weights)
        ),
    }


def poisoned_step_on_two_replicas() -> dict:
    """A NaN in replica 1's half of the batch only: both replicas must skip the step. (Keras'
    `LossScaleOptimizer` takes replica 0's verdict, trusting the gradients to be summed.)"""
    from engine.model.builders import build_model
    from engine.series.course import course_series
    from engine.training.losses import get_loss
    from engine.training.prepare import make_optimizer
    from engine.training.step import make_train_step

    keras.config.set_dtype_policy("mixed_float16")
    _, series = course_series()
    series = series[:40].astype("float32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        keras.utils.set_random_seed(1)
        model = build_model("rnn", "custom", units=8, layers=1, scale=float(series.std()))
        optimizer = make_optimizer(TrainConfig(lr=0.01, precision="mixed_float16"), 0)
        optimizer.build(model.trainable_variables)
        step = make_train_step(model, optimizer, get_loss("huber"))

    def distributed(windows):  # 8 examples: replica 0 gets the first 4, replica 1 the rest
        targets = series[20:28]
        batch = tf.data.Dataset.from_tensors((windows, targets))
        return next(iter(strategy.experimental_distribute_dataset(batch)))

    windows = np.stack([series[i : i + 20] for i in range(8)])
    for _ in range(16):  # the initial scale overflows float16: wait for a finite step
        _, finite = step(*distributed(windows))
        if bool(finite):
            break

    def copies():  # every replica's copy of every weight
        return [[copy.numpy() for copy in v.value.values] for v in model.trainable_variables]

    before, scale_before = copies(), float(optimizer.dynamic_scale.numpy())
    iterations_before = int(optimizer.iterations.numpy())
    poisoned = windows.copy()
    poisoned[5, 5] = np.nan  # example 5: replica 1's
    _, poisoned_finite = step(*distributed(poisoned))
    after = copies()
    return {
        "replicas": strategy.num_replicas_in_sync,
        "finite_before": bool(finite),
        "poisoned_finite": bool(poisoned_finite),
        "unchanged": all(
            np.array_equal(old, new)
            for old_copies, new_copies in zip(before, after)
            for old, new in zip(old_copies, new_copies)
        ),
        "copies_agree": all(np.array_equal(c[0], c[1]) for c in after),
        "scale_ratio": float(optimizer.dynamic_scale.numpy()) / scale_before,
        "iterations_advanced": int(optimizer.iterations.numpy()) - iterations_before,
    }


@pytest.fixture(scope="module")
def mirrored_runs(default_runs):
    """`engine train --strategy mirrored --replicas 2` three times, then the poisoned step and
    the uneven batches, in one fresh process; returns what those two found."""
    runs = default_runs
    mirrored = ["train", *SMALL_FLAGS, "--strategy", "mirrored", "--replicas", "2"]
    invocations = [
        [*mirrored, "--epochs", "3", "--run-dir", str(runs / "mirrored")],
        [*mirrored, "--epochs", "3", "--resume", "--run-dir", str(runs / "resumed-on-2")],
        [*mirrored, "--epochs", "1", "--precision", "mixed_float16", "--split", "400",
         "--selection-fraction", "0", "--run-dir", str(runs / "mirrored-mixed")],
    ]  # fmt: skip
    program = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import json\n"
        "from test_distribute import mirrored_process\n"
        "mirrored_process(json.loads(sys.argv[1]), sys.argv[2])\n"
    )
    results = runs / "poisoned-step.json"
    result = subprocess.run(
        [sys.executable, "-c", program, json.dumps(invocations), str(results)],
        capture_output=True,
        text=True,
        timeout=300,
        env=child_env(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return runs, json.loads(results.read_text())


def test_mirrored_on_two_logical_cpus_matches_default(mirrored_runs):
    runs, _ = mirrored_runs
    summary = json.loads((runs / "mirrored" / "summary.json").read_text())
    assert summary["replicas"] == 2 and summary["config"]["strategy"] == "mirrored"
    assert_same_weights(runs / "default", runs / "mirrored", epoch=3)
    assert model_difference(runs / "default", runs / "mirrored") <= TOLERANCE
    # Same data order, same mean loss over each global batch (the last one is partial: 20 pairs).
    for ours, reference in zip(metrics(runs / "mirrored"), metrics(runs / "default")):
        assert ours["loss"] == pytest.approx(reference["loss"], rel=TOLERANCE)


def test_checkpoint_moves_from_two_replicas_to_one(mirrored_runs):
    runs, _ = mirrored_runs
    run_dir = interrupted_copy(runs / "mirrored", runs / "resumed-on-1", after_epoch=2)
    resumed = train(run_dir_config(run_dir, epochs=3), resume=True, quiet=True)
    assert resumed["replicas"] == 1 and resumed["epochs_run"] == 3
    assert resumed["config"]["strategy"] == "default"
    assert [entry["epoch"] for entry in metrics(run_dir)] == [1, 2, 3]
    assert_same_weights(runs / "default", run_dir, epoch=3)


def test_checkpoint_moves_from_one_replica_to_two(mirrored_runs):
    runs, _ = mirrored_runs
    run_dir = runs / "resumed-on-2"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["replicas"] == 2 and summary["epochs_run"] == 3
    assert [entry["epoch"] for entry in metrics(run_dir)] == [1, 2, 3]
    assert_same_weights(runs / "default", run_dir, epoch=3)


def test_mixed_precision_on_two_replicas_trains_like_one(mirrored_runs):
    runs, _ = mirrored_runs
    ours, reference = metrics(runs / "mirrored-mixed")[0], metrics(runs / "default-mixed")[0]
    # The initial scale 2**15 overflows float16 gradients: steps are skipped while it halves,
    # once per skipped step (no growth within 12 steps). Which steps overflow may differ from
    # one device (each replica scales its own share of the loss), so the weights are compared
    # through what they achieve rather than tensor by tensor (Adam amplifies float16 noise).
    assert ours["skipped_steps"] >= 1
    assert ours["loss_scale"] == 2**15 / 2 ** ours["skipped_steps"]
    assert ours["loss"] == pytest.approx(reference["loss"], rel=MIXED_TOLERANCE)
    assert ours["val_mae"] == pytest.approx(reference["val_mae"], rel=MIXED_TOLERANCE)


def test_uneven_and_empty_replica_batches_average_over_the_global_batch(mirrored_runs):
    _, found = mirrored_runs
    uneven = found["uneven"]
    assert uneven["sizes"] == [[2, 1], [1, 0], [1, 0]]
    assert uneven["losses"][1] == pytest.approx(uneven["losses"][0], rel=TOLERANCE)
    assert uneven["difference"] <= TOLERANCE


def test_a_non_finite_gradient_on_one_replica_skips_the_step_on_all(mirrored_runs):
    _, found = mirrored_runs
    poisoned = found["poisoned"]
    assert poisoned["replicas"] == 2
    assert poisoned["finite_before"], "no finite step within 16 halvings of the loss scale"
    assert not poisoned["poisoned_finite"]
    assert poisoned["unchanged"], "a replica applied the poisoned step"
    assert poisoned["copies_agree"]
    assert poisoned["scale_ratio"] == 0.5
    assert poisoned["iterations_advanced"] == 0


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def test_two_workers_on_loopback_match_default(default_runs, tmp_path):
    runs = default_runs
    run_dir = tmp_path / "multi-worker"
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    scratch = [tmp_path / f"tmp-{index}" for index in range(2)]
    processes = []
    try:
        for index in range(2):
            scratch[index].mkdir()
            tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            with (tmp_path / f"worker-{index}.err").open("w") as errors:
                processes.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "engine",
                            "train",
                            *SMALL_FLAGS,
                            "--epochs",
                            "3",
                            "--strategy",
                            "multi-worker",
                            "--run-dir",
                            str(run_dir),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=errors,
                        env=child_env(TF_CONFIG=json.dumps(tf_config), TMPDIR=str(scratch[index])),
                    )  # fmt: skip
                )
        deadline = time.monotonic() + 240
        for index, process in enumerate(processes):
            returncode = process.wait(timeout=max(deadline - time.monotonic(), 1))
            errors = (tmp_path / f"worker-{index}.err").read_text()[-2000:]
            assert returncode == 0, f"worker {index}: {errors}"
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["replicas"] == 2 and summary["config"]["strategy"] == "multi-worker"
    assert_same_weights(runs / "default", run_dir, epoch=3)
    assert model_difference(runs / "default", run_dir) <= TOLERANCE
    # Only the chief wrote the run; worker 1's temporary copy is gone.
    assert list(scratch[1].iterdir()) == []


def test_lr_find_follows_the_strategy(tmp_path):
    """`engine lr-find --strategy mirrored` sweeps on 2 replicas and sees the losses of the
    one-device sweep: the same step as `engine train`, with the same global batches."""
    sweeps = {}
    mirrored = ["--strategy", "mirrored", "--replicas", "2"]
    for name, flags in (("default", []), ("mirrored", mirrored)):
        result = run_engine(
            "lr-find", *SMALL_FLAGS, "--steps", "30", "--min-lr", "1e-5", "--max-lr", "1e-1",
            "--run-dir", str(tmp_path / name), "--json", *flags,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        sweeps[name] = json.loads(result.stdout)
    assert sweeps["default"]["replicas"] == 1
    assert sweeps["mirrored"]["replicas"] == 2
    assert len(sweeps["mirrored"]["losses"]) == len(sweeps["default"]["losses"]) >= 10
    np.testing.assert_allclose(
        sweeps["mirrored"]["losses"], sweeps["default"]["losses"], rtol=TOLERANCE
    )
    assert (tmp_path / "mirrored" / "plots" / "lr_find.png").is_file()
