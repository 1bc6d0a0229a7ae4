"""`ModelServer`: the version manager, TF Serving's services and gRPC health wired into one
gRPC server, started and stopped together. Messages up to 2^31-1 bytes, as TF Serving allows.

As TF Serving, it refuses to start when a configured model has versions on disk and none of
them loads (ServingStartError), listens on a Unix socket too when given `grpc_socket_path`,
takes extra gRPC channel arguments, and can re-read its `models.config` while serving.
With a REST port it also serves TF Serving's REST API (serving.rest_server) and, when the
monitoring config asks, its Prometheus page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from serving.batching import BatchingParameters
from serving.config_watch import ConfigFileWatcher
from serving.errors import ServingConfigError, ServingStartError, models_unavailable
from serving.grpc_options import server_options
from serving.manager import ModelManager
from serving.metrics import MeteredPredictionServicer, Metrics, MonitoringSettings
from serving.rest_api import DEFAULT_TIMEOUT_MS, RestApi
from serving.rest_server import RestServer
from serving.services import ModelServicer, PredictionServicer


class ModelServer:
    """gRPC server + version manager + health service, started and stopped together.

    `port=0` picks a free port (see `.port` after `start`). TLS when `tls_cert` and
    `tls_key` (PEM file paths) are given. TF Serving's flags: `grpc_socket_path` (also listen
    on this Unix socket), `channel_arguments` ((key, value) pairs for gRPC),
    `tensor_content` (`--enable_serialization_as_tensor_content`), and `model_config_file`
    with `model_config_file_poll_wait_seconds` > 0 (re-read that file while serving).
    `batching` (`--enable_batching`): merge concurrent calls into batches (serving/batching.py).
    `rest_api_port` also serves TF Serving's REST API on the same host (None: off, 0: any
    free port, see `.rest_address`), `rest_api_timeout_ms` its deadline, and `monitoring`
    its Prometheus page (see serving.metrics).
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
        grpc_socket_path: str | None = None,
        channel_arguments: Sequence[tuple[str, int | str]] = (),
        tensor_content: bool = False,
        model_config_file: str | None = None,
        model_config_file_poll_wait_seconds: float = 0,
        rest_api_port: int | None = None,
        rest_api_timeout_ms: int = DEFAULT_TIMEOUT_MS,
        monitoring: MonitoringSettings | None = None,
        batching: BatchingParameters | None = None,
    ):
        if (tls_cert is None) != (tls_key is None):
            raise ServingConfigError("TLS needs both a certificate and a key")
        self.manager = ModelManager(
            config, poll_seconds=poll_seconds, on_event=on_event, batching=batching
        )
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
        self.grpc_socket_path = grpc_socket_path
        self.channel_arguments = list(channel_arguments)
        self.tensor_content = tensor_content
        self.config_watcher = None
        if model_config_file and model_config_file_poll_wait_seconds > 0:
            self.config_watcher = ConfigFileWatcher(
                model_config_file,
                self.manager,
                model_config_file_poll_wait_seconds,
                current=config,
                on_event=on_event,
            )
        self._health_names: set[str] = set()
        self.health = health.HealthServicer()
        self._server: grpc.Server | None = None
        # TF Serving's REST API (off unless a port is given; 0 picks one) on the same host,
        # and its Prometheus page there when the monitoring config enables it.
        self.rest_api_port = rest_api_port
        self.rest_api_timeout_ms = rest_api_timeout_ms
        self.monitoring = monitoring or MonitoringSettings()
        if self.monitoring.enable and rest_api_port is None:
            raise ServingConfigError("the Prometheus page is served on the REST port: give one")
        self.metrics = Metrics()
        self.rest: RestServer | None = None

    def start(self) -> ModelServer:
        self.manager.add_listener(self._update_health)
        self.manager.start()  # the first poll loads what is on disk before we listen
        failed = self.manager.unavailable()
        if failed:  # TF Serving does not start when a configured model fails to load
            self.manager.stop()
            name, version = failed[0]
            reason = self.manager.load_error(name, version)
            raise ServingStartError(
                f"{models_unavailable(failed).message} ({name} version {version}: {reason})"
            )
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="grpc"),
            options=server_options(self.channel_arguments),
            maximum_concurrent_rpcs=64 * self.workers,
        )
        prediction = PredictionServicer(self.manager, tensor_content=self.tensor_content)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            MeteredPredictionServicer(prediction, self.metrics), server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelServicer(self.manager), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        address = f"{self.host}:{self.requested_port}"
        self.port = self._listen(server, address)
        if self.grpc_socket_path:  # as TF Serving: in addition to the port, same credentials
            self._listen(server, f"unix:{self.grpc_socket_path}")
        server.start()
        self._server = server
        if self.rest_api_port is not None:
            self._start_rest(prediction)
        self._update_health()
        if self.config_watcher is not None:
            self.config_watcher.start()
        return self

    def _listen(self, server: grpc.Server, address: str) -> int:
        """Add a listening address (TLS when configured); the port it got."""
        try:
            if self.tls:
                cert, key = self.tls
                credentials = grpc.ssl_server_credentials([(key, cert)])
                port = server.add_secure_port(address, credentials)
            else:
                port = server.add_insecure_port(address)
        except (OSError, RuntimeError) as error:
            self.manager.stop()
            raise ServingConfigError(f"cannot listen on {address}: {error}") from error
        if not port:
            self.manager.stop()
            raise ServingConfigError(f"cannot listen on {address}")
        return port

    def _start_rest(self, prediction: PredictionServicer) -> None:
        api = RestApi(
            self.manager,
            prediction,
            ModelServicer(self.manager),
            timeout_ms=self.rest_api_timeout_ms,
            metrics=self.metrics,
        )
        rest = RestServer(
            api,
            self.host,
            self.rest_api_port,
            metrics_path=self.monitoring.path if self.monitoring.enable else None,
            metrics_page=self.metrics.prometheus_page if self.monitoring.enable else None,
        )
        try:
            self.rest = rest.start()
        except OSError as error:
            api.close()
            self._server.stop(0)
            self.manager.stop()
            address = f"{self.host}:{self.rest_api_port}"
            raise ServingConfigError(f"cannot listen on {address}: {error}") from error

    @property
    def rest_address(self) -> str | None:
        """HOST:PORT of the REST API, None when it is off."""
        return self.rest.address if self.rest is not None else None

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
        if self.config_watcher is not None:
            self.config_watcher.stop()
        if self.rest is not None:
            self.rest.stop(grace)
        if self._server is not None:
            self._server.stop(grace).wait()
        self.manager.stop()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(grace=2.0)
