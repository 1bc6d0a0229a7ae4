"""An embedded server that speaks TensorFlow Serving's gRPC API.

It serves SavedModels laid out as `<model_base_path>/<version>/` exactly as the real
`tensorflow/serving` binary does, through the generated services of
`tensorflow_serving.apis`: `PredictionService` (Predict, GetModelMetadata; Classify, Regress
and MultiInference answer UNIMPLEMENTED) and `ModelService` (GetModelStatus,
HandleReloadConfigRequest), plus the standard gRPC health service. Status codes and
messages follow TF Serving's own (predict_util.cc, get_model_metadata_impl.cc,
get_model_status_impl.cc, server_core.cc).

Threads: gRPC requests run on a fixed-size pool; one background poller discovers, loads,
warms up and unloads versions. A request takes a reference to one loaded version under a
lock and runs without it, so a version being replaced finishes the requests it has.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from serving import tensors

log = logging.getLogger("seqcast.serving")

MAX_MESSAGE_BYTES = 2**31 - 1
DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving's limit
MAX_LOAD_ATTEMPTS = 5  # per version directory contents, like --max_num_load_retries

State = get_model_status_pb2.ModelVersionStatus.State


class ServingError(Exception):
    """A request failed with a gRPC status code and TF Serving's message."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class ServingConfigError(ValueError):
    """The server cannot start with this configuration (bad path, bad config file)."""


def _invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


# ---------------------------------------------------------------------------------------------
# Configuration


def single_model_config(name: str, base_path: str) -> model_server_config_pb2.ModelServerConfig:
    """The config `--model_name NAME --model_base_path DIR` stands for (policy latest{1})."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    return config


def load_model_config(path: str | os.PathLike) -> model_server_config_pb2.ModelServerConfig:
    """Parse a text ModelServerConfig (`models.config`)."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ServingConfigError(f"cannot read model config {path}: {error.strerror}") from error
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ServingConfigError(f"{path}: not a text ModelServerConfig: {error}") from error
    return config


def _validate_config(config: model_server_config_pb2.ModelServerConfig) -> None:
    if config.WhichOneof("config") != "model_config_list":
        raise ServingConfigError("only a model_config_list is supported")
    names = [model.name for model in config.model_config_list.config]
    if len(set(names)) != len(names):
        raise ServingConfigError("model names in the config must be unique")
    for model in config.model_config_list.config:
        if not model.name:
            raise ServingConfigError("every model in the config needs a name")
        if model.model_platform not in ("", "tensorflow"):
            raise ServingConfigError(
                f"model {model.name}: platform {model.model_platform!r} is not supported"
            )
        if not Path(model.base_path).is_dir():
            raise ServingConfigError(
                f"model {model.name}: base path {model.base_path} is not a directory"
            )


# ---------------------------------------------------------------------------------------------
# One loaded version


@dataclass
class Servable:
    """One loaded version of one model: the restored SavedModel and its SignatureDefs."""

    name: str
    version: int
    path: Path
    loaded: object  # what tf.saved_model.load returns
    signature_defs: dict[str, meta_graph_pb2.SignatureDef]

    @classmethod
    def load(cls, name: str, version: int, path: Path) -> Servable:
        saved_model = saved_model_pb2.SavedModel()
        saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
        serve_graphs = [
            graph for graph in saved_model.meta_graphs if "serve" in graph.meta_info_def.tags
        ]
        if not serve_graphs:
            raise ValueError(f"{path}: no MetaGraph tagged 'serve'")
        loaded = tf.saved_model.load(str(path), tags=["serve"])
        return cls(name, version, path, loaded, dict(serve_graphs[0].signature_def))

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        """Run one PredictRequest, validating it as TF Serving's RunPredict does."""
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature = self.signature_defs.get(signature_name)
        function = self.loaded.signatures.get(signature_name) if signature is not None else None
        if function is None:
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{signature_name}" not found.',
            )
        feeds = self._inputs(signature, request)
        aliases = self._output_aliases(signature, request)
        try:
            outputs = function(**{alias: tf.constant(value) for alias, value in feeds.items()})
        except tf.errors.OpError as error:
            raise ServingError(_grpc_code(error), _clean_op_message(error.message)) from error
        except (TypeError, ValueError) as error:
            # Binding errors raised before the graph runs (a feed the function refuses).
            raise _invalid(str(error).strip().splitlines()[0]) from error
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.name
        response.model_spec.version.value = self.version
        response.model_spec.signature_name = signature_name
        for alias in aliases:
            response.outputs[alias].CopyFrom(tensors.from_ndarray(outputs[alias].numpy()))
        return response

    @staticmethod
    def _inputs(
        signature: meta_graph_pb2.SignatureDef, request: predict_pb2.PredictRequest
    ) -> dict[str, np.ndarray]:
        """Request tensors by alias: count, names, parsing and dtypes checked in TF's order."""
        requested = set(request.inputs.keys())
        expected = set(signature.inputs.keys())
        if len(requested) > len(expected) or (
            len(requested) < len(expected) and not signature.defaults
        ):
            raise _invalid(
                f"input size does not match signature: {len(requested)}!={len(expected)} "
                f"len({{{','.join(sorted(requested))}}}) != len({{{','.join(sorted(expected))}}})"
                f". Sent extra: {{{','.join(sorted(requested - expected))}}}. "
                f"Missing but required: {{{','.join(sorted(expected - requested))}}}."
            )
        feeds = {}
        for index, alias in enumerate(sorted(expected)):
            info = signature.inputs[alias]
            if alias not in request.inputs:
                raise _invalid(
                    f"Signature input alias: {alias}(feed name: {info.name}) not found in "
                    "request and no defaults were provided."
                )
            proto = request.inputs[alias]
            try:
                value = tensors.to_ndarray(proto)
            except tensors.TensorParseError as error:
                raise _invalid(f"tensor parsing error: {alias}") from error
            if proto.dtype != info.dtype:
                raise _invalid(
                    f"Expects arg[{index}] to be {tensors.dtype_name(info.dtype)} but "
                    f"{tensors.dtype_name(proto.dtype)} is provided"
                )
            _check_shape(alias, value.shape if value is not None else None, proto, info)
            feeds[alias] = value
        return feeds

    @staticmethod
    def _output_aliases(
        signature: meta_graph_pb2.SignatureDef, request: predict_pb2.PredictRequest
    ) -> list[str]:
        """`output_filter`, checked as TF Serving does; empty means every output."""
        seen: list[str] = []
        for alias in request.output_filter:
            if alias not in signature.outputs:
                raise _invalid(
                    f"output tensor alias not found in signature: {alias} Outputs expected to "
                    f"be in the set {{{','.join(sorted(signature.outputs))}}}."
                )
            if alias in seen:
                raise _invalid(f"duplicate output tensor alias: {alias}")
            seen.append(alias)
        return seen or sorted(signature.outputs)

    def warm_up(self) -> int:
        """Replay `assets.extra/tf_serving_warmup_requests`; any failure fails the load."""
        path = self.path / WARMUP_FILE
        if not path.exists():
            return 0
        count = 0
        for record in tf.data.TFRecordDataset(str(path)):
            count += 1
            if count > MAX_WARMUP_RECORDS:
                raise ValueError(f"more than {MAX_WARMUP_RECORDS} warmup records")
            prediction_log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if prediction_log.WhichOneof("log_type") != "predict_log":
                raise ValueError("only predict_log warmup records are supported")
            request = predict_pb2.PredictRequest()
            request.CopyFrom(prediction_log.predict_log.request)
            request.model_spec.name = self.name
            self.predict(request)
        return count


def _check_shape(alias, shape, proto, info: meta_graph_pb2.TensorInfo) -> None:
    """The rank and any fixed sizes the signature declares. A session would feed a tensor of
    another rank straight into the graph, where it may even "work" (a rank-3 window averaged
    along the wrong axis); a served model is better off refusing it here."""
    if info.tensor_shape.unknown_rank:
        return
    if shape is None:
        shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    expected = [dim.size for dim in info.tensor_shape.dim]
    if len(shape) != len(expected) or any(
        want >= 0 and want != got for want, got in zip(expected, shape, strict=True)
    ):
        wanted = ",".join("?" if size < 0 else str(size) for size in expected)
        raise _invalid(
            f"input {alias} has shape [{','.join(map(str, shape))}] but the signature "
            f"expects [{wanted}]"
        )


_OP_ERROR_CODES = {
    tf.errors.InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    tf.errors.FailedPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
    tf.errors.OutOfRangeError: grpc.StatusCode.OUT_OF_RANGE,
    tf.errors.ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    tf.errors.UnimplementedError: grpc.StatusCode.UNIMPLEMENTED,
    tf.errors.NotFoundError: grpc.StatusCode.NOT_FOUND,
    tf.errors.DeadlineExceededError: grpc.StatusCode.DEADLINE_EXCEEDED,
    tf.errors.CancelledError: grpc.StatusCode.CANCELLED,
    tf.errors.UnavailableError: grpc.StatusCode.UNAVAILABLE,
}


def _grpc_code(error: tf.errors.OpError) -> grpc.StatusCode:
    for error_type, code in _OP_ERROR_CODES.items():
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.INTERNAL


def _clean_op_message(message: str) -> str:
    """The op's own message, without the Python runtime's 'Graph execution error' preamble
    and function name, so it reads like TF Serving's (the session's) message."""
    message = re.sub(r"^Graph execution error:\s*", "", message)
    message = re.sub(r"^Detected at node .*?<stack traces unavailable>\n", "", message, flags=re.S)
    message = re.sub(r"\s*\[Op:__inference_\w+\]\s*$", "", message)
    return message.strip()


# ---------------------------------------------------------------------------------------------
# Versions of every configured model


@dataclass
class VersionState:
    state: int  # ModelVersionStatus.State
    error: str = ""


@dataclass
class ServedModel:
    """One configured model: where its versions live, which to serve, what is loaded."""

    config: model_server_config_pb2.ModelConfig
    servables: dict[int, Servable] = field(default_factory=dict)  # AVAILABLE versions
    states: dict[int, VersionState] = field(default_factory=dict)  # every version seen
    failed: dict[int, tuple[tuple, int]] = field(default_factory=dict)  # fingerprint, attempts

    @property
    def name(self) -> str:
        return self.config.name


def _complete_versions(base_path: Path) -> dict[int, Path]:
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


def _aspired(config: model_server_config_pb2.ModelConfig, complete: dict[int, Path]) -> list[int]:
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


def _fingerprint(path: Path) -> tuple:
    """Changes when a version directory's contents change, so a failed load is retried."""
    return tuple(
        sorted((str(p.relative_to(path)), p.stat().st_size) for p in path.rglob("*") if p.is_file())
    )


class ModelManager:
    """Discovers versions by polling, loads and warms them up, unloads replaced ones."""

    def __init__(
        self,
        config: model_server_config_pb2.ModelServerConfig,
        poll_seconds: float = 1.0,
        on_event: Callable[[str], None] | None = None,
    ):
        _validate_config(config)
        self.poll_seconds = poll_seconds
        self.on_event = on_event or (lambda message: log.info(message))
        self._lock = threading.RLock()  # guards models, servables, states, labels
        self._poll_lock = threading.Lock()  # one poll at a time (poller thread, reload)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[], None]] = []
        self.models: dict[str, ServedModel] = {}
        self._apply_config(config)

    # -- configuration

    def _apply_config(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        with self._lock:
            models = {}
            for model_config in config.model_config_list.config:
                served = self.models.get(model_config.name)
                if served is None or served.config.base_path != model_config.base_path:
                    served = ServedModel(model_config)
                else:
                    served.config = model_config
                models[model_config.name] = served
            removed = [model for name, model in self.models.items() if name not in models]
            self.models = models
        for model in removed:
            self._unload_all(model)

    def reload(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """HandleReloadConfigRequest: switch config, then load what it asks for before
        answering (TF Serving's ReloadConfig also waits for the new models)."""
        _validate_config(config)
        self._apply_config(config)
        self.poll_once()

    # -- polling

    def start(self) -> None:
        self.poll_once()
        self._thread = threading.Thread(target=self._poll_loop, name="version-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Called after every change of what is AVAILABLE (health status)."""
        self._listeners.append(listener)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the poller must survive anything on disk
                log.exception("version poll failed")

    def poll_once(self) -> None:
        with self._poll_lock:
            with self._lock:
                models = list(self.models.values())
            for model in models:
                self._poll_model(model)
        for listener in self._listeners:
            listener()

    def _poll_model(self, model: ServedModel) -> None:
        complete = _complete_versions(Path(model.config.base_path))
        aspired = _aspired(model.config, complete)
        for version in aspired:  # newest first
            if version not in model.servables:
                self._load(model, version, complete[version])
        with self._lock:
            # Availability first: drop a version only once an aspired one is serving.
            if not any(version in model.servables for version in aspired):
                return
            stale = [version for version in model.servables if version not in aspired]
        for version in stale:
            self._unload(model, version)

    def _load(self, model: ServedModel, version: int, path: Path) -> None:
        fingerprint = _fingerprint(path)
        previous = model.failed.get(version)
        attempts = previous[1] if previous and previous[0] == fingerprint else 0
        if attempts >= MAX_LOAD_ATTEMPTS:
            return
        with self._lock:
            model.states[version] = VersionState(State.LOADING)
        try:
            servable = Servable.load(model.name, version, path)
            records = servable.warm_up()
        except Exception as error:  # noqa: BLE001 - a bad version must not stop the server
            message = _one_line(error)
            model.failed[version] = (fingerprint, attempts + 1)
            with self._lock:
                model.states[version] = VersionState(State.END, message)
            self.on_event(f"failed to load {model.name} version {version}: {message}")
            return
        model.failed.pop(version, None)
        with self._lock:
            model.servables[version] = servable
            model.states[version] = VersionState(State.AVAILABLE)
        self.on_event(
            f"loaded {model.name} version {version} ({records} warmup requests) from {path}"
        )

    def _unload(self, model: ServedModel, version: int) -> None:
        with self._lock:
            model.states[version] = VersionState(State.UNLOADING)
            # Requests already holding this Servable finish with it; new ones cannot get it.
            model.servables.pop(version, None)
            model.states[version] = VersionState(State.END)
        self.on_event(f"unloaded {model.name} version {version}")

    def _unload_all(self, model: ServedModel) -> None:
        for version in list(model.servables):
            self._unload(model, version)

    # -- lookups for requests

    def available(self) -> dict[str, list[int]]:
        with self._lock:
            return {name: sorted(model.servables) for name, model in self.models.items()}

    def resolve(self, model_spec) -> Servable:
        """The servable a ModelSpec asks for, or TF Serving's NOT_FOUND / INVALID_ARGUMENT."""
        name = model_spec.name
        kind = model_spec.WhichOneof("version_choice")
        with self._lock:
            model = self.models.get(name)
            if kind == "version_label":
                labels = model.config.version_labels if model is not None else {}
                if model_spec.version_label not in labels:
                    raise _invalid(
                        f"Unrecognized servable version label: {model_spec.version_label}"
                    )
                version = labels[model_spec.version_label]
            elif kind == "version":
                version = model_spec.version.value
            else:
                version = None
            servables = model.servables if model is not None else {}
            if version is None:
                if servables:
                    return servables[max(servables)]
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})"
                )
            if version in servables:
                return servables[version]
        raise ServingError(
            grpc.StatusCode.NOT_FOUND,
            f"Servable not found for request: Specific({name}, {version})",
        )

    def status(self, model_spec) -> get_model_status_pb2.GetModelStatusResponse:
        name = model_spec.name
        response = get_model_status_pb2.GetModelStatusResponse()
        with self._lock:
            model = self.models.get(name)
            states = dict(model.states) if model is not None else {}
        if model_spec.WhichOneof("version_choice") == "version":
            version = model_spec.version.value
            if version not in states:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {name}"
                )
            states = {version: states[version]}
        elif not states:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}"
            )
        for version in sorted(states):
            entry = response.model_version_status.add(version=version, state=states[version].state)
            if states[version].error:
                entry.status.error_code = 13  # INTERNAL, as TF Serving reports a failed load
                entry.status.error_message = states[version].error
        return response


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    if isinstance(error, tf.errors.OpError):
        text = _clean_op_message(error.message)
    return (text.splitlines() or [type(error).__name__])[0]


# ---------------------------------------------------------------------------------------------
# gRPC services


def _run(context: grpc.ServicerContext, call: Callable[[], object]):
    """Run a handler; a ServingError becomes its status, anything else INTERNAL. Never raises
    past here, so one bad request cannot take a worker thread down."""
    try:
        return call()
    except ServingError as error:
        context.abort(error.code, error.message)
    except grpc.RpcError:
        raise  # context.abort's own exception
    except Exception as error:  # noqa: BLE001 - answer, log, keep serving
        log.exception("request failed")
        context.abort(grpc.StatusCode.INTERNAL, _one_line(error))


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager):
        self.manager = manager

    def Predict(self, request, context):  # noqa: N802 - the generated service's names
        def call():
            if not request.HasField("model_spec"):
                raise _invalid("Missing ModelSpec")
            return self.manager.resolve(request.model_spec).predict(request)

        return _run(context, call)

    def GetModelMetadata(self, request, context):  # noqa: N802
        def call():
            if not request.HasField("model_spec"):
                raise _invalid("Missing ModelSpec")
            if not request.metadata_field:
                raise _invalid("GetModelMetadataRequest must specify at least one metadata_field")
            for metadata_field in request.metadata_field:
                if metadata_field != "signature_def":
                    raise _invalid(f"Metadata field {metadata_field} is not supported")
            servable = self.manager.resolve(request.model_spec)
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, signature in servable.signature_defs.items():
                signature_map.signature_def[key].CopyFrom(signature)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
            response.metadata["signature_def"].Pack(signature_map)
            return response

        return _run(context, call)

    def Classify(self, request, context):  # noqa: N802
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Classify is not supported by this server")

    def Regress(self, request, context):  # noqa: N802
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Regress is not supported by this server")

    def MultiInference(self, request, context):  # noqa: N802
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED, "MultiInference is not supported by this server"
        )


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager):
        self.manager = manager

    def GetModelStatus(self, request, context):  # noqa: N802
        def call():
            if not request.HasField("model_spec"):
                raise _invalid("Missing ModelSpec")
            return self.manager.status(request.model_spec)

        return _run(context, call)

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        def call():
            try:
                self.manager.reload(request.config)
            except ServingConfigError as error:
                raise _invalid(str(error)) from error
            return model_management_pb2.ReloadConfigResponse()

        return _run(context, call)


# ---------------------------------------------------------------------------------------------
# The server


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
