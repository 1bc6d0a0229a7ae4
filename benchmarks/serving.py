"""gRPC serving overhead: the embedded server against calling the SavedModel in process.

    .venv/bin/python benchmarks/serving.py                      # the tiny test model
    .venv/bin/python benchmarks/serving.py --model-base-path models/seqcast
    .venv/bin/python benchmarks/serving.py --same-process     # server thread in this process
    .venv/bin/python benchmarks/serving.py --skip-model       # gRPC without the model's call
    .venv/bin/python benchmarks/serving.py --only-batching    # just the batching table

Latency (p50, p99 over --requests calls) at batch 1 and 256 for both signatures, the
bare gRPC round trip (a health check: the floor under every gRPC figure), and
throughput of batch-1 `serving_default` requests with 1, 8 and 32 concurrent clients
(each gRPC client on its own channel), for --seconds each. Prints Markdown tables.

Then server-side batching: 32 concurrent clients of batch-1 `serving_default` against three
servers running side by side, without batching, with `--enable_batching` at TF Serving's
defaults and with serving/deploy/batching_parameters.txt, over gRPC and (each client on its
own keep-alive connection) REST. The three are measured in turn, --repeats times, and the
table quotes medians: of the rates, and of the ratios to the server without batching
within each repetition. Warmup records that TF Serving's batching refuses (a rank-0 input,
`forecast`'s horizon) are left out of the copy these servers load, as they would fail its
load.

"In process" is what a Python program holding the model does: `tf.constant` the input
and call the loaded signature. "gRPC" is a full round trip through ForecastClient-style
code: `tf.make_tensor_proto`, PredictionService.Predict over loopback, `tf.make_ndarray`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `serving` is the package of this checkout, not this file

TIME_LENGTH = 30
HORIZON = 30


def tiny_model(directory: Path) -> Path:
    """The serving tests' contract-conforming model (tests/serving_fixtures.py)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import serving_fixtures

    serving_fixtures.write_version(directory, 1, weight=0.9, bias=1.0)
    return directory


# argv: model name, base path, workers, batching ("": off, "defaults", or a parameters
# file), "rest" for a REST port too. Prints the gRPC port, the version, the REST port (or 0).
SERVER_SCRIPT = """
import signal, sys, threading
from serving.batching import BatchingParameters, load_batching_parameters
from serving.config import single_model_config
from serving.server import ModelServer
name, base_path, workers, batching, rest = sys.argv[1:6]
if batching == "defaults":
    batching = BatchingParameters()
elif batching:
    batching = load_batching_parameters(batching)
server = ModelServer(
    single_model_config(name, base_path), port=0, workers=int(workers),
    batching=batching or None, rest_api_port=0 if rest == "rest" else None,
).start()
rest_port = server.rest.port if server.rest is not None else 0
print(server.port, max(server.manager.available()[name]), rest_port, flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
server.stop(grace=1.0)
"""


# --skip-model: the server parses and checks each request as always, then answers with the
# response it gave the first request of the same signature and shapes, without calling the
# model again. What is left is the cost of gRPC and of the server's own request handling.
SKIP_MODEL = """
from serving.servable import DEFAULT_SIGNATURE, Servable
_predict, _answers = Servable.predict, {}
def predict(self, request):
    name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    feeds = self._inputs(self.signature_defs[name], request)
    key = (name, tuple((alias, value.shape) for alias, value in sorted(feeds.items())))
    if key not in _answers:
        _answers[key] = _predict(self, request)
    return _answers[key]
Servable.predict = predict
"""


class RunningServer:
    def __init__(self, address: str, version: int, stop, rest_address: str | None = None):
        self.address, self.version, self.stop = address, version, stop
        self.rest_address = rest_address


def start_server_thread(base_path: Path, model_name: str, workers: int) -> RunningServer:
    from serving.config import single_model_config
    from serving.server import ModelServer

    config = single_model_config(model_name, str(base_path))
    server = ModelServer(config, port=0, workers=workers).start()
    version = max(server.manager.available()[model_name])
    return RunningServer(server.address, version, lambda: server.stop(grace=1.0))


def start_server_process(
    base_path: Path,
    model_name: str,
    workers: int,
    skip_model: bool = False,
    batching: str = "",
    rest: bool = False,
) -> RunningServer:
    script = (SKIP_MODEL if skip_model else "") + SERVER_SCRIPT
    command = [sys.executable, "-c", script, model_name, str(base_path), str(workers)]
    command += [batching, "rest" if rest else ""]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline().split()
    if len(line) != 3:
        process.kill()
        raise SystemExit("the server process did not start")

    def stop():
        process.terminate()
        process.wait(timeout=60)

    rest_address = f"127.0.0.1:{line[2]}" if rest else None
    return RunningServer(f"127.0.0.1:{line[0]}", int(line[1]), stop, rest_address)


def make_inputs(signature: str, batch: int, time_length: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch)
    series = rng.normal(50.0, 10.0, size=(batch, time_length)).astype(np.float32)
    if signature == "serving_default":
        return {"window": series}
    return {"series": series, "horizon": np.int32(HORIZON)}


def served_time_length(version_dir: Path) -> int:
    """`TIME_LENGTH`, or the model's trained window if that is longer (seqcast.json)."""
    metadata = version_dir / "assets.extra" / "seqcast.json"
    if metadata.is_file():
        return max(TIME_LENGTH, int(json.loads(metadata.read_text())["window_size"]))
    return TIME_LENGTH


def in_process_call(function, inputs):
    def call():
        outputs = function(**{alias: tf.constant(value) for alias, value in inputs.items()})
        return {alias: tensor.numpy() for alias, tensor in outputs.items()}

    return call


def grpc_call(stub, model_name: str, signature: str, inputs):
    def call():
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature
        for alias, value in inputs.items():
            request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
        response = stub.Predict(request, timeout=60)
        return {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}

    return call


def latencies(calls, requests: int) -> list[tuple[float, float]]:
    """(p50, p99) in milliseconds for each call, after a warmup. The calls alternate, so
    load from other processes on the machine falls on all of them alike."""
    for _ in range(min(50, requests)):
        for call in calls:
            call()
    seconds = [[] for _ in calls]
    for _ in range(requests):
        for index, call in enumerate(calls):
            start = time.perf_counter()
            call()
            seconds[index].append(time.perf_counter() - start)
    return [tuple(float(x) for x in np.percentile(s, [50, 99]) * 1000) for s in seconds]


def throughput(make_call, clients: int, seconds: float) -> float:
    """Requests per second from `clients` threads, each looping on its own call."""
    calls = [make_call() for _ in range(clients)]
    for call in calls:
        call()
    counts = [0] * clients
    stop = threading.Event()

    def worker(index):
        while not stop.is_set():
            calls[index]()
            counts[index] += 1

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - start)


BATCHING_SERVERS = (
    ("no batching", ""),
    ("`--enable_batching`, TF Serving's defaults", "defaults"),
    (
        "`--enable_batching`, serving/deploy/batching_parameters.txt",
        str(ROOT / "serving" / "deploy" / "batching_parameters.txt"),
    ),
)
BATCHING_CLIENTS = 32


def batchable_copy(base_path: Path, version: int, scratch: Path) -> Path:
    """A base path holding a copy of the version, without the warmup records TF Serving's
    batching refuses (a rank-0 input): with them its load would fail, as TF Serving's."""
    target = scratch / "batchable" / str(version)
    shutil.copytree(base_path / str(version), target)
    warmup = target / "assets.extra" / "tf_serving_warmup_requests"
    if warmup.exists():
        records = [record.numpy() for record in tf.data.TFRecordDataset(str(warmup))]
        with tf.io.TFRecordWriter(str(warmup)) as writer:
            for record in records:
                log = prediction_log_pb2.PredictionLog.FromString(record)
                inputs = log.predict_log.request.inputs.values()
                if all(tensor.tensor_shape.dim for tensor in inputs):
                    writer.write(record)
    return target.parent


def rest_call(address: str, model_name: str, inputs):
    """A REST Predict (row format) on its own keep-alive connection."""
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    body = json.dumps({"instances": inputs["window"].tolist()})
    path = f"/v1/models/{model_name}:predict"

    def call():
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"REST predict answered {response.status}: {data[:200]!r}")
        return json.loads(data)["predictions"]

    return call


def batching_table(base_path: Path, version: int, args, scratch: Path) -> None:
    """Throughput of BATCHING_CLIENTS concurrent clients against BATCHING_SERVERS, side by
    side: medians over --repeats of the rates and of the ratios to the first server."""
    time_length = served_time_length(base_path / str(version))
    copy = batchable_copy(base_path, version, scratch)
    inputs = make_inputs("serving_default", 1, time_length)
    apis = ("gRPC", "REST") if args.rest else ("gRPC",)
    servers = []
    try:
        for _, batching in BATCHING_SERVERS:
            servers.append(
                start_server_process(
                    copy, args.model_name, args.workers, batching=batching, rest=args.rest
                )
            )

        def client(server, api):
            if api == "REST":
                return lambda: rest_call(server.rest_address, args.model_name, inputs)

            def make():
                channel = grpc.insecure_channel(server.address)
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                return grpc_call(stub, args.model_name, "serving_default", inputs)

            return make

        expected = grpc_call(
            prediction_service_pb2_grpc.PredictionServiceStub(
                grpc.insecure_channel(servers[0].address)
            ),
            args.model_name,
            "serving_default",
            inputs,
        )()["forecast"]
        for server in servers:  # batched answers are the unbatched ones
            answer = client(server, "gRPC")()()["forecast"]
            np.testing.assert_allclose(answer, expected, rtol=1e-6, atol=1e-6)
        rates = {(index, api): [] for index in range(len(servers)) for api in apis}
        for _ in range(args.repeats):
            for api in apis:
                for index, server in enumerate(servers):
                    rate = throughput(client(server, api), BATCHING_CLIENTS, args.seconds)
                    rates[index, api].append(rate)
    finally:
        for server in servers:
            server.stop()
    print(
        f"\n{BATCHING_CLIENTS} concurrent clients, batch-1 serving_default, medians of "
        f"{args.repeats} repetitions of {args.seconds:g} s:\n"
    )
    header = " | ".join(f"{api} req/s | {api} ratio" for api in apis)
    print(f"| server | {header} |")
    print("|---|" + "---:|---:|" * len(apis))
    for index, (label, _) in enumerate(BATCHING_SERVERS):
        cells = []
        for api in apis:
            ratios = np.divide(rates[index, api], rates[0, api])
            cells.append(f"{np.median(rates[index, api]):.0f} | {np.median(ratios):.2f}")
        print(f"| {label} | {' | '.join(cells)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-base-path", help="An exported model (default: a tiny one).")
    parser.add_argument("--model-name", default="bench")
    parser.add_argument("--requests", type=int, default=500, help="Calls per latency figure.")
    parser.add_argument("--seconds", type=float, default=3.0, help="Per throughput figure.")
    parser.add_argument("--workers", type=int, default=16, help="Server worker threads.")
    parser.add_argument(
        "--repeats", type=int, default=5, help="Repetitions of each batching figure."
    )
    parser.add_argument(
        "--only-batching", action="store_true", help="Only the batching throughput table."
    )
    parser.add_argument(
        "--no-rest", dest="rest", action="store_false", help="No REST rows in that table."
    )
    parser.add_argument(
        "--same-process",
        action="store_true",
        help="Run the server in this process (one interpreter for client and server).",
    )
    parser.add_argument(
        "--skip-model",
        action="store_true",
        help="The server checks each request but answers without calling the model: the "
        "gRPC latency that is not the model's (no in-process column, no throughput).",
    )
    args = parser.parse_args()
    if args.skip_model and args.same_process:
        parser.error("--skip-model runs the server in its own process")
    if args.only_batching and (args.skip_model or args.same_process):
        parser.error("--only-batching runs its own servers, each in its own process")

    with tempfile.TemporaryDirectory() as scratch:
        base_path = (
            Path(args.model_base_path) if args.model_base_path else tiny_model(Path(scratch))
        )
        if args.only_batching:
            versions = [int(p.name) for p in base_path.iterdir() if p.name.isdigit()]
            batching_table(base_path, max(versions), args, Path(scratch))
            return
        # By default the server runs in its own process, as it would in production.
        if args.same_process:
            server = start_server_thread(base_path, args.model_name, args.workers)
        else:
            server = start_server_process(
                base_path, args.model_name, args.workers, skip_model=args.skip_model
            )
        try:
            address, version = server.address, server.version
            loaded = tf.saved_model.load(str(base_path / str(version)))
            time_length = served_time_length(base_path / str(version))
            channel = grpc.insecure_channel(address)
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            print(
                f"model {args.model_name} version {version}, time length {time_length}, "
                f"forecast horizon {HORIZON}, {os.cpu_count()} CPUs, server workers "
                f"{args.workers}, server in "
                f"{'the same process' if args.same_process else 'its own process'}\n"
            )
            # The floor under every figure below: a gRPC round trip that does no work.
            health_stub = health_pb2_grpc.HealthStub(channel)
            ((bare_p50, bare_p99),) = latencies(
                [lambda: health_stub.Check(health_pb2.HealthCheckRequest(), timeout=60)],
                args.requests,
            )
            print(
                f"bare gRPC round trip (grpc.health.v1 Check, no model): p50 {bare_p50:.3f} ms, "
                f"p99 {bare_p99:.3f} ms\n"
            )
            if args.skip_model:
                print("| signature | batch | gRPC p50 / p99 ms, model call skipped |")
                print("|---|---:|---:|")
            else:
                print(
                    "| signature | batch | in-process p50 / p99 ms | gRPC p50 / p99 ms "
                    "| p50 overhead ms |"
                )
                print("|---|---:|---:|---:|---:|")
            for signature in ("serving_default", "forecast"):
                for batch in (1, 256):
                    inputs = make_inputs(signature, batch, time_length)
                    local = in_process_call(loaded.signatures[signature], inputs)
                    remote = grpc_call(stub, args.model_name, signature, inputs)
                    for alias, value in local().items():
                        np.testing.assert_allclose(remote()[alias], value, rtol=1e-6, atol=1e-6)
                    if args.skip_model:
                        ((remote_p50, remote_p99),) = latencies([remote], args.requests)
                        print(f"| {signature} | {batch} | {remote_p50:.3f} / {remote_p99:.3f} |")
                        continue
                    (local_p50, local_p99), (remote_p50, remote_p99) = latencies(
                        [local, remote], args.requests
                    )
                    print(
                        f"| {signature} | {batch} | {local_p50:.3f} / {local_p99:.3f} "
                        f"| {remote_p50:.3f} / {remote_p99:.3f} "
                        f"| {remote_p50 - local_p50:+.3f} |",
                        flush=True,
                    )

            if args.skip_model:
                return
            print("\n| concurrent clients | in-process req/s | gRPC req/s |")
            print("|---:|---:|---:|")
            inputs = make_inputs("serving_default", 1, time_length)
            function = loaded.signatures["serving_default"]

            def remote_client():
                client_channel = grpc.insecure_channel(address)
                client_stub = prediction_service_pb2_grpc.PredictionServiceStub(client_channel)
                return grpc_call(client_stub, args.model_name, "serving_default", inputs)

            for clients in (1, 8, 32):
                local_rate = throughput(
                    lambda: in_process_call(function, inputs), clients, args.seconds
                )
                remote_rate = throughput(remote_client, clients, args.seconds)
                print(f"| {clients} | {local_rate:.0f} | {remote_rate:.0f} |", flush=True)
            channel.close()
        finally:
            server.stop()
        if not args.skip_model:
            batching_table(base_path, version, args, Path(scratch))


if __name__ == "__main__":
    main()
