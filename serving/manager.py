"""Every configured model's versions: discovered by polling the file system, loaded and
warmed up, served through a policy, unloaded once a newer version is serving.

Threads: one background poller changes what is loaded; a request takes a reference to one
loaded version under a lock and runs without it, so a version being replaced finishes the
requests it has. Version rules (as TF Serving's): docs/serving.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving.batching import BatchingParameters, BatchingRunner, BatchScheduler
from serving.config import validate_config
from serving.errors import ServingError, first_line, invalid_argument, models_unavailable
from serving.servable import Servable
from serving.versions import aspired_versions, complete_versions, fingerprint

log = logging.getLogger("seqcast.serving")

MAX_LOAD_ATTEMPTS = 5  # per version directory contents, like --max_num_load_retries

State = get_model_status_pb2.ModelVersionStatus.State


@dataclass
class VersionState:
    """What GetModelStatus reports for one version: its state and, after a failed load, why."""

    state: int  # ModelVersionStatus.State
    error: str = ""
    code: int = 0  # tensorflow.error.Code of the failed load; 0 (OK) otherwise


@dataclass
class ServedModel:
    """One configured model: where its versions live, which to serve, what is loaded."""

    config: model_server_config_pb2.ModelConfig
    servables: dict[int, Servable] = field(default_factory=dict)  # AVAILABLE versions
    states: dict[int, VersionState] = field(default_factory=dict)  # every version seen
    failed: dict[int, tuple[tuple, int]] = field(default_factory=dict)  # fingerprint, attempts
    aspired: list[int] = field(default_factory=list)  # what the policy wanted at the last poll

    @property
    def name(self) -> str:
        return self.config.name


class ModelManager:
    """Discovers versions by polling, loads and warms them up, unloads replaced ones."""

    def __init__(
        self,
        config: model_server_config_pb2.ModelServerConfig,
        poll_seconds: float = 1.0,
        on_event: Callable[[str], None] | None = None,
        batching: BatchingParameters | None = None,
    ):
        validate_config(config)
        self.poll_seconds = poll_seconds
        # --enable_batching: one scheduler (its threads) shared by every model, as TF Serving's
        self.batch_scheduler = BatchScheduler(batching) if batching is not None else None
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
        answering. As TF Serving's ReloadConfig, a model new to the config that did not
        become available fails the call with UNKNOWN (models already served do not)."""
        validate_config(config)
        with self._lock:
            new_names = {model.name for model in config.model_config_list.config} - set(self.models)
        self._apply_config(config)
        self.poll_once()
        failed = self.unavailable(new_names)
        if failed:
            raise models_unavailable(failed)

    def unavailable(self, names: set[str] | None = None) -> list[tuple[str, int]]:
        """(model, newest wanted version) of each model (of `names`, default all) that has
        versions on disk for its policy but none of them AVAILABLE: its loads failed."""
        with self._lock:
            return [
                (model.name, max(model.aspired))
                for model in self.models.values()
                if (names is None or model.name in names)
                and model.aspired
                and not any(version in model.servables for version in model.aspired)
            ]

    def load_error(self, name: str, version: int) -> str:
        """Why that version's last load failed ("" when it did not)."""
        with self._lock:
            model = self.models.get(name)
            state = model.states.get(version) if model is not None else None
            return state.error if state is not None else ""

    # -- polling

    def start(self) -> None:
        self.poll_once()
        self._thread = threading.Thread(target=self._poll_loop, name="version-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self.batch_scheduler is not None:
            self.batch_scheduler.stop()

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
        complete = complete_versions(Path(model.config.base_path))
        aspired = aspired_versions(model.config, complete)
        model.aspired = aspired
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
        directory_fingerprint = fingerprint(path)
        previous = model.failed.get(version)
        attempts = previous[1] if previous and previous[0] == directory_fingerprint else 0
        if attempts >= MAX_LOAD_ATTEMPTS:
            return
        with self._lock:
            model.states[version] = VersionState(State.LOADING)
        try:
            servable = Servable.load(model.name, version, path)
            if self.batch_scheduler is not None:  # warmup goes through it too, as in TF Serving
                servable.runner = BatchingRunner(servable.runner, self.batch_scheduler)
            records = servable.warm_up()
        except Exception as error:  # noqa: BLE001 - a bad version must not stop the server
            message = first_line(error)
            # A TensorFlow error keeps its code, anything else is INTERNAL, as in TF Serving.
            code = error.error_code if isinstance(error, tf.errors.OpError) else 13
            model.failed[version] = (directory_fingerprint, attempts + 1)
            with self._lock:
                model.states[version] = VersionState(State.END, message, code)
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
        if not name:
            raise invalid_argument("ModelSpec has no name specified.")
        kind = model_spec.WhichOneof("version_choice")
        with self._lock:
            model = self.models.get(name)
            if kind == "version_label":
                labels = model.config.version_labels if model is not None else {}
                if model_spec.version_label not in labels:
                    raise invalid_argument(
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
        # Newest first: TF Serving's ServableStateMonitor keeps versions in descending order.
        for version in sorted(states, reverse=True):
            entry = response.model_version_status.add(version=version, state=states[version].state)
            # TF Serving always sets `status`: error_code OK (0) and no message when healthy.
            entry.status.SetInParent()
            if states[version].error:
                entry.status.error_code = states[version].code or 13
                entry.status.error_message = states[version].error
        return response
