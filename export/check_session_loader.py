"""Check 2, `session_loader`: the version runs as TensorFlow Serving's C++ loader runs it.

The TF1 loader (`tf.compat.v1.saved_model.loader.load`, tag `serve`, a fresh graph and
session) and `session.run` on the SignatureDef's tensor names give the reference's results,
and the SignatureDefs have the contract's input and output names, dtypes and defaults.
`ServingSession` is that loaded version; check 4 runs the warmup records in the same one.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.python.util import deprecation

from export.check_result import CheckResult, compare_results, seconds_since
from export.errors import first_line
from export.graph import BAND_INPUTS, COVERAGE, FORECAST, SIGNATURE_INPUTS, signature_outputs
from export.intervals import DEFAULT_COVERAGE
from export.warmup import Request

LABEL = "tf.compat.v1 loader (tag serve) + session.run on SignatureDef tensor names"


class ServingSession:
    """A version loaded with the TF1 loader, once, on first use; `close()` (or leaving a
    `with` block) frees it. Loading is left to the first check that needs it, so it is
    timed, and fails, as part of that check."""

    def __init__(self, version_dir):
        self.version_dir = Path(version_dir)
        self._graph = tf.Graph()
        self._session = None
        self._meta_graph = None
        self._load_error = None

    def __enter__(self) -> ServingSession:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def load_error(self) -> str | None:
        """Load the version unless done already; None, or why loading failed in one line."""
        if self._session is None:
            self._session = tf.compat.v1.Session(graph=self._graph)
            try:
                # The TF1 loader is deprecated for Python users, and is what TF Serving runs.
                with self._graph.as_default(), deprecation.silence():
                    self._meta_graph = tf.compat.v1.saved_model.loader.load(
                        self._session, ["serve"], str(self.version_dir)
                    )
            except Exception as error:  # noqa: BLE001 - reported as the checks' failure
                self._load_error = (
                    f"the session loader failed: {type(error).__name__}: {first_line(error)}"
                )
        return self._load_error

    @property
    def meta_graph(self):
        """The loaded MetaGraphDef (the version is loaded if need be)."""
        self.load_error()
        return self._meta_graph

    def run(self, request: Request) -> dict[str, np.ndarray]:
        """`session.run` of the request's signature, fed and fetched by tensor name: every
        output of the signature, by alias (inputs left out take their defaults)."""
        definition = self.meta_graph.signature_def[request.signature]
        feeds = {definition.inputs[name].name: value for name, value in request.inputs.items()}
        aliases = sorted(definition.outputs)
        fetched = self._session.run([definition.outputs[a].name for a in aliases], feeds)
        return dict(zip(aliases, fetched))

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


def signature_problems(meta_graph, with_band: bool = False) -> list[str]:
    """How the MetaGraphDef's SignatureDefs differ from the contract ([] when they do not);
    `with_band`: the model was calibrated, so `forecast` has `coverage`, `lower`, `upper`."""
    problems = []
    for signature, inputs in SIGNATURE_INPUTS.items():
        if signature not in meta_graph.signature_def:
            problems.append(f"no signature {signature!r}")
            continue
        definition = meta_graph.signature_def[signature]
        if with_band and signature == FORECAST:
            inputs = {**inputs, **BAND_INPUTS}
        if set(definition.inputs) != set(inputs):
            problems.append(f"{signature} inputs are {sorted(definition.inputs)}")
        for name, dtype in inputs.items():
            if (
                name in definition.inputs
                and definition.inputs[name].dtype != dtype.as_datatype_enum
            ):
                problems.append(f"{signature} input {name} is not {dtype.name}")
        if set(definition.outputs) != set(signature_outputs(signature, with_band)):
            problems.append(f"{signature} outputs are {sorted(definition.outputs)}")
        expected_defaults = {COVERAGE} if with_band and signature == FORECAST else set()
        if set(definition.defaults) != expected_defaults:
            problems.append(f"{signature} has defaults for {sorted(definition.defaults)}")
        elif expected_defaults:
            default = float(tf.make_ndarray(definition.defaults[COVERAGE]))
            if default != np.float32(DEFAULT_COVERAGE):
                problems.append(f"{signature}'s default coverage is {default}")
    return problems


def check_session_loader(
    session: ServingSession, requests, references, with_band: bool = False
) -> CheckResult:
    start = time.perf_counter()
    load_error = session.load_error()
    if load_error is not None:
        return CheckResult("session_loader", False, load_error)
    problems = signature_problems(session.meta_graph, with_band)
    if problems:
        detail = "signatures differ from the contract: " + "; ".join(problems)
        return CheckResult("session_loader", False, detail, seconds=seconds_since(start))
    try:
        results = [session.run(request) for request in requests]
    except Exception as error:  # noqa: BLE001 - reported as the check's failure
        detail = f"session.run failed: {type(error).__name__}: {first_line(error)}"
        return CheckResult("session_loader", False, detail, seconds=seconds_since(start))
    return compare_results("session_loader", LABEL, results, references, start)
