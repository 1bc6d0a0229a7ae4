"""The four checks an exported version must pass before it is published.

1. `fresh_process`: a new `python -I` process, started in an empty temporary directory with
   `engine`, `cells`, `export` and `serving` made unimportable, loads the version with
   `tf.saved_model.load` and calls both signatures; results equal the reference.
2. `session_loader`: the TF1 loader (`tf.compat.v1.saved_model.loader.load`, tag `serve`, a
   fresh graph and session, `session.run` on the SignatureDef's tensor names), the path
   TensorFlow Serving's C++ loader takes, gives the same results; the SignatureDefs have
   the contract's input and output names and dtypes.
3. `standard_ops`: every op in the graph and its function library is a standard TensorFlow
   op (one of `tf.raw_ops`), and none is a `CudnnRNN*` op.
4. `warmup`: the warmup file parses, holds one request per signature, and each one runs.

The requests are the ones in the warmup file. The reference is the Keras model when one is
given (the autoregressive forecast is then computed step by step in Python, independently
of the graph's loop), else the SavedModel loaded in this process. Results agree when
`max|got - reference| <= 1e-6 * max|reference|` for each request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.util import deprecation

from export.errors import ExportError
from export.graph import FORECAST, OUTPUT_KEY, SERVING_DEFAULT, SIGNATURE_INPUTS
from export.warmup import WARMUP_FILE, Request, read_warmup

RELATIVE_TOLERANCE = 1e-6
BLOCKED_PACKAGES = ("engine", "cells", "export", "serving")
CHILD_TIMEOUT_S = 300
METADATA_FILE = "seqcast.json"
CHECK_NAMES = ("fresh_process", "session_loader", "standard_ops", "warmup")

# Run by the fresh interpreter: it must never import our packages, so it is plain source
# written into an empty directory, not a module of ours.
CHILD_SOURCE = r"""
import sys

BLOCKED = sys.argv[4].split(",")
for name in BLOCKED:
    sys.modules[name] = None  # any import of these now raises ImportError

import importlib
import os

for name in BLOCKED:
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    sys.exit(f"{name} is importable in the verification process")

import numpy as np
import tensorflow as tf

version_dir, inputs_path, outputs_path = sys.argv[1:4]
loaded = tf.saved_model.load(version_dir)
outputs = {}
with np.load(inputs_path) as inputs:
    keys = sorted(inputs.files, key=lambda key: int(key.split(".")[0]))
    calls = {}
    for key in keys:
        index, signature, name = key.split(".", 2)
        calls.setdefault((int(index), signature), {})[name] = tf.constant(inputs[key])
for (index, signature), feeds in sorted(calls.items()):
    result = loaded.signatures[signature](**feeds)
    outputs[f"{index}.{signature}"] = result["forecast"].numpy()
loaded_ours = [
    name for name, module in sys.modules.items()
    if module is not None and name.split(".")[0] in BLOCKED
]
if loaded_ours:
    sys.exit(f"the verification process loaded {loaded_ours}")
np.savez(outputs_path, **outputs)
"""


@dataclass
class CheckResult:
    """One check: `passed`, a one-line `detail`, and where it compares results the largest
    relative difference seen."""

    name: str
    passed: bool
    detail: str
    max_relative_difference: float | None = None
    seconds: float = 0.0


@dataclass
class VerificationReport:
    """All four checks of one version directory."""

    version_dir: str
    reference: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return len(self.checks) == len(CHECK_NAMES) and all(c.passed for c in self.checks)

    def failures(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.passed]

    def to_dict(self) -> dict:
        return {
            "version_dir": self.version_dir,
            "reference": self.reference,
            "passed": self.passed,
            "tolerance": RELATIVE_TOLERANCE,
            "checks": [asdict(check) for check in self.checks],
        }


def relative_difference(got, reference) -> float:
    """`max|got - reference| / max|reference|` (inf on a shape mismatch)."""
    got, reference = np.asarray(got, np.float64), np.asarray(reference, np.float64)
    if got.shape != reference.shape:
        return float("inf")
    if got.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(reference))), np.finfo(np.float32).tiny)
    return float(np.max(np.abs(got - reference)) / scale)


def read_metadata(version_dir: Path) -> dict:
    """`assets.extra/seqcast.json` of a version ({} when absent)."""
    path = version_dir / "assets.extra" / METADATA_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


# ---- check 3: standard ops only -------------------------------------------------------------

_STANDARD_OPS = None


def standard_ops() -> frozenset:
    """Names of the ops that ship with TensorFlow itself: those with a `tf.raw_ops` entry.
    Ops of a loaded custom library are registered too, but never get one."""
    global _STANDARD_OPS
    if _STANDARD_OPS is None:
        _STANDARD_OPS = frozenset(name for name in dir(tf.raw_ops) if not name.startswith("_"))
    return _STANDARD_OPS


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
    counts = graph_ops(version_dir / "saved_model.pb")
    bad = rejected_ops(counts)
    if bad:
        detail = f"rejected ops: {', '.join(bad)}"
    else:
        detail = f"{sum(counts.values())} nodes, {len(counts)} distinct standard ops, no CudnnRNN*"
    return CheckResult(
        "standard_ops", not bad, detail, seconds=round(time.perf_counter() - start, 3)
    )


# ---- references -----------------------------------------------------------------------------


def keras_reference(model, window_size: int, request: Request) -> np.ndarray:
    """What the signature should return, computed with the Keras model in Python."""
    if request.signature == SERVING_DEFAULT:
        window = request.inputs["window"][:, -window_size:]
        return np.asarray(model(tf.constant(window), training=False), np.float32)
    window = request.inputs["series"][:, -window_size:].astype(np.float32)
    steps = []
    for _ in range(int(request.inputs["horizon"])):
        next_value = np.asarray(model(tf.constant(window), training=False), np.float32)
        steps.append(next_value[:, 0])
        window = np.concatenate([window[:, 1:], next_value.reshape(-1, 1)], axis=1)
    return np.stack(steps, axis=1)


def in_process_reference(version_dir: Path, requests: list[Request]) -> list[np.ndarray]:
    loaded = tf.saved_model.load(str(version_dir))
    return [
        loaded.signatures[request.signature](
            **{name: tf.constant(value) for name, value in request.inputs.items()}
        )[OUTPUT_KEY].numpy()
        for request in requests
    ]


def _compare(name, label, results, references, start) -> CheckResult:
    differences = [relative_difference(got, want) for got, want in zip(results, references)]
    worst = max(differences, default=0.0)
    passed = len(results) == len(references) and worst <= RELATIVE_TOLERANCE
    detail = (
        f"{label}: {len(results)} requests, max relative difference {worst:.3g} "
        f"(tolerance {RELATIVE_TOLERANCE:g})"
    )
    return CheckResult(name, passed, detail, worst, round(time.perf_counter() - start, 3))


# ---- check 1: a fresh process without our packages ------------------------------------------


def check_fresh_process(version_dir: Path, requests, references) -> CheckResult:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="seqcast-verify-") as scratch:
        scratch = Path(scratch)
        (scratch / "verify_child.py").write_text(CHILD_SOURCE)
        arrays = {
            f"{index}.{request.signature}.{name}": value
            for index, request in enumerate(requests)
            for name, value in request.inputs.items()
        }
        np.savez(scratch / "inputs.npz", **arrays)
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("PYTHON")
        }
        environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        command = [
            sys.executable,
            "-I",  # no PYTHON* variables, no script or current directory on sys.path
            "verify_child.py",
            str(version_dir.resolve()),
            "inputs.npz",
            "outputs.npz",
            ",".join(BLOCKED_PACKAGES),
        ]
        try:
            child = subprocess.run(
                command,
                cwd=scratch,
                env=environment,
                capture_output=True,
                text=True,
                timeout=CHILD_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return CheckResult(
                "fresh_process",
                False,
                f"the fresh process did not finish within {CHILD_TIMEOUT_S} s",
                seconds=round(time.perf_counter() - start, 3),
            )
        if child.returncode != 0:
            lines = [line for line in child.stderr.strip().splitlines() if line.strip()]
            return CheckResult(
                "fresh_process",
                False,
                f"the fresh process failed (exit {child.returncode}): "
                f"{lines[-1] if lines else 'no output'}",
                seconds=round(time.perf_counter() - start, 3),
            )
        with np.load(scratch / "outputs.npz") as outputs:
            results = [
                outputs[f"{index}.{request.signature}"] for index, request in enumerate(requests)
            ]
    return _compare(
        "fresh_process",
        "tf.saved_model.load in a fresh python -I without engine/cells/export/serving",
        results,
        references,
        start,
    )


# ---- checks 2 and 4: the TF1 session loader, as TensorFlow Serving loads ----------------------


def _signature_problems(meta_graph) -> list[str]:
    problems = []
    for signature, inputs in SIGNATURE_INPUTS.items():
        if signature not in meta_graph.signature_def:
            problems.append(f"no signature {signature!r}")
            continue
        definition = meta_graph.signature_def[signature]
        if set(definition.inputs) != set(inputs):
            problems.append(f"{signature} inputs are {sorted(definition.inputs)}")
        for name, dtype in inputs.items():
            if (
                name in definition.inputs
                and definition.inputs[name].dtype != dtype.as_datatype_enum
            ):
                problems.append(f"{signature} input {name} is not {dtype.name}")
        if set(definition.outputs) != {OUTPUT_KEY}:
            problems.append(f"{signature} outputs are {sorted(definition.outputs)}")
    return problems


def _expected_shape(request: Request) -> tuple:
    batch = next(iter(v for k, v in request.inputs.items() if k != "horizon")).shape[0]
    if request.signature == FORECAST:
        return (batch, int(request.inputs["horizon"]))
    return (batch, 1)


def session_checks(
    version_dir: Path, requests, references, warmup_requests, warmup_error
) -> tuple[CheckResult, CheckResult]:
    """Load once with the TF1 loader; run the requests (check 2) and the warmup records
    (check 4)."""
    start = time.perf_counter()
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        try:
            # The TF1 loader is deprecated for Python users, and is still what TF Serving runs.
            with deprecation.silence():
                meta_graph = tf.compat.v1.saved_model.loader.load(
                    session, ["serve"], str(version_dir)
                )
        except Exception as error:  # noqa: BLE001 - reported as the check's failure
            detail = f"the session loader failed: {type(error).__name__}: {_first_line(error)}"
            return (
                CheckResult("session_loader", False, detail),
                CheckResult("warmup", False, detail),
            )

        def run(request: Request) -> np.ndarray:
            definition = meta_graph.signature_def[request.signature]
            feeds = {definition.inputs[name].name: value for name, value in request.inputs.items()}
            return session.run(definition.outputs[OUTPUT_KEY].name, feed_dict=feeds)

        problems = _signature_problems(meta_graph)
        if problems:
            session_result = CheckResult(
                "session_loader",
                False,
                "signatures differ from the contract: " + "; ".join(problems),
                seconds=round(time.perf_counter() - start, 3),
            )
        else:
            try:
                results = [run(request) for request in requests]
                session_result = _compare(
                    "session_loader",
                    "tf.compat.v1 loader (tag serve) + session.run on SignatureDef tensor names",
                    results,
                    references,
                    start,
                )
            except Exception as error:  # noqa: BLE001
                session_result = CheckResult(
                    "session_loader",
                    False,
                    f"session.run failed: {type(error).__name__}: {_first_line(error)}",
                    seconds=round(time.perf_counter() - start, 3),
                )

        start = time.perf_counter()
        if warmup_error is not None:
            warmup_result = CheckResult("warmup", False, warmup_error)
        else:
            warmup_result = _run_warmup(run, warmup_requests, start)
    return session_result, warmup_result


def _run_warmup(run, warmup_requests, start) -> CheckResult:
    signatures = sorted(request.signature for request in warmup_requests)
    if signatures != sorted(SIGNATURE_INPUTS):
        return CheckResult(
            "warmup", False, f"expected one record per signature, found {signatures}"
        )
    for index, request in enumerate(warmup_requests):
        try:
            output = run(request)
        except Exception as error:  # noqa: BLE001
            return CheckResult(
                "warmup",
                False,
                f"record {index} ({request.signature}) failed: {type(error).__name__}: "
                f"{_first_line(error)}",
            )
        if output.shape != _expected_shape(request) or not np.all(np.isfinite(output)):
            return CheckResult(
                "warmup",
                False,
                f"record {index} ({request.signature}) returned shape {output.shape}, "
                f"expected {_expected_shape(request)}, finite",
            )
    return CheckResult(
        "warmup",
        True,
        f"{len(warmup_requests)} PredictionLog records parsed and ran in the session loader",
        seconds=round(time.perf_counter() - start, 3),
    )


def _first_line(error: BaseException) -> str:
    """The line of an error message that says what went wrong (TensorFlow puts a generic
    "Graph execution error:" first)."""
    text = error.message if isinstance(error, tf.errors.OpError) else str(error)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    lines = [line for line in lines if line != "Graph execution error:"] or lines
    return lines[0] if lines else ""


# ---- all four -------------------------------------------------------------------------------


def verify_version(version_dir, reference_model=None, progress=None) -> VerificationReport:
    """Run the four checks on a version directory; returns the report (never raises for a
    failed check). Raises ExportError when `version_dir` is not a SavedModel directory."""
    say = progress or (lambda line: None)
    version_dir = Path(version_dir)
    if not (version_dir / "saved_model.pb").is_file():
        raise ExportError(f"{version_dir} is not a SavedModel version (no saved_model.pb)")
    metadata = read_metadata(version_dir)

    warmup_requests, warmup_error = [], None
    try:
        warmup_requests = read_warmup(version_dir / "assets.extra" / WARMUP_FILE)
    except Exception as error:  # noqa: BLE001 - a missing or malformed file fails check 4
        warmup_error = (
            f"the warmup file does not parse: {type(error).__name__}: {_first_line(error)}"
        )
    requests = warmup_requests
    if not requests:
        from export.warmup import example_requests

        if "window_size" not in metadata:
            raise ExportError(
                f"{version_dir} has neither warmup requests nor a window size in {METADATA_FILE}"
            )
        requests = example_requests(int(metadata["window_size"]))

    if reference_model is not None:
        if "window_size" not in metadata:
            raise ExportError(f"{version_dir} has no window_size in assets.extra/{METADATA_FILE}")
        reference = "the Keras model, called step by step in this process"
        window_size = int(metadata["window_size"])
        references = [keras_reference(reference_model, window_size, r) for r in requests]
    else:
        reference = "the SavedModel loaded with tf.saved_model.load in this process"
        references = in_process_reference(version_dir, requests)

    report = VerificationReport(str(version_dir), reference)
    say("check 1/4: loading in a fresh Python process without seqcast's packages")
    fresh = check_fresh_process(version_dir, requests, references)
    say(f"  {'passed' if fresh.passed else 'FAILED'}: {fresh.detail}")
    say("check 2/4: the TF1 session loader (TensorFlow Serving's path)")
    session_result, warmup_result = session_checks(
        version_dir, requests, references, warmup_requests, warmup_error
    )
    say(f"  {'passed' if session_result.passed else 'FAILED'}: {session_result.detail}")
    say("check 3/4: standard TensorFlow ops only")
    ops = check_standard_ops(version_dir)
    say(f"  {'passed' if ops.passed else 'FAILED'}: {ops.detail}")
    say("check 4/4: warmup requests")
    say(f"  {'passed' if warmup_result.passed else 'FAILED'}: {warmup_result.detail}")
    report.checks = [fresh, session_result, ops, warmup_result]
    return report
