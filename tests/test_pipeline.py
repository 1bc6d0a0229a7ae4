"""The whole job through the command line, as a user runs it: train -> export -> serve ->
forecast over gRPC, with the served forecast equal to the exported model's own."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from cli_runner import run_engine
from serving_fixtures import free_port

SMALL = ["--model", "gru", "--units", "8", "--layers", "1", "--epochs", "2", "--quiet"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    run_dir, base = root / "run", root / "models" / "seqcast"
    # Keras cells on purpose: export must rebuild them with ours and say so.
    trained = run_engine("train", *SMALL, "--cells", "keras", "--run-dir", str(run_dir))
    assert trained.returncode == 0, trained.stderr
    result = run_engine("export", str(run_dir), "--model-base-path", str(base), "--json")
    assert result.returncode == 0, result.stderr
    return run_dir, base, json.loads(result.stdout)


def test_export_of_a_trained_run_passes_every_check(exported):
    run_dir, base, report = exported
    assert (base / "1" / "saved_model.pb").is_file()
    assert (base / "1" / "assets.extra" / "tf_serving_warmup_requests").is_file()
    metadata = json.loads((base / "1" / "assets.extra" / "seqcast.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert metadata["window_size"] == 20
    assert metadata["validation"]["val_mae"] == pytest.approx(summary["val_mae"])
    assert "rebuilt with seqcast cells" in json.dumps(report)


def test_served_forecast_equals_the_exported_model(exported):
    _, base, _ = exported
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", "--model-base-path", str(base),
         "--model-name", "seqcast", "--port", str(port), "--poll-seconds", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            result = run_engine(
                "forecast", "--server", f"127.0.0.1:{port}", "--model-name", "seqcast",
                "--horizon", "7", "--json", "--timeout", "5",
            )  # fmt: skip
            if result.returncode == 0 or time.monotonic() > deadline:
                break
            assert server.poll() is None, server.stderr.read()
            time.sleep(0.5)
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert answer["model_spec"]["name"] == "seqcast"
        assert str(answer["model_spec"]["version"]) == "1"
        served = np.asarray(answer["forecast"], dtype="float32")
        assert served.shape == (1, 7)

        from engine.series.course import course_series

        _, series = course_series()
        loaded = tf.saved_model.load(str(base / "1"))
        # A restored signature function needs every input, `coverage` too (a server feeds
        # the SignatureDef's default, 0.9); the restored `forecast` method keeps the default.
        inputs = {"series": tf.constant(series[None, :], tf.float32), "horizon": tf.constant(7)}
        local = loaded.signatures["forecast"](**inputs, coverage=tf.constant(0.9))
        np.testing.assert_allclose(served, local["forecast"].numpy(), rtol=1e-6)
        for key in ("lower", "upper"):
            served_band = np.asarray(answer[key], dtype="float32")
            np.testing.assert_allclose(served_band, local[key].numpy(), rtol=1e-6)
            np.testing.assert_allclose(served_band, loaded.forecast(**inputs)[key], rtol=1e-6)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            assert server.wait(timeout=30) == 0
        finally:
            if server.poll() is None:
                server.kill()


def test_export_refuses_an_existing_version(exported):
    run_dir, base, _ = exported
    before = sorted(os.listdir(base))
    result = run_engine("export", str(run_dir), "--model-base-path", str(base), "--version", "1")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(os.listdir(base)) == before
