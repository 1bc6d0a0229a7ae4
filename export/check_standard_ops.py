"""Check 3, `standard_ops`: the graph holds only ops that ship with TensorFlow itself.

Every op in every meta graph of `saved_model.pb` and its function library must be one of
`tf.raw_ops`, and none may be `CudnnRNN*`: a model traced with cuDNN cannot run on a CPU
server, and a custom op would need a library TensorFlow Serving does not have.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from export.check_result import CheckResult, seconds_since


@functools.cache
def standard_ops() -> frozenset:
    """Names of the ops that ship with TensorFlow itself: those with a `tf.raw_ops` entry.
    Ops of a loaded custom library are registered too, but never get one."""
    return frozenset(name for name in dir(tf.raw_ops) if not name.startswith("_"))


def graph_def_ops(graph_def) -> dict[str, int]:
    """Op name -> count over a GraphDef's nodes and its function library. Calls of library
    functions by name are not ops and are left out."""
    library = graph_def.library
    functions = {function.signature.name for function in library.function}
    nodes = list(graph_def.node)
    for function in library.function:
        nodes.extend(function.node_def)
    counts: dict[str, int] = {}
    for node in nodes:
        if node.op not in functions:
            counts[node.op] = counts.get(node.op, 0) + 1
    return counts


def graph_ops(saved_model_pb: Path) -> dict[str, int]:
    """Op name -> count over every meta graph of a `saved_model.pb`."""
    saved_model = saved_model_pb2.SavedModel.FromString(Path(saved_model_pb).read_bytes())
    counts: dict[str, int] = {}
    for meta_graph in saved_model.meta_graphs:
        for op, count in graph_def_ops(meta_graph.graph_def).items():
            counts[op] = counts.get(op, 0) + count
    return counts


def rejected_ops(counts: dict[str, int]) -> list[str]:
    """The ops of `counts` a CPU TensorFlow Serving cannot be trusted to run."""
    known = standard_ops()
    return sorted(op for op in counts if op.startswith("Cudnn") or op not in known)


def check_standard_ops(version_dir: Path) -> CheckResult:
    start = time.perf_counter()
    counts = graph_ops(Path(version_dir) / "saved_model.pb")
    bad = rejected_ops(counts)
    if bad:
        detail = f"rejected ops: {', '.join(bad)}"
    else:
        detail = f"{sum(counts.values())} nodes, {len(counts)} distinct standard ops, no CudnnRNN*"
    return CheckResult("standard_ops", not bad, detail, seconds=seconds_since(start))
