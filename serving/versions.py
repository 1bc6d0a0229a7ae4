"""Which versions of a model exist and which of them its policy serves, as TF Serving's
file-system source and version policies decide (docs/serving.md).
"""

from __future__ import annotations

import os
from pathlib import Path

from tensorflow_serving.config import model_server_config_pb2


def complete_versions(base_path: Path) -> dict[int, Path]:
    """Integer-named directories holding a SavedModel; others (temporary names, versions
    still being written, stray files) are ignored until they are complete."""
    versions = {}
    try:
        entries = list(os.scandir(base_path))
    except OSError:
        return versions
    for entry in entries:
        # ASCII digits only ("²" is a digit to str.isdigit), within TF Serving's int64.
        if not (entry.name.isascii() and entry.name.isdigit()) or not entry.is_dir():
            continue
        if int(entry.name) >= 2**63:
            continue
        path = Path(entry.path)
        # saved_model.pb is written last by tf.saved_model.save; without it the version
        # is still being written (or was copied in without the rename TF Serving expects).
        if (path / "saved_model.pb").is_file():
            versions[int(entry.name)] = path
    return versions


def aspired_versions(
    config: model_server_config_pb2.ModelConfig, complete: dict[int, Path]
) -> list[int]:
    """The versions the policy wants served, newest first."""
    newest_first = sorted(complete, reverse=True)
    policy = config.model_version_policy.WhichOneof("policy_choice")
    if policy == "all":
        return newest_first
    if policy == "specific":
        wanted = set(config.model_version_policy.specific.versions)
        return [version for version in newest_first if version in wanted]
    count = config.model_version_policy.latest.num_versions if policy == "latest" else 1
    return newest_first[: max(count, 1)]


def fingerprint(path: Path) -> tuple:
    """Changes when a version directory's contents change, so a failed load is retried."""
    return tuple(
        sorted((str(p.relative_to(path)), p.stat().st_size) for p in path.rglob("*") if p.is_file())
    )
