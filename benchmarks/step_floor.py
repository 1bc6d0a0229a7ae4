"""The floor of a training step: the work every step equivalent to Keras's must do, timed.

A recurrent training step computes, whichever way it is written (Keras's `tf.while_loop`,
our unrolled cells, a fused kernel), the same matrix products: `x W` and `h U` for every time
step and layer, and their gradients. And it evaluates the same gate activations: every
sigmoid and tanh of the forward pass. This script reads those ops (`MatMul`, `Sigmoid`,
`Tanh`) from the engine's traced step (`engine_custom_cells` of benchmarks/train_step.py,
the unrolled fast path), times each distinct op and shape on this machine at full throughput
(many independent copies in one graph, so both cores stay busy and no op waits on another),
and adds them up: the time that work takes as TensorFlow ops if nothing else ran and nothing
waited. Every other op of the step (gate arithmetic, gradients of the activations, sums,
the loss, the optimizer) comes on top.

Then, in the same process, it times the Keras way (`keras_fit`, (a)) and the engine
(`engine_custom_cells`, (d)) as benchmarks/train_step.py does, and prints

- `products_ms`, `activations_ms`, `floor_ms`: that work, and its sum;
- `floor/(a)`: the least (d)/(a) a step equivalent to Keras's could reach here; where it
  is near or above 0.5, halving Keras's step is out of reach on this machine;
- `(d)/(a)` and `(d)-floor`: where the engine is, and what its step spends beyond the floor.

    python benchmarks/step_floor.py [--cases lstm/64/256 gru/20/256 ...] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tensorflow as tf  # noqa: E402
import train_step  # noqa: E402 - benchmarks/train_step.py: the same models, data and steps

from engine.training.config import TrainConfig  # noqa: E402

CASES = [
    f"{model}/{window}/{batch}"
    for model in train_step.MODELS
    for window in train_step.WINDOWS
    for batch in train_step.BATCHES
]
ACTIVATIONS = {"Sigmoid": tf.sigmoid, "Tanh": tf.tanh}


def floor_ops(concrete_function) -> collections.Counter:
    """`Counter((op type, shape) -> count)` of the `MatMul`, `Sigmoid` and `Tanh` ops in a
    traced function's graph; a product's shape is `(m, k, n)` for `[m, k] x [k, n]`."""
    ops = collections.Counter()
    for op in concrete_function.graph.get_operations():
        if op.type == "MatMul":
            a, b = (tensor.shape.as_list() for tensor in op.inputs)
            m, k = reversed(a) if op.get_attr("transpose_a") else a
            n = b[0] if op.get_attr("transpose_b") else b[1]
            shape = (m, k, n)
        elif op.type in ACTIVATIONS:
            shape = tuple(op.outputs[0].shape.as_list())
        else:
            continue
        if None in shape:
            raise SystemExit(f"{op.name}: a {op.type} of unknown shape {shape}")
        ops[(op.type, shape)] += 1
    return ops


def op_microseconds(op_type: str, shape: tuple, copies: int = 64, rounds: int = 15) -> float:
    """Microseconds per op at full throughput: `copies` independent ops in one graph (each
    on its own operand, so none can be merged with another), less the same graph without
    them. Each copy must be read for it to run at all (TensorFlow prunes what nothing
    reads): both graphs read one element of each copy and sum them, so the difference is
    the ops alone. Best of `rounds` runs of each graph."""
    if op_type == "MatMul":
        m, k, n = shape
        operands = tf.random.normal([copies, m, k])
        right = tf.random.normal([k, n])

        def apply(x):
            return tf.matmul(x, right)

    else:
        operands = tf.random.normal([copies, *shape])
        apply = ACTIVATIONS[op_type]

    def graph(with_ops: bool):
        @tf.function
        def run(operands):
            outputs = tf.unstack(operands)
            if with_ops:
                outputs = [apply(x) for x in outputs]
            return tf.add_n([tf.reshape(y, [-1])[0] for y in outputs])

        run(operands).numpy()
        return run

    with_ops, without = graph(True), graph(False)
    best = {with_ops: float("inf"), without: float("inf")}
    for _ in range(rounds):
        for run in best:
            start = time.perf_counter()
            run(operands).numpy()
            best[run] = min(best[run], time.perf_counter() - start)
    return max(best[with_ops] - best[without], 0.0) / copies * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    train_step.add_case_arguments(parser, CASES)
    parser.add_argument("--json", action="store_true", help="print the cases as JSON")
    args = parser.parse_args()
    config = TrainConfig()
    timings: dict[tuple, float] = {}
    rows = []
    if not args.json:
        print(
            f"{'case':<15}{'products':>9}{'GFLOP':>7}{'prod ms':>9}{'act ms':>8}{'floor':>7}"
            f"{'(a) ms':>8}{'(d) ms':>8}{'floor/(a)':>10}{'(d)/(a)':>9}{'(d)-floor':>10}",
            flush=True,
        )
    for case in args.cases:
        model_name, window, batch = case.split("/")
        window, batch = int(window), int(batch)
        windows, targets = train_step.batch_of(window, batch)
        engine = train_step.make_variant(
            "engine_custom_cells", model_name, windows, targets, config
        )
        ops = floor_ops(engine.train_step.get_concrete_function(windows, targets))
        for op in ops:
            if op not in timings:
                timings[op] = op_microseconds(*op)
        products = {op: n for op, n in ops.items() if op[0] == "MatMul"}
        activations = {op: n for op, n in ops.items() if op[0] != "MatMul"}
        products_ms = sum(n * timings[op] for op, n in products.items()) / 1e3
        activations_ms = sum(n * timings[op] for op, n in activations.items()) / 1e3
        gflop = sum(n * 2 * m * k * p for (_, (m, k, p)), n in products.items()) / 1e9
        floor_ms = products_ms + activations_ms
        per_step = train_step.time_case(
            model_name, window, batch, ["keras_fit", "engine_custom_cells"],
            args.rounds, args.steps, args.warmup, config,
        )  # fmt: skip
        keras_ms = statistics.median(per_step["keras_fit"])
        engine_ms = statistics.median(per_step["engine_custom_cells"])
        row = {
            "model": model_name,
            "window": window,
            "batch": batch,
            "matmuls": sum(products.values()),
            "matmul_gflop": round(gflop, 3),
            "activations": sum(activations.values()),
            "products_ms": round(products_ms, 2),
            "activations_ms": round(activations_ms, 2),
            "floor_ms": round(floor_ms, 2),
            "keras_fit_ms": round(keras_ms, 2),
            "engine_ms": round(engine_ms, 2),
            "floor_to_keras_fit": round(floor_ms / keras_ms, 3),
            "engine_to_keras_fit": round(engine_ms / keras_ms, 3),
        }
        rows.append(row)
        if not args.json:
            print(
                f"{case:<15}{row['matmuls']:>9}{gflop:>7.2f}{products_ms:>9.1f}"
                f"{activations_ms:>8.1f}{floor_ms:>7.1f}{keras_ms:>8.1f}{engine_ms:>8.1f}"
                f"{floor_ms / keras_ms:>10.2f}{engine_ms / keras_ms:>9.2f}"
                f"{engine_ms - floor_ms:>10.1f}",
                flush=True,
            )
    if args.json:
        print(json.dumps({"cases": rows}, indent=1))


if __name__ == "__main__":
    main()
