"""One training step: the Keras way against our engine, on the course models.

For each model (rnn, bilstm, lstm, gru), window (20, 64) and batch (32, 256) it times one
optimisation step (forward, backward, update) of four variants on the same data, with the
same optimizer (the engine's `make_optimizer`: Adam, cosine schedule) and the same loss
(Huber, delta 1):

- keras_fit: the Keras built-ins trained the Keras way, `model.compile(optimizer, loss)` with
  Keras's defaults, then the step that `fit` runs;
- keras_fit_xla: the same with `compile(..., jit_compile=True)`;
- engine_keras_cells: our engine's train step (`engine.training.step.make_train_step` with
  `engine.training.step.step_options`, built as `engine train` builds it) on the Keras built-ins;
- engine_custom_cells: the same on our cells: what `engine train` runs by default.

The Keras step is timed through `model.train_on_batch`, which calls the very
`train_function` that `fit` compiles and calls once per batch (`steps_per_execution=1`, the
default), minus fit's per-epoch iterator and callback set-up: the comparison least favourable
to the engine. The engine step is called as the engine's loop calls it, reading back the
loss and the finiteness flag after every step. Every variant pays its trace and compilation in
an untimed warm-up; then rounds of steps run with the variants interleaved, and the table
gives the median and the range of the per-step time over the rounds.

    python benchmarks/train_step.py [--quick] [--json] [--rounds 7] [--steps 10]
    python benchmarks/train_step.py --memory   # peak RSS of a short run of keras_fit vs engine
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from timing import timing_columns, timing_figures  # noqa: E402 - benchmarks/timing.py

from engine.model.builders import build_model  # noqa: E402
from engine.training.config import TrainConfig  # noqa: E402
from engine.training.losses import get_loss  # noqa: E402
from engine.training.prepare import apply_precision, make_optimizer  # noqa: E402
from engine.training.step import (
    make_train_step,  # noqa: E402
    step_options,  # noqa: E402
)

MODELS = ("rnn", "bilstm", "lstm", "gru")
WINDOWS = (20, 64)
BATCHES = (32, 256)
VARIANTS = ("keras_fit", "keras_fit_xla", "engine_keras_cells", "engine_custom_cells")
QUICK = [("rnn", 20, 32), ("lstm", 20, 256), ("bilstm", 20, 32), ("gru", 64, 32)]
COURSE_HUBER_DELTA = 10.0
TOTAL_STEPS = 10_000  # the cosine schedule's length: any value far beyond the steps timed


def batch_of(window: int, batch: int, seed: int = 0):
    """A batch shaped as `engine.series.windows.windowed_dataset` yields it: windows of a
    random walk `float32 [batch, window]` and the next values `float32 [batch]`."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(size=(batch, window + 1)), axis=1).astype("float32")
    return tf.constant(walk[:, :-1]), tf.constant(walk[:, -1])


def make_variant(variant: str, model_name: str, windows, targets, config: TrainConfig):
    """A zero-argument callable running one training step of `variant` to completion."""
    keras.utils.set_random_seed(config.seed)
    # What resolve_config gives the course series when no --huber-delta is given.
    config = config.replace(huber_delta=config.huber_delta or COURSE_HUBER_DELTA)
    if variant.startswith("keras_fit"):
        model = build_model(model_name, "keras")
        model.compile(
            optimizer=make_optimizer(config, total_steps=TOTAL_STEPS),
            loss=keras.losses.Huber(config.huber_delta),
            jit_compile=variant == "keras_fit_xla",
        )
        targets_2d = targets[:, None]
        return lambda: model.train_on_batch(windows, targets_2d)

    # Exactly what engine.training.train.train builds (under the default strategy).
    cells = "keras" if variant == "engine_keras_cells" else "custom"
    config = config.replace(cells=cells)
    loss_fn = get_loss(config.loss, config.huber_delta)
    with tf.distribute.get_strategy().scope():
        model = build_model(model_name, cells)
        optimizer = make_optimizer(config, total_steps=TOTAL_STEPS)
        optimizer.build(model.trainable_variables)
        train_step = make_train_step(model, optimizer, loss_fn, **step_options(config))

    def step():
        loss, grads_finite = train_step(windows, targets)
        return bool(grads_finite), float(loss)  # what the engine's loop reads back

    step.train_step = train_step  # the tf.function, for scripts that read its graph
    return step


def time_case(model_name, window, batch, variants, rounds, steps, warmup, config):
    """Median and range of ms per step for each variant, rounds interleaved."""
    windows, targets = batch_of(window, batch)
    runners = {}
    for variant in variants:
        start = time.perf_counter()
        runners[variant] = make_variant(variant, model_name, windows, targets, config)
        for _ in range(warmup):  # the trace, the compilation, the first allocations
            runners[variant]()
        print(
            f"  {model_name} {window} {batch} {variant}: build and warm-up "
            f"{time.perf_counter() - start:.1f}s",
            file=sys.stderr,
            flush=True,
        )
    per_step = {variant: [] for variant in variants}
    for _ in range(rounds):
        for variant in variants:
            run = runners[variant]
            start = time.perf_counter()
            for _ in range(steps):
                run()
            per_step[variant].append((time.perf_counter() - start) / steps * 1e3)
    return per_step


def add_case_arguments(parser: argparse.ArgumentParser, cases: list[str]) -> None:
    """`--cases model/window/batch ...` and the timing options of the scripts that time
    chosen cases with `time_case` (loop_rewrites.py, step_floor.py)."""
    parser.add_argument("--cases", nargs="+", default=cases, help="model/window/batch")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=8)


def peak_rss_mb(variant: str, model_name: str, window: int, batch: int, steps: int) -> float:
    """Peak resident memory (MB) of a fresh process that builds `variant` and runs `steps`
    steps: the figure `/usr/bin/time -v` reports as "Maximum resident set size"."""
    child = [sys.executable, __file__, "--child", variant, model_name, str(window), str(batch)]
    done = subprocess.run(child + [str(steps)], check=True, capture_output=True, text=True)
    return int(done.stdout.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"only {len(QUICK)} cases")
    parser.add_argument("--json", action="store_true", help="print the cases as JSON")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per variant")
    parser.add_argument("--steps", type=int, default=None, help="steps per round")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per variant")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--windows", nargs="+", type=int, default=list(WINDOWS))
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--precision", default="float32", help="the Keras dtype policy")
    parser.add_argument("--no-fast", action="store_true", help="the engine's plain path")
    parser.add_argument("--memory", action="store_true", help="peak RSS, keras_fit vs engine")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()

    config = TrainConfig(precision=args.precision, fast=not args.no_fast)
    apply_precision(config.precision)
    if args.child:
        variant, model_name, window, batch, steps = args.child
        windows, targets = batch_of(int(window), int(batch))
        step = make_variant(variant, model_name, windows, targets, config)
        for _ in range(int(steps)):
            step()
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        return
    if args.memory:
        for model_name in args.models:
            for variant in ("keras_fit", "engine_custom_cells"):
                for window in args.windows:
                    for batch in args.batches:
                        megabytes = peak_rss_mb(variant, model_name, window, batch, 50)
                        label = f"{model_name:<8}{window:>4}{batch:>5}  {variant:<22}"
                        print(f"{label}{megabytes:8.0f} MB peak RSS", flush=True)
        return

    rounds = args.rounds or (5 if args.quick else 7)
    steps = args.steps or (5 if args.quick else 10)
    grid = (
        QUICK
        if args.quick
        else [(m, w, b) for m in args.models for w in args.windows for b in args.batches]
    )
    cases = []
    if not args.json:
        print(
            f"ms per training step: median [min-max] of {rounds} rounds of {steps} steps, "
            f"variants interleaved, after {args.warmup} warm-up steps; ratio = median / "
            f"keras_fit median; precision {config.precision}, engine fast={config.fast}; "
            f"{tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()} "
            f"CPU threads",
            flush=True,
        )
        print(
            f"{'model':<8}{'window':>7}{'batch':>6}  {'variant':<21}{'median':>9}"
            f"{'range':>19}{'ratio':>8}",
            flush=True,
        )
    for model_name, window, batch in grid:
        variants = list(args.variants)
        if "keras_fit" not in variants:
            variants.insert(0, "keras_fit")  # the reference of every ratio
        per_step = time_case(
            model_name, window, batch, variants, rounds, steps, args.warmup, config
        )
        reference = statistics.median(per_step["keras_fit"])
        for variant in variants:
            times = per_step[variant]
            case = {"model": model_name, "window": window, "batch": batch, "variant": variant}
            cases.append(
                {**case, **timing_figures("step_ms", times, reference, "ratio_to_keras_fit")}
            )
            if not args.json:
                row = f"{model_name:<8}{window:>7}{batch:>6}  {variant:<21}"
                print(row + timing_columns(times, reference), flush=True)
    if args.json:
        print(json.dumps({"cases": cases}, indent=1))


if __name__ == "__main__":
    main()
