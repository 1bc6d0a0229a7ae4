"""`ModelServer`: the version manager, TF Serving's services and gRPC health wired into one
gRPC server, started and stopped together. Messages up to 2^31-1 bytes, as TF Serving allows.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import ServingConfigError
from serving.manager import ModelManager
from serving.services import ModelServicer, PredictionServicer

MAX_MESSAGE_BYTES = 2**31 - 1


class ModelServer:
    """gRPC server + version manager + health service, started and stopped together.

    `port=0` picks a free port (see `.port` after `start`). TLS when `tls_cert` and
    `tls_key` (PEM file paths) are given.
    """

    def __init__(
        self,
        config: model_server_config_pb2.ModelServerConfig,
        host: str = "127.0.0.1",
        port: int = 8500,
        poll_seconds: float = 1.0,
        workers: int = 16,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        on_event: Callable[[str], None] | None = None,
    ):
        if (tls_cert is None) != (tls_key is None):
            raise ServingConfigError("TLS needs both a certificate and a key")
        self.manager = ModelManager(config, poll_seconds=poll_seconds, on_event=on_event)
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.workers = workers
        self.tls = None
        if tls_cert:
            try:
                self.tls = (Path(tls_cert).read_bytes(), Path(tls_key).read_bytes())
            except OSError as error:
                raise ServingConfigError(
                    f"cannot read {error.filename}: {error.strerror}"
                ) from error
        self._health_names: set[str] = set()
        self.health = health.HealthServicer()
        self._server: grpc.Server | None = None

    def start(self) -> ModelServer:
        self.manager.add_listener(self._update_health)
        self.manager.start()  # the first poll loads what is on disk before we listen
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ]
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="grpc"),
            options=options,
            maximum_concurrent_rpcs=64 * self.workers,
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(self.manager), server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelServicer(self.manager), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        address = f"{self.host}:{self.requested_port}"
        try:
            if self.tls:
                cert, key = self.tls
                credentials = grpc.ssl_server_credentials([(key, cert)])
                self.port = server.add_secure_port(address, credentials)
            else:
                self.port = server.add_insecure_port(address)
        except (OSError, RuntimeError) as error:
            self.manager.stop()
            raise ServingConfigError(f"cannot listen on {address}: {error}") from error
        if not self.port:
            self.manager.stop()
            raise ServingConfigError(f"cannot listen on {address}")
        server.start()
        self._server = server
        self._update_health()
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _update_health(self) -> None:
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        available = self.manager.available()
        for name in self._health_names - set(available):  # models a reload removed
            self.health.set(name, not_serving)
        for name, versions in available.items():
            self.health.set(name, serving if versions else not_serving)
        self._health_names |= set(available)
        everything = bool(available) and all(available.values())
        self.health.set("", serving if everything else not_serving)

    def stop(self, grace: float = 10.0) -> None:
        """Stop accepting requests, let in-flight ones finish (up to `grace` s), stop polling."""
        self.health.enter_graceful_shutdown()
        if self._server is not None:
            self._server.stop(grace).wait()
        self.manager.stop()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(grace=2.0)
