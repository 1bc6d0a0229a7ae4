"""Versions coming and going while the server runs: discovery, hot swap, failed loads,
health, clean shutdown, TLS and the `engine serve` process; which versions a policy serves."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import serving_fixtures as fixtures
import tensorflow as tf
from google.protobuf import text_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving.client import ForecastClient, ServingClientError
from serving.config import single_model_config
from serving.manager import aspired_versions
from serving.server import ModelServer

MODEL = "swap"
POLL_SECONDS = 0.2
WEIGHTS = {1: (2.0, 0.5), 2: (0.5, -1.0), 3: (1.5, 0.0)}
REPO = Path(__file__).resolve().parents[1]


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def health_status(channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


@pytest.fixture(scope="module")
def base_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("swap") / MODEL
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def server(base_path):
    events: list[str] = []
    server = ModelServer(
        single_model_config(MODEL, str(base_path)),
        port=0,
        poll_seconds=POLL_SECONDS,
        on_event=events.append,
    )
    server.events = events
    with server:
        yield server


@pytest.fixture(scope="module")
def client(server):
    with ForecastClient(server.address, timeout=30.0) as client:
        yield client


def test_versions_appear_and_swap_under_load(server, client, base_path):
    # Nothing on disk yet: health says NOT_SERVING and requests get NOT_FOUND.
    assert health_status(client.channel) == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(ServingClientError) as caught:
        client.forecast(MODEL, np.ones((1, 8)), 2)
    assert caught.value.details == f"Servable not found for request: Latest({MODEL})"

    fixtures.write_version(base_path, 1, *WEIGHTS[1])
    assert wait_for(lambda: server.manager.available()[MODEL] == [1])
    assert wait_for(
        lambda: health_status(client.channel) == health_pb2.HealthCheckResponse.SERVING, 10
    )

    # Four clients send requests for at least 5 s while version 2 is exported.
    results: list[list[tuple[int, bool]]] = [[] for _ in range(4)]
    errors: list[str] = []
    stop = threading.Event()

    def worker(index: int) -> None:
        rng = np.random.default_rng(index)
        while not stop.is_set():
            series = rng.normal(10.0, 3.0, size=(2, 6)).astype(np.float32)
            try:
                result = client.forecast(MODEL, series, 3)
            except ServingClientError as error:
                errors.append(str(error))
                continue
            expected = fixtures.reference_forecast(series, 3, *WEIGHTS[result.version])
            matches = np.allclose(result.values, expected, rtol=1e-4, atol=1e-4)
            results[index].append((result.version, matches))

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        fixtures.write_version(base_path, 2, *WEIGHTS[2])
        # Run for 5 s, and on until every client has seen the new version (bounded).
        wait_for(
            lambda: (
                time.monotonic() - started >= 5.0
                and all(rows and rows[-1][0] == 2 for rows in results)
            ),
            timeout=60,
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    assert not errors, errors[:3]
    for rows in results:
        versions = [version for version, _ in rows]
        assert all(matches for _, matches in rows)  # each answer is right for its version
        assert versions[0] == 1 and versions[-1] == 2
        assert versions == sorted(versions)  # never back to the old version
    assert server.manager.available()[MODEL] == [2]
    assert client.status(MODEL) == {1: "END", 2: "AVAILABLE"}
    assert list(client.status(MODEL)) == [2, 1]  # newest first, as TF Serving lists them
    # The new version was AVAILABLE before the old one went.
    assert server.events.index(
        next(e for e in server.events if e.startswith(f"loaded {MODEL} version 2"))
    ) < server.events.index(f"unloaded {MODEL} version 1")


def test_incomplete_and_non_integer_directories_are_never_loaded(server, client, base_path):
    assert server.manager.available()[MODEL] == [2]
    # A version still being written in place (no saved_model.pb yet) ...
    source = fixtures.write_version(base_path.parent / "staging", 3, *WEIGHTS[3])
    partial = base_path / "3"
    partial.mkdir()
    shutil.copytree(source / "variables", partial / "variables")
    # ... and complete SavedModels under names that are not versions.
    shutil.copytree(source, base_path / "tmp-4")
    shutil.copytree(source, base_path / "5.backup")
    time.sleep(6 * POLL_SECONDS)
    assert server.manager.available()[MODEL] == [2]
    assert 3 not in client.status(MODEL)
    assert client.forecast(MODEL, np.ones((1, 8)), 1).version == 2

    # Once complete, it is loaded and takes over.
    shutil.copytree(source / "assets.extra", partial / "assets.extra")
    shutil.copy(source / "saved_model.pb", partial / "saved_model.pb")
    assert wait_for(lambda: server.manager.available()[MODEL] == [3])
    series = np.arange(8, dtype=np.float32)[None, :]
    result = client.forecast(MODEL, series, 2)
    assert result.version == 3
    np.testing.assert_allclose(
        result.values, fixtures.reference_forecast(series, 2, *WEIGHTS[3]), rtol=1e-5
    )


def test_failing_warmup_fails_the_load_and_keeps_the_old_version(server, client, base_path):
    bad = prediction_log_pb2.PredictionLog()
    request = bad.predict_log.request
    request.model_spec.signature_name = "forecast"
    request.inputs["series"].CopyFrom(tf.make_tensor_proto(np.ones((1, 8), np.float32)))
    request.inputs["horizon"].CopyFrom(tf.make_tensor_proto(np.int32(0)))
    fixtures.write_version(base_path, 6, 1.0, 0.0, warmup=[bad])
    assert wait_for(lambda: client.status(MODEL).get(6) == "END")
    assert server.manager.available()[MODEL] == [3]
    assert client.forecast(MODEL, np.ones((1, 8)), 1).version == 3
    assert any("failed to load swap version 6" in event for event in server.events)
    assert health_status(client.channel) == health_pb2.HealthCheckResponse.SERVING


def test_stop_finishes_in_flight_requests(tmp_path):
    fixtures.write_version(tmp_path / "m", 1, 1.0, 0.0)
    server = ModelServer(single_model_config("m", str(tmp_path / "m")), port=0).start()
    try:
        channel = grpc.insecure_channel(server.address)
        client = ForecastClient(server.address, timeout=60)
        # Stop only once the server holds the request: a fixed sleep let a loaded machine
        # stop the server while the request was still on its way, which is not in flight.
        arrived, resolve = threading.Event(), server.manager.resolve
        server.manager.resolve = lambda spec: (arrived.set(), resolve(spec))[1]
        # A long autoregressive forecast keeps the request busy while we stop.
        pending = threading.Thread(
            target=lambda: setattr(
                pending, "result", client.forecast("m", np.ones((1, 8), np.float32), 60000)
            )
        )
        pending.start()
        assert arrived.wait(timeout=30)
        time.sleep(0.1)
        assert pending.is_alive()  # still in flight when the server is told to stop
        server.stop(grace=30.0)
        pending.join(timeout=60)
        assert pending.result.values.shape == (1, 60000)
        with pytest.raises(ServingClientError) as caught:
            ForecastClient(server.address, timeout=2).forecast("m", np.ones((1, 8)), 1)
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        channel.close()
    finally:
        server.stop(grace=0)


def test_tls(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost"],
        check=True,
        capture_output=True,
    )
    fixtures.write_version(tmp_path / "m", 1, 1.0, 0.0)
    server = ModelServer(
        single_model_config("m", str(tmp_path / "m")),
        port=0,
        tls_cert=str(cert),
        tls_key=str(key),
    ).start()
    try:
        target = f"localhost:{server.port}"
        with ForecastClient(target, timeout=30, root_certificates=cert.read_bytes()) as client:
            assert client.forecast("m", np.ones((1, 8)), 2).values.shape == (1, 2)
        with ForecastClient(target, timeout=5) as plaintext:
            with pytest.raises(ServingClientError) as caught:
                plaintext.forecast("m", np.ones((1, 8)), 2)
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(grace=0)


def test_engine_serve_process(tmp_path):
    """The real command: ready line, a version picked up live, SIGTERM -> clean exit 0."""
    base = tmp_path / "model"
    fixtures.write_version(base, 1, *WEIGHTS[1])
    port = fixtures.free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "engine", "serve", "--model-base-path", str(base)]
    command += ["--model-name", "demo", "--port", str(port), "--poll-seconds", "0.2"]
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line.rstrip())
            if "ready on" in line:
                break
        assert (
            lines[-1] == f"engine serve: ready on 127.0.0.1:{port} (plaintext): demo versions [1]"
        )
        assert any(line.startswith("engine serve: loaded demo version 1") for line in lines)
        with ForecastClient(f"127.0.0.1:{port}", timeout=30) as client:
            assert client.forecast("demo", np.ones((1, 8)), 2).version == 1
        fixtures.write_version(base, 2, *WEIGHTS[2])
        for line in process.stdout:
            lines.append(line.rstrip())
            if line.startswith("engine serve: unloaded demo version 1"):
                break
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
        lines += out.splitlines()
        assert process.returncode == 0
        assert any(line.startswith("engine serve: loaded demo version 2") for line in lines)
        assert lines[-1] == "engine serve: stopped"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("", [5]),
        ("model_version_policy { latest { num_versions: 2 } }", [5, 3]),
        ("model_version_policy { all {} }", [5, 3, 1]),
        ("model_version_policy { specific { versions: 1 versions: 4 } }", [1]),
    ],
)
def test_version_policies(policy, expected):
    config = text_format.Parse(
        f'name: "m" base_path: "/x" {policy}', model_server_config_pb2.ModelConfig()
    )
    complete = {version: f"/x/{version}" for version in (1, 3, 5)}
    assert aspired_versions(config, complete) == expected
