"""Run the `engine` command line as a user does: a fresh process, output captured."""

import subprocess
import sys

import pytest


def run_engine(*args, cwd=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


def engine_in_process(capsys, *args) -> tuple[int, str, str]:
    """`engine ARGS` through the console entry point, in this process (TensorFlow is
    already imported here, which saves a slow start-up): `(exit status, stdout, stderr)`."""
    from engine.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(list(args))
        raise SystemExit(0)
    captured = capsys.readouterr()
    return done.value.code or 0, captured.out, captured.err
