"""Check 1, `fresh_process`: the version loads where none of seqcast's packages can.

A new `python -I` process runs `fresh_process_child.py` in an empty temporary directory:
it makes `engine`, `cells`, `export` and `serving` unimportable, loads the version with
`tf.saved_model.load` and calls the signatures on the requests; its results must equal
the reference.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from export import fresh_process_child
from export.check_result import CheckResult, compare_results, seconds_since
from export.errors import first_line

CHILD_TIMEOUT_S = 300
LABEL = "tf.saved_model.load in a fresh python -I without " + "/".join(
    fresh_process_child.BLOCKED_PACKAGES
)


def child_command(version_dir: Path, inputs_path: Path, outputs_path: Path) -> list[str]:
    """The command line of the fresh process (run it from an empty directory)."""
    return [
        sys.executable,
        "-I",  # no PYTHON* variables, no script or current directory on sys.path
        str(Path(fresh_process_child.__file__).resolve()),
        str(Path(version_dir).resolve()),
        str(inputs_path),
        str(outputs_path),
    ]


def _failed(detail: str, start: float) -> CheckResult:
    return CheckResult("fresh_process", False, detail, seconds=seconds_since(start))


def check_fresh_process(version_dir: Path, requests, references) -> CheckResult:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="seqcast-verify-") as scratch:
        scratch = Path(scratch)
        inputs_path, outputs_path = scratch / "inputs.npz", scratch / "outputs.npz"
        empty = scratch / "cwd"
        empty.mkdir()
        np.savez(
            inputs_path,
            **{
                f"{index}.{request.signature}.{name}": value
                for index, request in enumerate(requests)
                for name, value in request.inputs.items()
            },
        )
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("PYTHON")
        }
        environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            child = subprocess.run(
                child_command(version_dir, inputs_path, outputs_path),
                cwd=empty,
                env=environment,
                capture_output=True,
                text=True,
                timeout=CHILD_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return _failed(f"the fresh process did not finish within {CHILD_TIMEOUT_S} s", start)
        if child.returncode != 0:
            # Python prints the exception that ended the process last.
            stderr = child.stderr.strip()
            reason = first_line(stderr.splitlines()[-1]) if stderr else "no output"
            return _failed(f"the fresh process failed (exit {child.returncode}): {reason}", start)
        results = [{} for _ in requests]
        with np.load(outputs_path) as outputs:
            for key in outputs.files:
                index, _, name = key.split(".", 2)
                results[int(index)][name] = outputs[key]
    return compare_results("fresh_process", LABEL, results, references, start)
