"""`engine export`: --verify-only on an exported version, and bad input as exit 2.

Exporting a run dir end to end is tested with the training engine's runs; here the version
comes from `export_model` on a small Keras model.
"""

from __future__ import annotations

import json

import keras
import pytest
from cli_runner import engine_in_process

from export import export_model


@pytest.fixture(scope="module")
def version_dir(tmp_path_factory):
    """An unverified export of a tiny model: version 1 under `<tmp>/models`."""
    keras.utils.set_random_seed(0)
    values = keras.Input(shape=(None,))
    hidden = keras.layers.Reshape((-1, 1))(values)
    hidden = keras.layers.SimpleRNN(3)(hidden)
    model = keras.Model(values, keras.layers.Dense(1)(hidden))
    base = tmp_path_factory.mktemp("cli") / "models"
    return export_model(model, base, {"window_size": 5, "model": "rnn"}, verify=False).path


def test_verify_only_passes_all_four_checks_as_json(version_dir, capsys):
    status, out, err = engine_in_process(
        capsys, "export", "--verify-only", str(version_dir), "--json"
    )
    assert status == 0, err
    report = json.loads(out)
    assert report["passed"] is True
    assert [check["name"] for check in report["checks"]] == [
        "fresh_process",
        "session_loader",
        "standard_ops",
        "warmup",
    ]
    assert all(check["passed"] for check in report["checks"])
    assert report["checks"][0]["max_relative_difference"] <= report["tolerance"] == 1e-6


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--version", "two"], "--version must be a non-negative integer"),
        (["--version", "1"], "version 1 already exists"),
    ],
)
def test_bad_version_is_one_line_and_exit_2(version_dir, tmp_path, capsys, extra, fragment):
    status, out, err = engine_in_process(
        capsys, "export", str(tmp_path), "--model-base-path", str(version_dir.parent), *extra
    )
    assert (status, out) == (2, "")
    assert fragment in err
    assert len(err.strip().splitlines()) == 1


def test_unwritable_base_path_is_one_line_and_exit_2(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    base = str(blocker / "models")
    status, _, err = engine_in_process(capsys, "export", str(tmp_path), "--model-base-path", base)
    assert status == 2
    assert err.startswith("engine: error: cannot create model base path")
    assert len(err.strip().splitlines()) == 1
