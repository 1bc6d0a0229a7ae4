"""How a loaded SavedModel runs one signature: feeds and fetches by signature alias.

Two loaders, as a SavedModel may need either:
- `FunctionRunner`: `tf.saved_model.load` and its restored signature functions, for
  SavedModels written by TF2 (`tf.saved_model.save`, Keras), which carry an object graph.
- `SessionRunner`: a `tf.compat.v1.Session` with `tf.compat.v1.saved_model.loader.load`,
  which is how TF Serving runs every model. Used for TF1 exports (no object graph: the
  `tf.compat.v1.saved_model.Builder`, Estimator exports, TF Serving's
  `saved_model_half_plus_three`), and whenever `tf.saved_model.load` fails or cannot run all
  of the MetaGraph's signatures.

Either way the graph alone judges shapes: the session is fed through a callable (no
Python-side shape check), as TF Serving's `Session::Run` is.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2

from serving.errors import first_line, from_op_error, invalid_argument

SERVE_TAG = "serve"
INIT_OP_SIGNATURE_KEY = "__saved_model_init_op"  # TF2's init op, listed as a SignatureDef


class FunctionRunner:
    """Signatures of `tf.saved_model.load`, called with keyword arguments by alias."""

    kind = "saved_model.load"

    def __init__(self, loaded):
        self.loaded = loaded

    def can_run(self, signature_name: str) -> bool:
        return signature_name in self.loaded.signatures

    def run(
        self,
        signature_name: str,
        signature: meta_graph_pb2.SignatureDef,
        feeds: dict[str, np.ndarray],
        aliases: list[str],
    ) -> dict[str, np.ndarray]:
        function = self.loaded.signatures[signature_name]
        try:
            outputs = function(**{alias: tf.constant(value) for alias, value in feeds.items()})
        except tf.errors.OpError as error:
            raise from_op_error(error) from error
        except (TypeError, ValueError) as error:
            # Binding errors raised before the graph runs (a feed the function refuses).
            raise invalid_argument(first_line(error)) from error
        return {alias: outputs[alias].numpy() for alias in aliases}


class SessionRunner:
    """A TF1 session over the MetaGraph; a signature feeds and fetches tensors by name."""

    kind = "session"

    def __init__(self, session: tf.compat.v1.Session):
        self.session = session
        self._callables: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def can_run(self, signature_name: str) -> bool:
        return True  # any SignatureDef of the MetaGraph names tensors of this session's graph

    def run(
        self,
        signature_name: str,
        signature: meta_graph_pb2.SignatureDef,
        feeds: dict[str, np.ndarray],
        aliases: list[str],
    ) -> dict[str, np.ndarray]:
        feed_names = tuple(signature.inputs[alias].name for alias in feeds)
        fetch_names = tuple(dict.fromkeys(signature.outputs[alias].name for alias in aliases))
        call = self._callable(feed_names, fetch_names)
        try:
            values = call(*feeds.values())
        except tf.errors.OpError as error:
            raise from_op_error(error) from error
        by_name = dict(zip(fetch_names, values, strict=True))
        return {alias: np.asarray(by_name[signature.outputs[alias].name]) for alias in aliases}

    def _callable(self, feed_names: tuple, fetch_names: tuple):
        """One callable per feed and fetch list, made once: a session callable skips the
        Python-side shape check of `Session.run`, so the graph decides, as in TF Serving."""
        key = (feed_names, fetch_names)
        with self._lock:
            call = self._callables.get(key)
            if call is None:
                options = config_pb2.CallableOptions(feed=feed_names, fetch=fetch_names)
                call = self.session._make_callable_from_options(options)  # noqa: SLF001
                self._callables[key] = call
        return call


def load_session(path: Path) -> SessionRunner:
    """Load the `serve` MetaGraph into a new graph and session (restores the variables and
    runs the init ops, as TF Serving's SavedModel loader does)."""
    graph = tf.Graph()
    # Grow GPU memory as needed: a session's default would claim a GPU the process shares
    # with every other loaded version.
    config = config_pb2.ConfigProto(gpu_options=config_pb2.GPUOptions(allow_growth=True))
    session = tf.compat.v1.Session(graph=graph, config=config)
    try:
        with graph.as_default():
            tf.compat.v1.saved_model.loader.load(session, [SERVE_TAG], str(path))
    except Exception:
        session.close()
        raise
    return SessionRunner(session)


def load_runner(
    path: Path, meta_graph: meta_graph_pb2.MetaGraphDef
) -> FunctionRunner | SessionRunner:
    """The runner for this SavedModel: TF2's loader when it can run every signature, else a
    session (always for a TF1 export, which has no object graph)."""
    if not meta_graph.HasField("object_graph_def"):
        return load_session(path)
    try:
        loaded = tf.saved_model.load(str(path), tags=[SERVE_TAG])
    except Exception as error:  # noqa: BLE001 - a session may still load it
        try:
            return load_session(path)
        except Exception:  # noqa: BLE001 - report why the usual loader failed
            raise error from None
    runner = FunctionRunner(loaded)
    # TF2 lists its init op as a SignatureDef too; it is not a signature one calls.
    names = set(meta_graph.signature_def) - {INIT_OP_SIGNATURE_KEY}
    if all(runner.can_run(name) for name in names):
        return runner
    return load_session(path)
