"""TF Serving's server flags on the embedded server and `engine serve`: a Unix socket besides
the port, gRPC channel arguments, re-reading models.config, tensor_content responses; each
accepted in TF Serving's spelling (`--grpc_socket_path`) and ours (`--grpc-socket-path`)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import serving_fixtures as fixtures
from cli_runner import engine_in_process

from serving.client import ForecastClient
from serving.config import single_model_config
from serving.errors import ServingConfigError
from serving.grpc_options import parse_channel_arguments
from serving.server import ModelServer


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def base_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("flags") / "m"
    fixtures.write_version(path, 1, 2.0, 0.5)
    return path


def test_channel_arguments_in_tf_servings_format():
    assert parse_channel_arguments("") == []
    assert parse_channel_arguments(
        "grpc.max_connection_age_ms=2000, grpc.primary_user_agent=seqcast,x=99999999999"
    ) == [
        ("grpc.max_connection_age_ms", 2000),  # an int32 goes as an int, as TF Serving does
        ("grpc.primary_user_agent", "seqcast"),
        ("x", "99999999999"),  # beyond int32: a string
    ]
    assert parse_channel_arguments("a=1,,b=-2,") == [("a", 1), ("b", -2)]  # empty items: none
    for bad in ("grpc.max_connection_age_ms", "=3", "a=1,b"):
        with pytest.raises(ServingConfigError, match="expected key=value"):
            parse_channel_arguments(bad)


def test_unix_socket_besides_the_port_with_channel_arguments(base_path, tmp_path):
    socket_path = tmp_path / "grpc.sock"
    server = ModelServer(
        single_model_config("m", str(base_path)),
        port=0,
        grpc_socket_path=str(socket_path),
        channel_arguments=parse_channel_arguments("grpc.max_connection_age_ms=60000"),
    )
    with server:
        for target in (server.address, f"unix:{socket_path}"):
            with ForecastClient(target, timeout=30) as client:
                assert client.forecast("m", np.ones((1, 8)), 2).values.shape == (1, 2)


def test_models_config_is_reread_while_serving(base_path, tmp_path):
    fixtures.write_version(tmp_path / "n", 4, 1.0, 0.0)
    config_file = tmp_path / "models.config"
    entry = 'config {{ name: "{}" base_path: "{}" model_platform: "tensorflow" }}'
    m, n = entry.format("m", base_path), entry.format("n", tmp_path / "n")
    one, two = f"model_config_list {{ {m} }}", f"model_config_list {{ {m} {n} }}"
    config_file.write_text(one)
    events: list[str] = []
    server = ModelServer(
        single_model_config("m", str(base_path)),  # what `one` says
        port=0,
        on_event=events.append,
        model_config_file=str(config_file),
        model_config_file_poll_wait_seconds=0.1,
    )
    with server:
        config_file.write_text(two)
        assert wait_for(lambda: server.manager.available().get("n") == [4])
        config_file.write_text("model_config_list { config { name: ")  # half-written
        assert wait_for(lambda: any(e.startswith("cannot reload") for e in events))
        assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in events[-1]
        assert server.manager.available() == {"m": [1], "n": [4]}  # the running config stays
        config_file.write_text(one)
        assert wait_for(lambda: "n" not in server.manager.available())


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--grpc_channel_arguments", "grpc.max_connection_age_ms"], "expected key=value"),
        (["--grpc-channel-arguments", "=1"], "expected key=value"),
        (["--model_config_file_poll_wait_seconds", "5"], "goes with --model-config-file"),
        (["--model-config-file-poll-wait-seconds", "-1"], "-1"),
    ],
)
def test_engine_serve_refuses_bad_flags(base_path, capsys, argv, fragment):
    code, _, err = engine_in_process(capsys, "serve", "--model-base-path", str(base_path), *argv)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1


def test_engine_serve_with_tf_servings_flags(base_path, tmp_path):
    """The real command with TF Serving's spellings: the socket, the channel arguments and
    tensor_content responses; SIGTERM -> exit 0."""
    socket_path = tmp_path / "s.sock"
    port = fixtures.free_port()
    args = ["--model-base-path", base_path, "--model-name", "m", "--port", port, "--quiet"]
    args += ["--grpc_socket_path", socket_path, "--enable_serialization_as_tensor_content"]
    args += ["--grpc_channel_arguments", "grpc.max_connection_age_ms=60000"]
    with fixtures.engine_serve_process(*args) as process:
        ready = process.stdout.readline().rstrip()
        assert ready == (
            f"engine serve: ready on 127.0.0.1:{port} and unix:{socket_path} (plaintext): "
            "m versions [1]"
        )
        with ForecastClient(f"unix:{socket_path}", timeout=30) as client:
            _, response = client.predict("m", {"window": np.ones((1, 8), np.float32)})
            assert response.outputs["forecast"].tensor_content
            assert not response.outputs["forecast"].float_val
