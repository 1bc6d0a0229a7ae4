"""Run the `engine` command line as a user does: a fresh process, output captured."""

import subprocess
import sys


def run_engine(*args, cwd=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )
