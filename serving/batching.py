"""Server-side batching, as TF Serving's `--enable_batching` does it: concurrent calls of one
signature are merged along dimension 0 into one call of the model, and its outputs split
back per call (TF Serving's BatchingSession over a SharedBatchScheduler).

- `BatchingParameters`: the text `tensorflow.serving.BatchingParameters` of
  `--batching_parameters_file`. tensorflow-serving-api does not ship that message, so its
  seven fields (session_bundle_config.proto) are declared here and parsed by protobuf's own
  text-format parser: errors read as TF Serving's.
- `BatchScheduler`: `num_batch_threads` threads shared by every model, one queue per
  (servable, signature); a queue holds at most `max_enqueued_batches` batches of at most
  `max_batch_size` rows; a batch runs once full, once `batch_timeout_micros` passed since
  its first call, or at once (timeout 0) when a thread is free.
- `BatchingRunner`: wraps a servable's runner (serving/runners.py). A call that feeds every
  input and fetches every output of its signature is batched; any other (an
  `output_filter`) runs on its own, as in TF Serving.

Merging follows TF Serving: every input needs rank >= 1 and one 0th-dimension size; inputs of
different shapes are refused unless `pad_variable_length_inputs` pads each one up to the
largest in the batch with its own first value; a batch is padded up to the next of
`allowed_batch_sizes` with copies of its last call's first row. Messages: docs/serving.md.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    wrappers_pb2,
)
from tensorflow.core.protobuf import meta_graph_pb2

from serving.config import parse_text_proto
from serving.errors import ServingConfigError, ServingError, first_line, invalid_argument

MESSAGE_NAME = "tensorflow.serving.BatchingParameters"
MAX_PAD_RANK = 6  # TF Serving pads ranks 1 to 6, as PadOp does


def _batching_parameters_class():
    """The BatchingParameters message of session_bundle_config.proto, built at runtime."""
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    proto = descriptor_pb2.FileDescriptorProto(
        name="seqcast/serving/batching_parameters.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = proto.message_type.add(name="BatchingParameters")
    kind = descriptor_pb2.FieldDescriptorProto
    for number, name, wrapper in (
        (1, "max_batch_size", "Int64Value"),
        (2, "batch_timeout_micros", "Int64Value"),
        (3, "max_enqueued_batches", "Int64Value"),
        (4, "num_batch_threads", "Int64Value"),
        (5, "thread_pool_name", "StringValue"),
    ):
        message.field.add(
            name=name,
            number=number,
            type=kind.TYPE_MESSAGE,
            type_name=f".google.protobuf.{wrapper}",
            label=kind.LABEL_OPTIONAL,
        )
    message.field.add(
        name="allowed_batch_sizes", number=6, type=kind.TYPE_INT64, label=kind.LABEL_REPEATED
    )
    message.field.add(
        name="pad_variable_length_inputs", number=7, type=kind.TYPE_BOOL, label=kind.LABEL_OPTIONAL
    )
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(MESSAGE_NAME))


BatchingParametersProto = _batching_parameters_class()


@dataclass(frozen=True)
class BatchingParameters:
    """What `--enable_batching` runs with; a field left out of the file keeps TF Serving's
    default (SharedBatchScheduler's QueueOptions, BatchScheduler's thread count)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    thread_pool_name: str = "model_server_batch_threads"
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False

    def __post_init__(self):
        """Refuse what TF Serving refuses (ServingConfigError, its message)."""
        for name, value, least in (
            ("num_batch_threads", self.num_batch_threads, 1),
            ("max_batch_size", self.max_batch_size, 1),
            ("batch_timeout_micros", self.batch_timeout_micros, 0),
            ("max_enqueued_batches", self.max_enqueued_batches, 1),
        ):
            if value < least:
                must = "positive" if least else "non-negative"
                raise ServingConfigError(f"{name} must be {must}; was {value}")
        sizes = self.allowed_batch_sizes
        if any(later <= earlier for earlier, later in itertools.pairwise(sizes)):
            raise ServingConfigError("allowed_batch_sizes entries must be monotonically increasing")
        if sizes and sizes[-1] != self.max_batch_size:
            raise ServingConfigError(
                "Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
                f"{sizes[-1]}; expected {self.max_batch_size}"
            )

    @classmethod
    def from_proto(cls, proto) -> BatchingParameters:
        values = {}
        for name in (
            "max_batch_size",
            "batch_timeout_micros",
            "max_enqueued_batches",
            "num_batch_threads",
            "thread_pool_name",
        ):
            if proto.HasField(name):
                values[name] = getattr(proto, name).value
        values["allowed_batch_sizes"] = tuple(proto.allowed_batch_sizes)
        values["pad_variable_length_inputs"] = proto.pad_variable_length_inputs
        return cls(**values)


def parse_batching_parameters(text: str, path: str | os.PathLike) -> BatchingParameters:
    """A text BatchingParameters; a syntax error reads as TF Serving's (protobuf's) own."""
    return BatchingParameters.from_proto(parse_text_proto(text, BatchingParametersProto(), path))


def load_batching_parameters(path: str | os.PathLike) -> BatchingParameters:
    """`--batching_parameters_file`: read and parse it (ServingConfigError if it cannot)."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ServingConfigError(
            f"cannot read batching parameters {path}: {error.strerror}"
        ) from error
    return parse_batching_parameters(text, path)


# -- scheduling


class _Task:
    """One call waiting in a batch: its inputs by tensor name, its size along dimension 0."""

    __slots__ = ("signature", "aliases", "inputs", "size", "done", "outputs", "error")

    def __init__(self, signature, aliases, inputs: dict[str, np.ndarray], size: int):
        self.signature = signature
        self.aliases = aliases
        self.inputs = inputs
        self.size = size
        self.done = threading.Event()
        self.outputs: dict[str, np.ndarray] | None = None
        self.error: ServingError | None = None


class _Batch:
    def __init__(self):
        self.tasks: list[_Task] = []
        self.size = 0
        self.opened = time.monotonic()


class _Queue:
    """The batches of one (servable, signature), oldest first; `process` runs one."""

    def __init__(self, process):
        self.process = process
        self.batches: deque[_Batch] = deque()


class BatchScheduler:
    """TF Serving's SharedBatchScheduler: batch threads shared by every queue."""

    def __init__(self, parameters: BatchingParameters):
        self.parameters = parameters
        self._condition = threading.Condition()
        self._queues: weakref.WeakValueDictionary[int, _Queue] = weakref.WeakValueDictionary()
        self._queue_ids = itertools.count()
        self._turn = 0  # round robin over the queues
        self._stopped = False
        self._threads = [
            threading.Thread(
                target=self._work, name=f"{parameters.thread_pool_name}-{index}", daemon=True
            )
            for index in range(parameters.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def add_queue(self, process) -> _Queue:
        queue = _Queue(process)
        with self._condition:
            self._queues[next(self._queue_ids)] = queue
        return queue

    def schedule(self, queue: _Queue, task: _Task) -> None:
        """Put a task in its queue's open batch, or in a new one; TF Serving's errors."""
        limit = self.parameters.max_batch_size
        if task.size > limit:
            raise invalid_argument(
                f"Task size {task.size} is larger than maximum batch size {limit}"
            )
        with self._condition:
            if self._stopped:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
            batches = queue.batches
            if not batches or batches[-1].size + task.size > limit:
                if len(batches) >= self.parameters.max_enqueued_batches:
                    raise ServingError(
                        grpc.StatusCode.UNAVAILABLE,
                        "The batch scheduling queue to which this task was submitted is full",
                    )
                batches.append(_Batch())
            batch = batches[-1]
            if not batch.tasks:
                batch.opened = time.monotonic()
            batch.tasks.append(task)
            batch.size += task.size
            self._condition.notify()

    def _next_batch(self) -> tuple[_Queue, _Batch] | None:
        """Wait for a batch that may run (full, timed out, or not the newest of its queue);
        None once stopped and drained."""
        timeout = self.parameters.batch_timeout_micros / 1e6
        with self._condition:
            while True:
                queues = list(self._queues.values())
                wait = None
                now = time.monotonic()
                for offset in range(len(queues)):
                    queue = queues[(self._turn + offset) % len(queues)]
                    if not queue.batches:
                        continue
                    batch = queue.batches[0]
                    due = batch.opened + timeout
                    ready = (
                        len(queue.batches) > 1
                        or batch.size >= self.parameters.max_batch_size
                        or now >= due
                        or self._stopped
                    )
                    if ready:
                        self._turn = (self._turn + offset + 1) % len(queues)
                        return queue, queue.batches.popleft()
                    wait = due - now if wait is None else min(wait, due - now)
                if self._stopped:
                    return None
                self._condition.wait(wait)

    def _work(self) -> None:
        while (found := self._next_batch()) is not None:
            queue, batch = found
            queue.process(batch)

    def stop(self) -> None:
        """Run what is queued, then end the threads."""
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout=60)


# -- the batching layer over a runner


def _batch_size(inputs: dict[str, np.ndarray]) -> int:
    """The call's size along dimension 0, checked as TF Serving's ComputeTensorBatchSize."""
    if not inputs:
        raise invalid_argument("Batching Run() must have at least one input tensor")
    sizes = set()
    for value in inputs.values():
        if np.ndim(value) == 0:
            raise invalid_argument("Batching Run() input tensors must have at least one dimension")
        sizes.add(np.shape(value)[0])
    if len(sizes) > 1:
        raise invalid_argument("Batching Run() input tensors must have equal 0th-dimension size")
    return sizes.pop()


def _pad_to(value: np.ndarray, shape: list[int]) -> np.ndarray:
    """Pad every dimension but the 0th up to `shape`, with the tensor's first value."""
    if value.ndim > MAX_PAD_RANK:  # TF Serving refuses them whether or not they need padding
        raise invalid_argument("Only tensors with rank from 1 to 6 can be padded.")
    widths = [(0, 0)] + [(0, target - size) for size, target in zip(value.shape[1:], shape[1:])]
    if all(after == 0 for _, after in widths):
        return value
    if value.size == 0:
        raise invalid_argument("Got empty tensor in batch of non-empty tensors.")
    return np.pad(value, widths, mode="constant", constant_values=value.flat[0])


class BatchingRunner:
    """A runner whose calls are batched across requests (see the module docstring)."""

    def __init__(self, runner, scheduler: BatchScheduler):
        self.runner = runner
        self.scheduler = scheduler
        self._queues: dict[tuple, _Queue] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name):  # kind, loaded, session: the wrapped runner's
        return getattr(self.runner, name)

    def can_run(self, signature_name: str) -> bool:
        return self.runner.can_run(signature_name)

    def run(
        self,
        signature_name: str,
        signature: meta_graph_pb2.SignatureDef,
        feeds: dict[str, np.ndarray],
        aliases: list[str],
    ) -> dict[str, np.ndarray]:
        inputs = {signature.inputs[alias].name: np.asarray(value) for alias, value in feeds.items()}
        outputs = {signature.outputs[alias].name for alias in aliases}
        key = (frozenset(inputs), frozenset(outputs))
        whole = (
            frozenset(info.name for info in signature.inputs.values()),
            frozenset(info.name for info in signature.outputs.values()),
        )
        if key != whole:  # not one of the signatures: TF Serving bypasses the batcher
            return self.runner.run(signature_name, signature, feeds, aliases)
        task = _Task((signature_name, signature), aliases, inputs, _batch_size(inputs))
        self.scheduler.schedule(self._queue(key), task)
        task.done.wait()
        if task.error is not None:
            raise task.error
        return {alias: task.outputs[signature.outputs[alias].name] for alias in aliases}

    def _queue(self, key: tuple) -> _Queue:
        with self._lock:
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = self.scheduler.add_queue(self._process)
            return queue

    def _process(self, batch: _Batch) -> None:
        """Merge, run once, split; every task is told its outcome, whatever happens."""
        try:
            for task, outputs in zip(batch.tasks, self._run_batch(batch), strict=True):
                task.outputs = outputs
        except ServingError as error:
            for task in batch.tasks:  # one exception each: each is raised in its own thread
                task.error = ServingError(error.code, error.message)
        except Exception as error:  # noqa: BLE001 - answered as INTERNAL, never lost
            for task in batch.tasks:
                task.error = ServingError(grpc.StatusCode.INTERNAL, first_line(error))
        finally:
            for task in batch.tasks:
                task.done.set()

    def _run_batch(self, batch: _Batch) -> list[dict[str, np.ndarray]]:
        tasks = batch.tasks
        allowed = self.scheduler.parameters.allowed_batch_sizes
        padded_size = next((size for size in allowed if size >= batch.size), batch.size)
        padding = padded_size - batch.size
        merged = {name: self._merge(name, tasks, padding) for name in tasks[0].inputs}
        # The first task's signature runs the batch: every task fetches the same tensors.
        signature_name, signature = tasks[0].signature
        feeds = {alias: merged[info.name] for alias, info in signature.inputs.items()}
        aliases = sorted(signature.outputs)
        results = self.runner.run(signature_name, signature, feeds, aliases)
        by_name = {signature.outputs[alias].name: results[alias] for alias in aliases}
        bounds = np.cumsum([task.size for task in tasks])[:-1]
        split = {}
        for name, value in by_name.items():
            if np.ndim(value) == 0:
                raise ServingError(
                    grpc.StatusCode.FAILED_PRECONDITION, "Batched output tensor has 0 dimensions"
                )
            if value.shape[0] != padded_size:
                raise ServingError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "Batched output tensor's 0th dimension does not equal the sum of the 0th "
                    "dimension sizes of the input tensors",
                )
            split[name] = np.split(value[: batch.size], bounds)
        return [
            {name: parts[index] for name, parts in split.items()} for index in range(len(tasks))
        ]

    def _merge(self, name: str, tasks: list[_Task], padding: int) -> np.ndarray:
        values = [task.inputs[name] for task in tasks]
        if self.scheduler.parameters.pad_variable_length_inputs:
            if len({value.ndim for value in values}) > 1:
                raise ServingError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Tensors with name '{name}' from different tasks have different ranks",
                )
            shape = np.max([value.shape for value in values], axis=0).tolist()
            values = [_pad_to(value, shape) for value in values]
        elif any(value.shape[1:] != values[0].shape[1:] for value in values[1:]):
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Tensors with name '{name}' from different tasks have different shapes and "
                "padding is turned off. Set pad_variable_length_inputs to true, or ensure that "
                "all tensors with the same name have equal dimensions starting with the first "
                "dim.",
            )
        if padding:
            values.append(np.repeat(values[-1][:1], padding, axis=0))
        return values[0] if len(values) == 1 else np.concatenate(values, axis=0)
