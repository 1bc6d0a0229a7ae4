"""export/: the SavedModel contract, versions, the four checks, and atomic publishing.

One small model is exported (and verified) once for the module; most tests read that
version. The model mimics the engine's: raw values `[batch, time]` in, a custom layer doing
the scaling and expand_dims, a Keras LSTM, and the unscaling inside the model.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2

from export import ExportError, VerificationFailed, export_model
from export.check_result import RELATIVE_TOLERANCE, relative_difference
from export.check_standard_ops import check_standard_ops, graph_def_ops
from export.graph import build_serving_module, cpu_servable
from export.verify import CHECK_NAMES, keras_reference
from export.versions import (
    TEMP_PREFIX,
    check_target,
    existing_versions,
    parse_version,
    remove_stale_temp_dirs,
)
from export.warmup import Request, read_warmup

WINDOW = 6
METADATA = {
    "window_size": WINDOW,
    "model": "lstm",
    "precision": "float32",
    "data": "synthetic course series",
    "validation": {"val_mae": 5.1, "val_mse": 44.0},
    "config": {"units": 4},
}


@keras.saving.register_keras_serializable(package="seqcast_test")
class ScaleToSteps(keras.layers.Layer):
    """Raw `[batch, time]` -> scaled `[batch, time, 1]`, as the engine's input layer does."""

    def __init__(self, mean=0.0, std=1.0, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.std = mean, std

    def call(self, values):
        return keras.ops.expand_dims((values - self.mean) / self.std, -1)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


def tiny_model(seed: int = 3) -> keras.Model:
    keras.utils.set_random_seed(seed)
    values = keras.Input(shape=(None,))
    hidden = ScaleToSteps(50.0, 20.0)(values)
    hidden = keras.layers.LSTM(4)(hidden)
    hidden = keras.layers.Dense(1)(hidden)
    return keras.Model(values, keras.layers.Rescaling(20.0, offset=50.0)(hidden))


def small_model() -> keras.Model:
    """Quicker to trace than `tiny_model`, for tests about files rather than numbers."""
    values = keras.Input(shape=(None,))
    hidden = keras.layers.Reshape((-1, 1))(values)
    hidden = keras.layers.GlobalAveragePooling1D()(hidden)
    return keras.Model(values, keras.layers.Dense(1)(hidden))


def course_like(length: int, seed: int = 0) -> np.ndarray:
    time_steps = np.arange(length)
    noise = np.random.RandomState(seed).randn(length)
    return (30 + 0.1 * time_steps + 20 * np.sin(time_steps / 9) + 3 * noise).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def published(model, tmp_path_factory):
    """One verified export of the tiny model: `(result, progress lines)`."""
    lines = []
    base = tmp_path_factory.mktemp("models") / "tiny"
    result = export_model(
        model, base, METADATA, progress=lines.append, example_series=course_like(40)
    )
    return result, lines


@pytest.fixture(scope="module")
def loaded(published):
    return tf.saved_model.load(str(published[0].path))


def integer_dirs(base) -> list[str]:
    return sorted(entry.name for entry in base.iterdir() if entry.name.isdigit())


# ---- the default export passes all four checks ----------------------------------------------


def test_default_export_passes_all_four_checks(published):
    result, lines = published
    report = result.report
    assert report.passed
    assert [check.name for check in report.checks] == list(CHECK_NAMES)
    for check in report.checks[:2]:  # the two that compare numbers
        assert check.max_relative_difference <= RELATIVE_TOLERANCE
    assert result.version == 1 and result.path.name == "1"
    for part in ("saved_model.pb", "variables", "assets.extra/tf_serving_warmup_requests"):
        assert (result.path / part).exists(), part
    # Only the published version is left: no temporary directory beside it.
    assert sorted(entry.name for entry in result.path.parent.iterdir()) == ["1"]
    assert report.version_dir == str(result.path)
    for fragment in ("check 1/4", "check 2/4", "check 3/4", "check 4/4", "publishing"):
        assert any(fragment in line for line in lines), fragment
    assert "non-cuDNN" in result.graph_note


def test_each_check_reports_its_verdict_in_order(published):
    _, lines = published
    first = next(index for index, line in enumerate(lines) if line.startswith("check 1/4"))
    checks = lines[first : first + 8]
    assert [line.split(":")[0] for line in checks[::2]] == [f"check {n}/4" for n in (1, 2, 3, 4)]
    verdicts = checks[1::2]
    assert all(line.startswith("  passed: ") for line in verdicts), checks
    assert "fresh python -I" in verdicts[0] and "tf.compat.v1 loader" in verdicts[1]
    assert "distinct standard ops" in verdicts[2] and "PredictionLog records" in verdicts[3]
    assert lines[first + 8].startswith("publishing")


def test_seqcast_json_records_run_and_versions(published):
    result, _ = published
    document = json.loads((result.path / "assets.extra" / "seqcast.json").read_text())
    assert document["window_size"] == WINDOW
    for key in ("model", "precision", "data", "validation", "config"):
        assert document[key] == METADATA[key]
    assert set(document["versions"]) == {"seqcast", "tensorflow", "keras"}
    assert document["versions"]["tensorflow"] == tf.__version__
    assert document["export"]["version"] == 1
    assert set(document["export"]["verification"]) == set(CHECK_NAMES)


def test_signatures_have_the_contract_names_and_shapes(loaded):
    assert set(loaded.signatures) == {"serving_default", "forecast"}
    expected = {
        "serving_default": {"window": (tf.float32, [None, None])},
        "forecast": {"series": (tf.float32, [None, None]), "horizon": (tf.int32, [])},
    }
    for name, inputs in expected.items():
        function = loaded.signatures[name]
        specs = function.structured_input_signature[1]
        assert {key: (spec.dtype, spec.shape.as_list()) for key, spec in specs.items()} == inputs
        assert list(function.structured_outputs) == ["forecast"]


@pytest.mark.parametrize("batch, extra", [(1, 0), (3, 9)])
def test_variable_batch_and_time_match_the_keras_model(loaded, model, batch, extra):
    series = np.stack([course_like(WINDOW + extra, seed=row) for row in range(batch)])
    window = loaded.signatures["serving_default"](window=tf.constant(series))["forecast"]
    want = keras_reference(model, WINDOW, Request("serving_default", {"window": series}))
    assert window.shape == (batch, 1)
    assert relative_difference(window.numpy(), want["forecast"]) <= RELATIVE_TOLERANCE

    inputs = {"series": series, "horizon": np.array(5, np.int32)}
    got = loaded.signatures["forecast"](**{k: tf.constant(v) for k, v in inputs.items()})
    want = keras_reference(model, WINDOW, Request("forecast", inputs))
    assert got["forecast"].shape == (batch, 5)
    assert relative_difference(got["forecast"].numpy(), want["forecast"]) <= RELATIVE_TOLERANCE
    # The first forecast step is serving_default's next value.
    np.testing.assert_allclose(got["forecast"].numpy()[:, :1], window.numpy(), rtol=1e-6)


def _bad_calls():
    good = course_like(WINDOW + 2)[None, :]
    nan, inf = good.copy(), good.copy()
    nan[0, 1], inf[0, -1] = np.nan, np.inf
    short = good[:, : WINDOW - 1]
    return [
        ("forecast", {"series": good, "horizon": 0}, "`horizon` must be at least 1"),
        ("forecast", {"series": good, "horizon": -4}, "`horizon` must be at least 1"),
        ("forecast", {"series": short, "horizon": 3}, f"needs at least {WINDOW} values"),
        ("serving_default", {"window": short}, f"needs at least {WINDOW} values"),
        ("serving_default", {"window": nan}, "must hold finite values"),
        ("forecast", {"series": inf, "horizon": 2}, "must hold finite values"),
    ]


@pytest.mark.parametrize("signature, inputs, message", _bad_calls())
def test_the_graph_rejects_bad_input_with_invalid_argument(loaded, signature, inputs, message):
    feeds = {
        name: tf.constant(value, tf.int32 if name == "horizon" else tf.float32)
        for name, value in inputs.items()
    }
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures[signature](**feeds)


def test_warmup_file_has_one_real_request_per_signature(published):
    path = published[0].path / "assets.extra" / "tf_serving_warmup_requests"
    logs = [
        prediction_log_pb2.PredictionLog.FromString(record)
        for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
    ]
    requests = {log.predict_log.request.model_spec.signature_name: log for log in logs}
    assert len(logs) == 2 and set(requests) == {"serving_default", "forecast"}
    forecast = requests["forecast"].predict_log.request
    assert forecast.model_spec.name == "tiny"
    assert set(forecast.inputs) == {"series", "horizon"}
    series = tf.make_ndarray(forecast.inputs["series"])
    assert series.dtype == np.float32 and series.shape[1] > WINDOW
    # The example series' end, as given: real values, not zeros.
    np.testing.assert_array_equal(series[0], course_like(40)[-series.shape[1] :])
    assert int(tf.make_ndarray(forecast.inputs["horizon"])) >= 1


# ---- versions and bad input -----------------------------------------------------------------


def test_versions_count_up_and_are_never_overwritten(tmp_path):
    base = tmp_path / "models"
    for name in ("3", "notes", TEMP_PREFIX + "v9-pid1-elsewhere-0123abcd"):
        (base / name).mkdir(parents=True)
    (base / "3" / "saved_model.pb").write_bytes(b"version 3")
    # Non-integer names are neither versions nor in the way: the next one follows 3.
    assert export_model(small_model(), base, METADATA, verify=False).version == 4
    with pytest.raises(ExportError, match="version 3 already exists"):
        export_model(small_model(), base, METADATA, version="3", verify=False)
    assert (base / "3" / "saved_model.pb").read_bytes() == b"version 3"
    assert check_target(base, "007")[1] == 7 and check_target(base)[1] == 5
    assert integer_dirs(base) == ["3", "4"]
    # Another host's temporary directory may belong to a live export: it stays.
    assert (base / (TEMP_PREFIX + "v9-pid1-elsewhere-0123abcd")).is_dir()


@pytest.mark.parametrize("value", ["abc", "1.5", "-1", "", " ", True, -3, 2**63])
def test_bad_version_values_are_export_errors(value):
    with pytest.raises(ExportError, match="--version"):
        parse_version(value)


def test_unwritable_base_path_is_an_export_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ExportError, match="not a directory"):
        check_target(blocker)
    with pytest.raises(ExportError, match="cannot create"):
        check_target(blocker / "models")
    if os.geteuid() != 0:  # root writes through any mode bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ExportError, match="not writable"):
            check_target(locked)


def test_verifying_a_directory_without_a_saved_model_is_an_export_error(tmp_path):
    from export import verify_version

    with pytest.raises(ExportError, match="no saved_model.pb"):
        verify_version(tmp_path)


@pytest.mark.parametrize("metadata", [{}, {"window_size": "6"}, {"window_size": 0}])
def test_metadata_without_a_window_size_is_an_export_error(model, tmp_path, metadata):
    with pytest.raises(ExportError, match="window_size"):
        export_model(model, tmp_path / "models", metadata)
    assert not (tmp_path / "models").exists() or integer_dirs(tmp_path / "models") == []


def test_a_failed_check_publishes_nothing(tmp_path, monkeypatch):
    import export.exporter
    from export.verify import CheckResult, VerificationReport

    def failing(version_dir, reference_model=None, progress=None, residuals=None):
        report = VerificationReport(str(version_dir), "test")
        report.checks = [CheckResult(name, name != "warmup", "test") for name in CHECK_NAMES]
        return report

    monkeypatch.setattr(export.exporter, "verify_version", failing)
    base = tmp_path / "models"
    with pytest.raises(VerificationFailed, match="warmup") as raised:
        export_model(small_model(), base, METADATA)
    assert not raised.value.report.passed
    assert list(base.iterdir()) == []  # neither a version nor the temporary directory


# ---- check 3: standard ops only -------------------------------------------------------------


def test_op_scan_rejects_custom_and_cudnn_ops(published, tmp_path):
    source = published[0].path / "saved_model.pb"
    assert check_standard_ops(published[0].path).passed
    for op in ("SeqcastCustomOp", "CudnnRNNV3"):
        saved_model = saved_model_pb2.SavedModel.FromString(source.read_bytes())
        function = saved_model.meta_graphs[0].graph_def.library.function[0]
        function.node_def[0].op = op
        (tmp_path / op).mkdir()
        (tmp_path / op / "saved_model.pb").write_bytes(saved_model.SerializeToString())
        result = check_standard_ops(tmp_path / op)
        assert not result.passed and op in result.detail


def test_a_gpu_trace_would_carry_cudnn_ops_and_export_avoids_them(monkeypatch):
    """Keras picks CudnnRNN* whenever a GPU is visible at trace time; pretend one is."""
    import importlib

    # The module, not the `rnn` function its package exports under the same name.
    rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")
    monkeypatch.setattr(rnn, "_is_gpu_available", lambda: True)
    model = tiny_model(seed=5)
    lstm = next(layer for layer in model.layers if isinstance(layer, keras.layers.LSTM))

    def ops_of(module_and_signatures) -> set:
        _, signatures = module_and_signatures
        graph = signatures["forecast"].get_concrete_function().graph
        return set(graph_def_ops(graph.as_graph_def()))

    as_is = ops_of(build_serving_module(model, WINDOW))
    assert any(op.startswith("CudnnRNN") for op in as_is)
    with cpu_servable(model) as note:
        assert lstm.use_cudnn is False
        forced = ops_of(build_serving_module(model, WINDOW))
    assert not any(op.startswith("Cudnn") for op in forced)
    assert "non-cuDNN" in note and lstm.name in note
    assert lstm.use_cudnn == "auto"  # the model is left as it was


# ---- atomic publishing: a killed export leaves no version -----------------------------------

KILLED_EXPORT = """
import sys
import keras
from export import export_model

values = keras.Input(shape=(None,))
hidden = keras.layers.Reshape((-1, 1))(values)
hidden = keras.layers.GlobalAveragePooling1D()(hidden)
model = keras.Model(values, keras.layers.Dense(1)(hidden))
export_model(model, sys.argv[1], {"window_size": 4}, progress=lambda line: print(line, flush=True))
"""


def test_sigkill_half_way_leaves_no_version(tmp_path):
    base = tmp_path / "models"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_EXPORT, str(base)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its verification subprocess is killed with it
    )
    seen, deadline = [], time.monotonic() + 240
    try:
        # Kill it while the first check runs: the SavedModel is complete in the temporary
        # directory, nothing is published yet.
        while time.monotonic() < deadline and not any("check 1/4" in s for s in seen):
            ready, _, _ = select.select([child.stdout], [], [], 1.0)
            if ready:
                line = child.stdout.readline()
                if not line:
                    break
                seen.append(line)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert any("check 1/4" in line for line in seen), seen
    assert child.returncode == -signal.SIGKILL
    assert existing_versions(base) == {}
    leftovers = [entry for entry in base.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(TEMP_PREFIX)
    assert (leftovers[0] / "saved_model.pb").exists()  # it was half-way, not at the start
    # The next export on this host removes the dead writer's directory.
    assert remove_stale_temp_dirs(base) == leftovers and list(base.iterdir()) == []


# ---- a calibrated model: the band in the graph, checked by all four checks -----------------


def test_a_band_is_exported_checked_and_recorded(tmp_path):
    from export.check_session_loader import (
        ServingSession,
        check_session_loader,
        signature_problems,
    )
    from export.verify import verify_version

    model = small_model()
    residuals = np.abs(np.random.default_rng(2).normal(size=(20, 4)))
    calibration = {"residuals": residuals, "points": 23, "method": "split conformal (test)"}
    result = export_model(
        model, tmp_path / "m", METADATA, example_series=course_like(40), calibration=calibration
    )
    assert result.report.passed
    assert "(7 outputs)" in result.report.checks[0].detail  # 1 + 3 + 3: the band is compared
    facts = json.loads((result.path / "assets.extra" / "seqcast.json").read_text())
    assert facts["calibration"] == {
        "points": 23,
        "method": "split conformal (test)",
        "origins": 20,
        "horizon": 4,
        "default_coverage": 0.9,
    }
    requests = read_warmup(result.path / "assets.extra" / "tf_serving_warmup_requests")
    assert [sorted(r.inputs) for r in requests][1:] == [
        ["horizon", "series"],
        ["coverage", "horizon", "series"],
    ]
    with ServingSession(result.path) as session:
        assert signature_problems(session.meta_graph, with_band=True) == []
        assert signature_problems(session.meta_graph) == [
            "forecast inputs are ['coverage', 'horizon', 'series']",
            "forecast outputs are ['forecast', 'lower', 'upper']",
            "forecast has defaults for ['coverage']",
        ]

    # A band other than the calibration's fails the comparison, the forecast being right.
    wrong = [keras_reference(model, WINDOW, r, residuals * 1.01) for r in requests]
    with ServingSession(result.path) as session:
        failed = check_session_loader(session, requests, wrong, with_band=True)
    assert not failed.passed and failed.max_relative_difference > 1e-4
    assert verify_version(result.path).passed  # against itself, loaded in process


def test_the_python_example_of_export_md_runs_as_written(tmp_path, monkeypatch):
    from doc_snippets import python_block

    monkeypatch.chdir(tmp_path)
    names = {"model": small_model()}
    exec(python_block("export.md", "In Python"), names)  # the page's `model`: any Keras model
    result = names["result"]
    assert (result.version, str(result.path), result.report.passed) == (
        1, "models/seqcast/1", True,
    )  # fmt: skip
