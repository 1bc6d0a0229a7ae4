"""Server-side batching (`--enable_batching`, serving/batching.py), as TF Serving batches:
concurrent Predicts merged along dimension 0 into one model call and split back, padding to
an allowed batch size and of variable-length inputs, TF Serving's refusals, and bad
`--batching_parameters_file`s refused with one line (exit 2)."""

from __future__ import annotations

import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest
import serving_fixtures as fixtures
import tensorflow as tf
from cli_runner import engine_in_process
from tensorflow_serving.apis import model_pb2, prediction_service_pb2_grpc

from serving.batching import BatchingParameters, BatchingRunner, parse_batching_parameters
from serving.config import single_model_config
from serving.errors import ServingConfigError
from serving.server import ModelServer

REPO = Path(__file__).resolve().parents[1]
WEIGHT, BIAS = 0.5, 2.0
TIMEOUT = 30


@pytest.fixture(scope="module")
def base_path(tmp_path_factory):
    """The tiny model without warmup records: its `forecast` one has a scalar `horizon`,
    which TF Serving's batching refuses (and so the load), and a warmup request would wait
    out the long batch timeouts below."""
    path = tmp_path_factory.mktemp("batching") / "m"
    fixtures.write_version(path, 1, WEIGHT, BIAS, warmup=[])
    return path


class CountingRunner:
    """The servable's own runner, recording the batch size of every call; `gate` (when set)
    holds each call until it is released."""

    def __init__(self, runner):
        self.runner = runner
        self.sizes: list[int] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def __getattr__(self, name):
        return getattr(self.runner, name)

    def run(self, signature_name, signature, feeds, aliases):
        self.sizes.append(int(next(iter(feeds.values())).shape[0]))
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(TIMEOUT)
        return self.runner.run(signature_name, signature, feeds, aliases)


class Batched:
    """An in-process server with batching, its stub and the counting runner under it."""

    def __init__(self, base_path, **parameters):
        self.server = ModelServer(
            single_model_config("m", str(base_path)),
            port=0,
            batching=BatchingParameters(**parameters),
        ).start()
        self.batching_runner = self.server.manager.resolve(model_pb2.ModelSpec(name="m")).runner
        assert isinstance(self.batching_runner, BatchingRunner)
        self.counter = self.batching_runner.runner = CountingRunner(self.batching_runner.runner)
        self.channel = grpc.insecure_channel(self.server.address)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def predict(self, window) -> np.ndarray:
        request = fixtures.window_request(np.asarray(window, np.float32), model="m")
        return tf.make_ndarray(self.stub.Predict(request, timeout=TIMEOUT).outputs["forecast"])

    def concurrently(self, windows) -> list:
        """Predict every window at once, each on its own thread: the answers (or errors)."""
        with futures.ThreadPoolExecutor(len(windows)) as pool:
            calls = [pool.submit(self.predict, window) for window in windows]
            return [call.exception(TIMEOUT) or call.result() for call in calls]

    def close(self):
        self.channel.close()
        self.server.stop(grace=1.0)


@pytest.fixture
def batched(base_path, request):
    server = Batched(base_path, **request.param)
    yield server
    server.close()


def expected(window) -> np.ndarray:
    window = np.asarray(window, np.float32)
    return WEIGHT * window[:, -fixtures.WINDOW_SIZE :].mean(axis=1, keepdims=True) + BIAS


def windows(count: int, length: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(count)
    return [rng.normal(10, 3, size=(1, length)).astype(np.float32) for _ in range(count)]


# A long timeout and a batch of exactly the requests sent: the batch runs when it is full.
FULL_AT_FOUR = {"max_batch_size": 4, "batch_timeout_micros": 20_000_000, "num_batch_threads": 1}


@pytest.mark.parametrize("batched", [FULL_AT_FOUR], indirect=True)
def test_concurrent_requests_run_as_one_call_with_unbatched_results(batched):
    sent = windows(4)
    answers = batched.concurrently(sent)
    assert batched.counter.sizes == [4]  # the four requests as one call
    for window, answer in zip(sent, answers, strict=True):
        assert answer.shape == (1, 1)
        np.testing.assert_allclose(answer, expected(window), rtol=1e-6)


@pytest.mark.parametrize(
    "batched",
    [{"max_batch_size": 4, "allowed_batch_sizes": (2, 4), "batch_timeout_micros": 0}],
    indirect=True,
)
def test_a_batch_is_padded_to_the_next_allowed_size(batched):
    window = np.arange(12, dtype=np.float32).reshape(3, 4)
    answer = batched.predict(window)
    assert batched.counter.sizes == [4]  # 3 rows, padded to 4
    assert answer.shape == (3, 1)  # the padding rows are not answered
    np.testing.assert_allclose(answer, expected(window), rtol=1e-6)


@pytest.mark.parametrize("batched", [FULL_AT_FOUR], indirect=True)
def test_a_request_above_max_batch_size_is_refused(batched):
    with pytest.raises(grpc.RpcError) as caught:
        batched.predict(np.ones((5, 4), np.float32))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "Task size 5 is larger than maximum batch size 4"
    np.testing.assert_allclose(batched.predict(np.ones((4, 4))), np.full((4, 1), 2.5))


@pytest.mark.parametrize("batched", [FULL_AT_FOUR], indirect=True)
def test_rank_0_inputs_are_refused_as_tf_serving_does(batched):
    request = fixtures.forecast_request(np.ones((1, 4), np.float32), 2)
    request.model_spec.name = "m"
    with pytest.raises(grpc.RpcError) as caught:
        batched.stub.Predict(request, timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "Batching Run() input tensors must have at least one dimension"


TWO = {"max_batch_size": 2, "batch_timeout_micros": 20_000_000, "num_batch_threads": 1}


@pytest.mark.parametrize("batched", [TWO], indirect=True)
def test_different_lengths_cannot_share_a_batch_without_padding(batched):
    errors = batched.concurrently([np.ones((1, 4)), np.ones((1, 6))])
    for error in errors:
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "have different shapes and padding is turned off" in error.details()


@pytest.mark.parametrize("batched", [{**TWO, "pad_variable_length_inputs": True}], indirect=True)
def test_variable_length_inputs_are_padded_with_their_first_value(batched):
    short, long = np.array([[1, 2, 3, 4]], np.float32), np.arange(6, dtype=np.float32)[None]
    short_answer, long_answer = batched.concurrently([short, long])
    assert batched.counter.sizes == [2]
    # As TF Serving pads: [1, 2, 3, 4] -> [1, 2, 3, 4, 1, 1], whose last window the model reads.
    np.testing.assert_allclose(short_answer, expected([[1, 2, 3, 4, 1, 1]]), rtol=1e-6)
    np.testing.assert_allclose(long_answer, expected(long), rtol=1e-6)


@pytest.mark.parametrize(
    "batched",
    [{"max_batch_size": 1, "max_enqueued_batches": 1, "num_batch_threads": 1}],
    indirect=True,
)
def test_a_full_queue_answers_unavailable(batched):
    counter = batched.counter
    counter.gate, counter.entered = threading.Event(), threading.Event()
    with futures.ThreadPoolExecutor(2) as pool:
        running = pool.submit(batched.predict, np.ones((1, 4)))  # holds the batch thread
        assert counter.entered.wait(TIMEOUT)
        queued = pool.submit(batched.predict, np.ones((1, 4)))  # the one enqueued batch
        queue = next(iter(batched.batching_runner._queues.values()))  # noqa: SLF001
        try:
            for _ in range(600):  # until the second request is in the queue
                if queue.batches:
                    break
                time.sleep(0.05)
            with pytest.raises(grpc.RpcError) as caught:
                batched.predict(np.ones((1, 4)))
        finally:
            counter.gate.set()
        assert running.result(TIMEOUT).shape == queued.result(TIMEOUT).shape == (1, 1)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert caught.value.details() == (
        "The batch scheduling queue to which this task was submitted is full"
    )


def test_batching_parameters_parse_as_tf_serving_reads_them(tmp_path):
    text = (
        "max_batch_size { value: 8 }\nbatch_timeout_micros { value: 500 }\n"
        "num_batch_threads { value: 2 }  # a comment\nallowed_batch_sizes: [2, 8]\n"
        "pad_variable_length_inputs: true\nthread_pool_name { value: 'pool' }\n"
    )
    parameters = parse_batching_parameters(text, "b.txt")
    assert parameters == BatchingParameters(
        max_batch_size=8,
        batch_timeout_micros=500,
        max_enqueued_batches=10,
        num_batch_threads=2,
        thread_pool_name="pool",
        allowed_batch_sizes=(2, 8),
        pad_variable_length_inputs=True,
    )
    assert parse_batching_parameters("", "b.txt").max_batch_size == 1000  # TF's default
    with pytest.raises(ServingConfigError, match="must match max_batch_size; last entry was 4"):
        parse_batching_parameters("allowed_batch_sizes: 4", "b.txt")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "max_batch_size: 8",
            "Invalid protobuf file: 'FILE': Error parsing text-format "
            "tensorflow.serving.BatchingParameters: 1:",
        ),
        (
            "max_batch_sise { value: 8 }",
            'Message type "tensorflow.serving.BatchingParameters" has no field named '
            '"max_batch_sise".',
        ),
        ("max_batch_size { value: 0 }", "max_batch_size must be positive; was 0"),
        ("num_batch_threads { value: 0 }", "num_batch_threads must be positive; was 0"),
        (
            "max_batch_size { value: 8 } allowed_batch_sizes: [2, 4]",
            "Last entry in allowed_batch_sizes must match max_batch_size; last entry was 4; "
            "expected 8",
        ),
        ("max_batch_size { value: 4 } allowed_batch_sizes: [4, 2, 4]", "monotonically"),
        (None, "cannot read batching parameters"),
    ],
)
def test_engine_serve_refuses_bad_batching_parameter_files(
    base_path, tmp_path, capsys, text, fragment
):
    path = tmp_path / "batching.txt"
    if text is not None:
        path.write_text(text)
    argv = ["serve", "--model-base-path", str(base_path), "--port", "0", "--enable_batching"]
    code, _, err = engine_in_process(capsys, *argv, "--batching_parameters_file", str(path))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert fragment.replace("FILE", str(path)) in err


def test_engine_serve_wants_enable_batching_with_a_parameters_file(base_path, tmp_path, capsys):
    path = tmp_path / "batching.txt"
    path.write_text("max_batch_size { value: 8 }")
    argv = ["serve", "--model-base-path", str(base_path), "--batching-parameters-file", str(path)]
    code, _, err = engine_in_process(capsys, *argv)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert (
        "server_options.batching_parameters_file is set without setting "
        "server_options.enable_batching to true." in err
    )


def test_engine_serve_batches_with_tf_servings_flags(base_path):
    """The command line as TF Serving's is spelled, with serving/deploy/'s parameters."""
    parameters = REPO / "serving" / "deploy" / "batching_parameters.txt"
    port = fixtures.free_port()
    args = ["--model_base_path", base_path, f"--port={port}", "--quiet", "--enable_batching"]
    with fixtures.engine_serve_process(
        *args, f"--batching_parameters_file={parameters}"
    ) as process:
        assert process.stdout.readline().startswith(f"engine serve: ready on 127.0.0.1:{port}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            window = np.arange(8, dtype=np.float32).reshape(2, 4)
            request = fixtures.window_request(window, model="seqcast")
            answer = tf.make_ndarray(stub.Predict(request, timeout=TIMEOUT).outputs["forecast"])
        np.testing.assert_allclose(answer, expected(window), rtol=1e-6)
