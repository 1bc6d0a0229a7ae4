"""Version directories under a model base path, and publishing one atomically.

TensorFlow Serving watches `<base>/<version>/` and treats only integer names as versions. A
version is written under a temporary, non-integer name beside its target
(`.seqcast-export-v<N>-pid<P>-<host>-<token>`) and renamed into place once complete, so a
watching server never sees a partial version. A killed export leaves only such a temporary
directory, which no server loads; the next export on the same host removes it once the
process that made it is gone.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import socket
from pathlib import Path

from export.errors import ExportError

TEMP_PREFIX = ".seqcast-export-"
# TF Serving parses version directory names as int64.
MAX_VERSION = 2**63 - 1
_VERSION_NAME = re.compile(r"^[0-9]+$")
_TEMP_NAME = re.compile(
    r"^"
    + re.escape(TEMP_PREFIX)
    + r"v(?P<version>[0-9]+)-pid(?P<pid>[0-9]+)-(?P<host>.+)-[0-9a-f]{8}$"
)


def parse_version(value) -> int:
    """`value` (an int or a string of digits) as a version number, else ExportError."""
    if isinstance(value, bool):
        raise ExportError(f"--version must be a non-negative integer, got {value!r}")
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if not _VERSION_NAME.match(text):
            raise ExportError(f"--version must be a non-negative integer, got {value!r}")
        number = int(text)
    if not 0 <= number <= MAX_VERSION:
        raise ExportError(f"--version must be between 0 and {MAX_VERSION}, got {number}")
    return number


def existing_versions(base_path: Path) -> dict[int, Path]:
    """Integer-named directories under `base_path`: `{version: path}` (others are ignored)."""
    if not base_path.is_dir():
        return {}
    return {
        int(entry.name): entry
        for entry in base_path.iterdir()
        if _VERSION_NAME.match(entry.name) and entry.is_dir()
    }


def prepare_base_path(base_path) -> Path:
    """Create `base_path` if needed and make sure we can write into it; else ExportError."""
    path = Path(base_path)
    if path.exists() and not path.is_dir():
        raise ExportError(f"model base path {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(
            f"cannot create model base path {path}: {error.strerror or error}"
        ) from error
    if not os.access(path, os.W_OK | os.X_OK):
        raise ExportError(f"model base path {path} is not writable")
    return path


def choose_version(base_path: Path, requested=None) -> int:
    """The requested version if it is free, else ExportError; by default the next integer
    after the highest present (1 for an empty base path)."""
    present = existing_versions(base_path)
    if requested is None:
        return max(present, default=0) + 1
    number = parse_version(requested)
    if number in present:
        raise ExportError(
            f"version {number} already exists at {present[number]}; versions are never "
            "overwritten (choose another --version or leave it out for the next one)"
        )
    return number


def check_target(base_path, version=None) -> tuple[Path, int]:
    """The checks of bad input that need no model: a writable base path and a free version.
    Returns `(base_path, version)`; raises ExportError."""
    base = prepare_base_path(base_path)
    return base, choose_version(base, version)


def make_temp_dir(base_path: Path, version: int) -> Path:
    """A fresh temporary directory beside the target, named so no server takes it for a
    version and so a later export can tell whether its writer is still alive."""
    host = socket.gethostname() or "host"
    name = f"{TEMP_PREFIX}v{version}-pid{os.getpid()}-{host}-{secrets.token_hex(4)}"
    path = base_path / name
    try:
        path.mkdir()
    except OSError as error:
        raise ExportError(f"cannot write into model base path {base_path}: {error}") from error
    return path


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_temp_dirs(base_path: Path) -> list[Path]:
    """Remove temporary directories left by killed exports on this host; returns them.

    Directories of live processes, or made on another host (a shared file system), are left
    alone: their writer may still be working.
    """
    host = socket.gethostname() or "host"
    removed = []
    for entry in base_path.iterdir():
        match = _TEMP_NAME.match(entry.name)
        if not match or not entry.is_dir() or match["host"] != host:
            continue
        if _process_alive(int(match["pid"])):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def publish(temp_dir: Path, target: Path) -> None:
    """Rename the complete `temp_dir` to `target` in one step; never replace a version."""
    if target.exists():
        raise ExportError(f"version {target.name} appeared at {target} while exporting")
    try:
        os.rename(temp_dir, target)
    except OSError as error:
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise ExportError(
                f"version {target.name} appeared at {target} while exporting"
            ) from error
        raise
    # Make the rename itself durable before reporting success.
    try:
        directory = os.open(target.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)
