"""Inference latency: our exported model's `serving_default` against Keras's predict_on_batch.

For each course model it builds the model from our cells, exports it with `export_model`
(the SavedModel `engine export` writes), loads it back with `tf.saved_model.load` and calls
its `serving_default` signature, as a serving process does; the reference is the same
architecture from the Keras built-ins, with the same weights, called through
`model.predict_on_batch`. Batches of 1 and 256 windows; every variant is warmed up first,
then rounds of calls run interleaved; the table gives the median and the range of the
per-call time over the rounds.

    python benchmarks/inference.py [--quick] [--json] [--window 20] [--rounds 7] [--calls 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from timing import timing_columns, timing_figures  # noqa: E402 - benchmarks/timing.py

from engine.model.builders import build_model  # noqa: E402
from export import export_model  # noqa: E402

MODELS = ("rnn", "bilstm", "lstm", "gru")
BATCHES = (1, 256)
VARIANTS = ("keras_predict_on_batch", "exported_serving_default")


def runners(model_name: str, window: int, base: Path) -> dict:
    """`variant -> callable(windows np.float32 [batch, window]) -> np [batch, 1]`."""
    ours = build_model(model_name, "custom", scale=2.0, offset=1.0)
    keras_model = build_model(model_name, "keras", scale=2.0, offset=1.0)
    keras_model.set_weights(ours.get_weights())
    export_model(ours, base / model_name, {"window_size": window}, verify=False)
    serving = tf.saved_model.load(str(base / model_name / "1")).signatures["serving_default"]

    def exported(windows):
        return serving(window=tf.constant(windows))["forecast"].numpy()

    return {
        "keras_predict_on_batch": keras_model.predict_on_batch,
        "exported_serving_default": exported,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="rnn and lstm only, fewer rounds")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--calls", type=int, default=20, help="calls per round")
    args = parser.parse_args()
    models = ["rnn", "lstm"] if args.quick else args.models
    rounds = args.rounds or (3 if args.quick else 7)

    rng = np.random.default_rng(0)
    cases = []
    if not args.json:
        print(
            f"ms per call: median [min-max] of {rounds} rounds of {args.calls} calls, "
            f"window {args.window}; ratio = median / keras_predict_on_batch median"
        )
        print(f"{'model':<8}{'batch':>6}  {'variant':<26}{'median':>9}{'range':>19}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as base:
        for model_name in models:
            run = runners(model_name, args.window, Path(base))
            for batch in BATCHES:
                windows = np.cumsum(rng.normal(size=(batch, args.window)), axis=1)
                windows = windows.astype("float32")
                outputs = {variant: run[variant](windows) for variant in VARIANTS}  # warm-up
                same = np.allclose(*outputs.values(), rtol=1e-4, atol=1e-4)
                times = {variant: [] for variant in VARIANTS}
                for _ in range(rounds):
                    for variant in VARIANTS:
                        start = time.perf_counter()
                        for _ in range(args.calls):
                            run[variant](windows)
                        times[variant].append((time.perf_counter() - start) / args.calls * 1e3)
                reference = statistics.median(times["keras_predict_on_batch"])
                for variant in VARIANTS:
                    figures = timing_figures("call_ms", times[variant], reference, "ratio_to_keras")
                    case = {"model": model_name, "batch": batch, "variant": variant}
                    cases.append({**case, **figures, "same_forecast": bool(same)})
                    if not args.json:
                        columns = timing_columns(times[variant], reference)
                        print(f"{model_name:<8}{batch:>6}  {variant:<26}{columns}", flush=True)
    if args.json:
        print(json.dumps({"cases": cases}, indent=1))


if __name__ == "__main__":
    main()
