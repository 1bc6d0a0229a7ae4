"""Loading as TF Serving reports it: GetModelStatus always carries a status,
HandleReloadConfigRequest waits for the models it adds and fails when one did not load, and
a server whose model cannot load does not start (`engine serve` exits 1)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import serving_fixtures as fixtures
from google.protobuf import text_format
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from serving.client import ForecastClient
from serving.config import single_model_config
from serving.errors import ServingStartError
from serving.server import ModelServer


def broken_version(base_path, version: int = 1):
    """A version directory whose saved_model.pb is not a SavedModel: its load fails."""
    path = base_path / str(version)
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"\x0a\xff\xff not a SavedModel")
    return path


def config_of(**base_paths) -> model_server_config_pb2.ModelServerConfig:
    entries = "".join(
        f'config {{ name: "{name}" base_path: "{path}" model_platform: "tensorflow" }}'
        for name, path in base_paths.items()
    )
    return text_format.Parse(
        f"model_config_list {{ {entries} }}", model_server_config_pb2.ModelServerConfig()
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("reload")
    fixtures.write_version(root / "good", 1, 2.0, 0.5)
    fixtures.write_version(root / "other", 3, 1.0, 0.0)
    broken_version(root / "bad")
    return root


@pytest.fixture(scope="module")
def server(models):
    with ModelServer(single_model_config("good", str(models / "good")), port=0) as server:
        yield server


@pytest.fixture(scope="module")
def model_service(server):
    channel = grpc.insecure_channel(server.address)
    yield model_service_pb2_grpc.ModelServiceStub(channel)
    channel.close()


def status_of(model_service, name: str) -> get_model_status_pb2.GetModelStatusResponse:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    return model_service.GetModelStatus(request, timeout=30)


def reload(model_service, config) -> model_management_pb2.ReloadConfigResponse:
    request = model_management_pb2.ReloadConfigRequest(config=config)
    return model_service.HandleReloadConfigRequest(request, timeout=60)


def test_model_status_always_has_a_status(model_service):
    response = status_of(model_service, "good")
    (entry,) = response.model_version_status
    assert entry.version == 1 and entry.state == entry.AVAILABLE
    assert entry.HasField("status")  # TF Serving's ToStatusProto of an OK health
    assert entry.status.error_code == 0 and entry.status.error_message == ""


def test_reload_waits_for_new_models_and_reports_the_failed_one(models, model_service, server):
    # A good new model is AVAILABLE the moment the call returns.
    response = reload(model_service, config_of(good=models / "good", other=models / "other"))
    assert response.HasField("status") and response.status.error_code == 0
    with ForecastClient(server.address, timeout=30) as client:
        assert client.forecast("other", np.ones((1, 8)), 1).version == 3

    # A new model whose only version cannot load fails the call, as TF Serving's
    # WaitUntilModelsAvailable does; the models already served keep serving.
    with pytest.raises(grpc.RpcError) as caught:
        reload(
            model_service,
            config_of(good=models / "good", other=models / "other", bad=models / "bad"),
        )
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    assert caught.value.details() == (
        "Some models did not become available: {{name: bad version: 1}, }"
    )
    (entry,) = status_of(model_service, "bad").model_version_status
    assert entry.state == entry.END
    assert entry.status.error_code != 0 and entry.status.error_message
    with ForecastClient(server.address, timeout=30) as client:
        assert client.forecast("good", np.ones((1, 8)), 1).version == 1

    # A model that was already configured is not waited for again.
    reload(model_service, config_of(good=models / "good", bad=models / "bad"))
    response = reload(model_service, single_model_config("good", str(models / "good")))
    assert response.status.error_code == 0


def test_a_server_whose_model_cannot_load_does_not_start(models):
    events: list[str] = []
    server = ModelServer(
        single_model_config("bad", str(models / "bad")), port=0, on_event=events.append
    )
    with pytest.raises(ServingStartError) as caught:
        server.start()
    assert str(caught.value).startswith(
        "Some models did not become available: {{name: bad version: 1}, } (bad version 1: "
    )
    assert server.port is None  # it never listened
    assert any(event.startswith("failed to load bad version 1: ") for event in events)


def test_engine_serve_exits_1_when_its_model_cannot_load(models, capsys):
    from engine.cli import main

    with pytest.raises(SystemExit) as done:
        main(["serve", "--model-base-path", str(models / "bad"), "--port", "0", "--quiet"])
    err = capsys.readouterr().err
    assert done.value.code == 1
    assert len(err.strip().splitlines()) == 1
    assert "Some models did not become available: {{name: seqcast version: 1}, }" in err
