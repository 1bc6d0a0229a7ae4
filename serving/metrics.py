"""TF Serving's request metrics and its Prometheus page (`--monitoring_config_file`).

Recorded as TF Serving records them:

- `/tensorflow/serving/request_count` {model_name, status}: every gRPC Predict, Classify and
  Regress, with its status code's name (OK, INVALID_ARGUMENT, ...);
- `/tensorflow/serving/request_latency` {model_name, API, entrypoint}: microseconds, for a
  successful gRPC call (API `Predict`, `Classify`, `Regress`, entrypoint `GRPC`) and for
  every REST request (API `predict`, `classify`, `regress`, or empty for status and
  metadata; entrypoint `REST`); buckets 10 * 1.8^i, i < 33, as TF Serving's.

The page prints them in Prometheus' text format under TF Serving's names
(`:tensorflow:serving:request_count`, ...), the same lines TF Serving's PrometheusExporter
writes. The monitoring config is TF Serving's MonitoringConfig text proto:
`prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }`.
"""

from __future__ import annotations

import bisect
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from serving.errors import ServingConfigError

DEFAULT_PATH = "/monitoring/prometheus/metrics"  # PrometheusExporter::kPrometheusPath
REQUEST_COUNT = "/tensorflow/serving/request_count"
REQUEST_LATENCY = "/tensorflow/serving/request_latency"


def _bucket_limits(scale: float = 10.0, growth: float = 1.8, count: int = 33) -> list[float]:
    """monitoring::Buckets::Exponential: scale * growth^i by repeated products, then DBL_MAX."""
    limits, bound = [], scale
    for _ in range(count):
        limits.append(bound)
        bound *= growth
    return [*limits, 1.7976931348623157e308]


LATENCY_BUCKETS = _bucket_limits()


@dataclass(frozen=True)
class MonitoringSettings:
    """What TF Serving's MonitoringConfig says about the Prometheus page."""

    enable: bool = False
    path: str = DEFAULT_PATH


def _monitoring_config_class():
    """TF Serving's monitoring_config.proto, built here (tensorflow-serving-api lacks it)."""
    source = descriptor_pb2.FileDescriptorProto(
        name="seqcast/tensorflow_serving/config/monitoring_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
    )
    prometheus = source.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=8, label=1, json_name="enable")
    prometheus.field.add(name="path", number=2, type=9, label=1, json_name="path")
    monitoring = source.message_type.add(name="MonitoringConfig")
    monitoring.field.add(
        name="prometheus_config",
        number=1,
        type=11,
        label=1,
        type_name=".tensorflow.serving.PrometheusConfig",
        json_name="prometheusConfig",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(source)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig")
    )


MonitoringConfig = _monitoring_config_class()


def load_monitoring_config(path: str) -> MonitoringSettings:
    """Read a MonitoringConfig text proto; ServingConfigError when unreadable or invalid."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ServingConfigError(f"cannot read {path}: {error}") from error
    config = MonitoringConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ServingConfigError(f"Invalid protobuf file: '{path}': {error}") from error
    prometheus = config.prometheus_config
    return MonitoringSettings(enable=prometheus.enable, path=prometheus.path or DEFAULT_PATH)


def _prometheus_name(name: str) -> str:
    name = re.sub(r"[^a-zA-Z0-9_]", ":", name)
    return f"_{name}" if name[:1].isdigit() else name


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _number(value: float) -> str:
    """absl::StrCat of a double: six significant digits."""
    return f"{value:g}"


class Metrics:
    """Counters and latency histograms, and their Prometheus page."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        # labels -> (bucket counts, sum)
        self._latency: dict[tuple[str, str, str], tuple[list[int], float]] = {}

    def record_request(self, model_name: str, code: grpc.StatusCode) -> None:
        key = (model_name, code.name)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def record_latency(self, model_name: str, api: str, entrypoint: str, micros: float) -> None:
        # TF's histogram: a value goes to the first bucket whose limit exceeds it.
        bucket = min(bisect.bisect_right(LATENCY_BUCKETS, micros), len(LATENCY_BUCKETS) - 1)
        key = (model_name, api, entrypoint)
        with self._lock:
            counts, total = self._latency.get(key, ([0] * len(LATENCY_BUCKETS), 0.0))
            counts[bucket] += 1
            self._latency[key] = (counts, total + int(micros))

    def prometheus_page(self) -> str:
        """PrometheusExporter::GeneratePage: metrics by name, one line each, "\\n" ended."""
        with self._lock:
            counts = sorted(self._counts.items())
            latency = sorted((key, (list(c), s)) for key, (c, s) in self._latency.items())
        lines = [f"# TYPE {_prometheus_name(REQUEST_COUNT)} counter"]
        for (model_name, status), count in counts:
            labels = f'model_name="{_label_value(model_name)}",status="{_label_value(status)}"'
            lines.append(f"{_prometheus_name(REQUEST_COUNT)}{{{labels}}} {count}")
        name = _prometheus_name(REQUEST_LATENCY)
        lines.append(f"# TYPE {name} histogram")
        for (model_name, api, entrypoint), (buckets, total) in latency:
            labels = (
                f'model_name="{_label_value(model_name)}",API="{_label_value(api)}",'
                f'entrypoint="{_label_value(entrypoint)}"'
            )
            cumulative = 0
            for index, count in enumerate(buckets):
                cumulative += count
                limit = "+Inf" if index == len(buckets) - 1 else _number(LATENCY_BUCKETS[index])
                lines.append(f'{name}_bucket{{{labels},le="{limit}"}} {cumulative}')
            lines.append(f"{name}_sum{{{labels}}} {_number(total)}")
            lines.append(f"{name}_count{{{labels}}} {cumulative}")
        return "\n".join(lines) + "\n"


class _RecordingContext:
    """A grpc.ServicerContext that remembers the status code the handler answers with."""

    def __init__(self, context):
        self._context = context
        self.code = grpc.StatusCode.OK

    def abort(self, code, details):
        self.code = code
        return self._context.abort(code, details)

    def abort_with_status(self, status):
        self.code = status.code
        return self._context.abort_with_status(status)

    def set_code(self, code):
        self.code = code
        return self._context.set_code(code)

    def __getattr__(self, name):
        return getattr(self._context, name)


class MeteredPredictionServicer:
    """A PredictionService servicer whose Predict, Classify and Regress are counted and timed
    as TF Serving's PredictionServiceImpl does; everything else passes through."""

    _APIS = ("Predict", "Classify", "Regress")

    def __init__(self, servicer, metrics: Metrics):
        self._servicer = servicer
        self._metrics = metrics

    def __getattr__(self, name):
        attribute = getattr(self._servicer, name)
        if name not in self._APIS:
            return attribute

        def metered(request, context):
            start = time.monotonic()
            recording = _RecordingContext(context)
            try:
                return attribute(request, recording)
            except Exception:
                if recording.code == grpc.StatusCode.OK:
                    recording.code = grpc.StatusCode.UNKNOWN  # what grpc answers for a raise
                raise
            finally:
                model_name = request.model_spec.name
                if recording.code == grpc.StatusCode.OK:
                    micros = (time.monotonic() - start) * 1e6
                    self._metrics.record_latency(model_name, name, "GRPC", micros)
                self._metrics.record_request(model_name, recording.code)

        return metered
