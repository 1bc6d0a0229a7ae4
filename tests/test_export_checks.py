"""The verification checks one by one: the comparison, check 1's child process on its own,
and the TF1 session that checks 2 and 4 share.

The version comes from an unverified export of test_export's small model.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_export import METADATA, WINDOW, course_like, small_model

from export import export_model, fresh_process_child
from export.check_fresh_process import check_fresh_process
from export.check_result import relative_difference
from export.check_session_loader import ServingSession, check_session_loader
from export.check_warmup import check_warmup, read_warmup_requests
from export.verify import in_process_reference
from export.warmup import example_requests

CHILD = str(Path(fresh_process_child.__file__).resolve())


@pytest.fixture(scope="module")
def version_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("checks") / "small"
    return export_model(
        small_model(), base, METADATA, verify=False, example_series=course_like(40)
    ).path


def run_isolated(*args, cwd) -> subprocess.CompletedProcess:
    """`python -I ARGS` from `cwd`, as check 1 starts its child."""
    return subprocess.run(
        [sys.executable, "-I", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_relative_difference_is_the_cells_definition():
    reference = np.array([[2.0, -4.0], [1.0, 0.0]])
    assert relative_difference(reference, reference) == 0.0
    # max|got - reference| / max|reference|: 0.4 / 4
    assert relative_difference(reference + [[0.0, 0.4], [0.0, 0.0]], reference) == pytest.approx(
        0.1
    )
    # An all-zero reference gives the absolute difference, not a division by a tiny number.
    assert relative_difference(np.array([0.5, -2.0]), np.zeros(2)) == 2.0
    assert relative_difference(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_difference(np.zeros((0, 2)), np.zeros((0, 2))) == 0.0
    assert relative_difference(np.zeros(2), np.zeros(3)) == math.inf
    for bad in (np.nan, np.inf, -np.inf):
        assert relative_difference(np.array([bad, 1.0]), np.ones(2)) == math.inf
        assert relative_difference(np.ones(2), np.array([1.0, bad])) == math.inf
    # float64 throughout: float32 inputs are not compared in float32.
    got = np.array([1.0 + 2**-20], np.float32)
    assert relative_difference(got, np.ones(1, np.float32)) == pytest.approx(2**-20)


def test_the_child_alone_reproduces_the_signatures(version_dir, tmp_path):
    requests, error = read_warmup_requests(version_dir)
    assert error is None and len(requests) == 2
    np.savez(
        tmp_path / "inputs.npz",
        **{
            f"{index}.{request.signature}.{name}": value
            for index, request in enumerate(requests)
            for name, value in request.inputs.items()
        },
    )
    empty = tmp_path / "cwd"
    empty.mkdir()
    child = run_isolated(
        CHILD,
        str(version_dir),
        str(tmp_path / "inputs.npz"),
        str(tmp_path / "outputs.npz"),
        cwd=empty,
    )
    assert child.returncode == 0, child.stderr
    assert list(empty.iterdir()) == []
    references = in_process_reference(version_dir, requests)
    with np.load(tmp_path / "outputs.npz") as outputs:
        assert sorted(outputs.files) == ["0.serving_default.forecast", "1.forecast.forecast"]
        for index, request in enumerate(requests):
            got = outputs[f"{index}.{request.signature}.forecast"]
            np.testing.assert_array_equal(got, references[index]["forecast"])
    assert references[1]["forecast"].shape == (requests[1].inputs["series"].shape[0], 3)
    assert requests[0].inputs["window"].shape[1] > WINDOW


BLOCKED_IMPORT = """
import runpy, sys

child = runpy.run_path(sys.argv[1])  # the child's functions; its main does not run
if sys.argv[2] == "block":
    child["block_packages"]()
for name in sys.argv[3:]:
    try:
        __import__(name)
    except ImportError:
        print(name, "blocked")
    else:
        print(name, "imported")
"""


def test_export_cannot_be_imported_once_the_child_blocks_it(tmp_path):
    names = ("export", "export.errors", "engine", "cells", "serving")
    blocked = run_isolated("-c", BLOCKED_IMPORT, CHILD, "block", *names, cwd=tmp_path)
    assert blocked.returncode == 0, blocked.stderr
    assert blocked.stdout.splitlines() == [f"{name} blocked" for name in names]
    # Without the block, seqcast is importable in a `python -I` process: the block matters.
    control = run_isolated("-c", BLOCKED_IMPORT, CHILD, "no-block", "export", cwd=tmp_path)
    assert control.returncode == 0, control.stderr
    assert control.stdout.splitlines() == ["export imported"]


def test_the_shared_session_is_loaded_once_and_serves_checks_2_and_4(version_dir):
    requests, error = read_warmup_requests(version_dir)
    references = in_process_reference(version_dir, requests)
    with ServingSession(version_dir) as session:
        session_result = check_session_loader(session, requests, references)
        meta_graph = session.meta_graph
        warmup_result = check_warmup(session, requests, error)
        assert session.meta_graph is meta_graph  # not loaded again for check 4
    assert session_result.passed and session_result.max_relative_difference <= 1e-6
    assert warmup_result.passed, warmup_result.detail


def test_a_version_the_session_loader_cannot_load_fails_checks_2_and_4(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"not a SavedModel")
    with ServingSession(tmp_path) as session:
        session_result = check_session_loader(session, [], [])
        warmup_result = check_warmup(session, [], "unread")
    for result in (session_result, warmup_result):
        assert not result.passed
        assert result.detail.startswith("the session loader failed: ")
        assert "\n" not in result.detail
    assert (session_result.name, warmup_result.name) == ("session_loader", "warmup")
    _, error = read_warmup_requests(tmp_path)
    assert error.startswith("the warmup file does not parse: ")


def test_a_version_the_fresh_process_cannot_load_fails_check_1(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"not a SavedModel")
    requests = example_requests(WINDOW)
    result = check_fresh_process(tmp_path, requests, [np.zeros(1)] * len(requests))
    assert not result.passed and result.name == "fresh_process"
    assert result.detail.startswith("the fresh process failed (exit 1): ")
    assert "\n" not in result.detail and result.seconds > 0
