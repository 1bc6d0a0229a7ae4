"""`--model_config_file_poll_wait_seconds`: re-read `models.config` while serving.

TF Serving re-reads its model config file every N seconds and calls ReloadConfig with it;
a file that cannot be read or parsed, or a reload that fails, is logged and the running
config stays. Here a reload runs only when the parsed config changed (the same effect,
without reloading an unchanged config every few seconds), and each failure is reported once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from tensorflow_serving.config import model_server_config_pb2

from serving.config import load_model_config
from serving.errors import ServingConfigError, ServingError
from serving.manager import ModelManager

log = logging.getLogger("seqcast.serving")


class ConfigFileWatcher:
    """Polls a text ModelServerConfig file and hands each new version to `manager.reload`."""

    def __init__(
        self,
        path: str | os.PathLike,
        manager: ModelManager,
        poll_seconds: float,
        current: model_server_config_pb2.ModelServerConfig,
        on_event: Callable[[str], None] | None = None,
    ):
        self.path = path
        self.manager = manager
        self.poll_seconds = poll_seconds
        self.on_event = on_event or (lambda message: log.info(message))
        self._seen = current  # the last config read, applied or refused
        self._read_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="config-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.check_once()
            except Exception:  # noqa: BLE001 - the watcher must survive anything on disk
                log.exception("model config poll failed")

    def check_once(self) -> bool:
        """Read the file; reload when it changed. True when a new config was applied."""
        try:
            config = load_model_config(self.path)
        except ServingConfigError as error:
            message = f"cannot reload {self.path}: {error}"
            if message != self._read_error:  # once, not every poll until it is fixed
                self._read_error = message
                self.on_event(message)
            return False
        self._read_error = None
        if config == self._seen:
            return False
        self._seen = config
        try:
            self.manager.reload(config)
        except (ServingConfigError, ServingError) as error:
            self.on_event(f"reloading {self.path} failed: {error}")
            return False
        self.on_event(f"reloaded {self.path}")
        return True
