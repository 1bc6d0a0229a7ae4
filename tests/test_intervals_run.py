"""The conformal band end to end: calibrated by `engine train` on the selection slice, held
to its coverage on the reported part, exported into the graph, served over gRPC and shown
by `engine forecast` and `engine backtest`.

The series has a known noise: a sine of period 25 plus Gaussian noise of standard
deviation 1, 3000 points, the last 20% reported, the last 30% of the training part the
selection slice (720 points, so 691 calibration origins at 30 steps).
"""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
import tensorflow as tf
from cli_runner import engine_in_process
from serving_fixtures import rpc_error
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.client import ForecastClient
from serving.config import single_model_config
from serving.server import ModelServer

LENGTH = 3000
HORIZON = 30


def known_noise_series(length: int = LENGTH, seed: int = 7) -> np.ndarray:
    time = np.arange(length)
    return 10 * np.sin(2 * np.pi * time / 25) + np.random.default_rng(seed).normal(size=length)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A trained run (`engine train` in this process) and its exported version 1."""
    from engine.cli import main

    root = tmp_path_factory.mktemp("intervals")
    csv = root / "noise.csv"
    csv.write_text("value\n" + "\n".join(f"{v:.6f}" for v in known_noise_series()) + "\n")
    run_dir, base = root / "run", root / "models" / "noise"
    main([
        "train", "--data", str(csv), "--split", "0.8", "--selection-fraction", "0.3",
        "--model", "ar-gru", "--period", "0", "--units", "8", "--epochs", "10", "--seed", "1",
        "--interval-horizon", str(HORIZON), "--run-dir", str(run_dir), "--quiet",
    ])  # fmt: skip
    with pytest.raises(SystemExit) as done:  # export's command prints and returns
        main(["export", str(run_dir), "--model-base-path", str(base), "--quiet"])
        raise SystemExit(0)
    assert done.value.code in (None, 0)
    return {"csv": csv, "run_dir": run_dir, "base": base}


@pytest.fixture(scope="module")
def summary(run):
    return json.loads((run["run_dir"] / "summary.json").read_text())


@pytest.fixture(scope="module")
def server(run):
    with ModelServer(single_model_config("noise", str(run["base"])), port=0) as server:
        yield server


def test_calibration_stays_inside_the_selection_slice(run, summary):
    calibration = json.loads((run["run_dir"] / "calibration.json").read_text())
    split = int(LENGTH * 0.8)
    selection = split - int(round(split * 0.3))
    assert calibration["horizon"] == HORIZON
    assert calibration["first_origin"] == selection
    # The last origin's last target is the last point of the selection slice, before the split.
    assert calibration["last_origin"] + HORIZON - 1 == split - 1
    assert np.shape(calibration["residuals"]) == (split - selection - HORIZON + 1, HORIZON)
    assert summary["calibration"]["origins"] == len(calibration["residuals"])
    assert "residuals" not in summary["calibration"]
    assert summary["backtest"]["first_origin"] == split  # the band is measured on the rest


def test_the_90_percent_band_covers_90_percent_of_the_reported_part(summary):
    band = summary["backtest"]["band"]
    assert band["coverage"] == 0.9
    for step in (1, 10, 30):
        assert 0.85 <= band["empirical_coverage"][step - 1] <= 0.95, (step, band)


def test_seqcast_json_records_the_calibration(run):
    facts = json.loads((run["base"] / "1" / "assets.extra" / "seqcast.json").read_text())
    calibration = facts["calibration"]
    assert calibration["horizon"] == HORIZON and calibration["default_coverage"] == 0.9
    assert calibration["points"] == 720 and calibration["method"].startswith("split conformal")
    assert "coverage" in facts["export"]["signatures"]["forecast"]["inputs"]


def test_the_served_band_is_the_calibrated_one(run, server):
    from export.intervals import half_widths

    residuals = json.loads((run["run_dir"] / "calibration.json").read_text())["residuals"]
    series = known_noise_series()[None, -100:].astype(np.float32)
    with ForecastClient(server.address, timeout=30) as client:
        assert client.has_band("noise")
        default = client.forecast("noise", series, 40)
        explicit = client.forecast("noise", series, 40, coverage=0.9)
        narrow = client.forecast("noise", series, 40, coverage=0.5)
    np.testing.assert_array_equal(default.upper, explicit.upper)  # 0.9 is the default
    for result, coverage in ((default, 0.9), (narrow, 0.5)):
        want = half_widths(residuals, coverage, 40)
        np.testing.assert_allclose(result.upper - result.values, want[None, :], atol=2e-5)
        np.testing.assert_allclose(result.values - result.lower, want[None, :], atol=2e-5)
    assert np.all(narrow.upper - narrow.lower < default.upper - default.lower)
    assert set(default.as_json()) == {"model_spec", "forecast", "lower", "upper"}


@pytest.mark.parametrize("coverage", [0.0, 1.0, -0.5, 2.0, float("nan")])
def test_bad_coverage_is_invalid_argument_over_grpc(server, coverage):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "noise"
    request.model_spec.signature_name = "forecast"
    request.inputs["series"].CopyFrom(tf.make_tensor_proto(np.ones((1, 40), np.float32)))
    request.inputs["horizon"].CopyFrom(tf.make_tensor_proto(np.int32(3)))
    request.inputs["coverage"].CopyFrom(tf.make_tensor_proto(np.float32(coverage)))
    with grpc.insecure_channel(server.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        error = rpc_error(stub.Predict, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "`coverage` must be between 0 and 1" in error.details()
        request.inputs["coverage"].CopyFrom(tf.make_tensor_proto(np.float64(0.9)))
        error = rpc_error(stub.Predict, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "to be float but double is provided" in error.details()


def test_engine_forecast_prints_and_plots_the_band(run, server, capsys, tmp_path):
    common = ["forecast", "--server", server.address, "--model-name", "noise",
              "--data", str(run["csv"]), "--horizon", "5"]  # fmt: skip
    status, out, err = engine_in_process(capsys, *common, "--coverage", "0.8", "--json")
    assert status == 0, err
    document = json.loads(out)
    lower, forecast, upper = (np.array(document[key][0]) for key in ("lower", "forecast", "upper"))
    assert lower.shape == (5,) and np.all(lower < forecast) and np.all(forecast < upper)

    plot = tmp_path / "band.png"
    status, out, err = engine_in_process(capsys, *common, "--plot", str(plot))
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].endswith("90% band")
    assert lines[1].split() == ["step", "forecast", "lower", "upper"]
    assert len(lines[2].split()) == 4 and plot.stat().st_size > 1000

    status, out, err = engine_in_process(capsys, *common, "--csv")
    assert status == 0 and out.splitlines()[0] == "step,forecast,lower,upper", err


def test_engine_backtest_reports_coverage_and_width(run, capsys):
    status, out, err = engine_in_process(
        capsys, "backtest", str(run["run_dir"]), "--coverage", "0.5", "--json"
    )
    assert status == 0, err
    band = json.loads(out)["band"]
    assert band["coverage"] == 0.5 and len(band["empirical_coverage"]) == HORIZON
    # A 50% band is narrower than the 90% one and covers less, step by step on average.
    assert 0.35 <= band["mean"]["empirical_coverage"] <= 0.65
    status, out, err = engine_in_process(capsys, "backtest", str(run["run_dir"]))
    assert status == 0, err
    assert "90% band (calibrated for 30 steps" in out
    assert out.splitlines()[-2].split()[0] == "mean"  # the band table's last row


def test_runs_without_a_band_say_so(run, capsys, tmp_path):
    """A run without a calibration exports without a band; asking for one is bad input."""
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(run["run_dir"], bare)
    (bare / "calibration.json").unlink()
    status, out, err = engine_in_process(capsys, "backtest", str(bare), "--coverage", "0.8")
    assert (status, out) == (2, "") and "has no interval band" in err and err.count("\n") == 1


def test_the_client_of_serving_md_runs_as_written(server, capsys):
    """docs/serving.md's "client in a few lines", pointed at this server and its model."""
    from doc_snippets import python_block

    code = python_block("serving.md", "A client in a few lines")
    assert code.count('"127.0.0.1:8500"') == 1 and code.count('"seqcast"') == 1
    code = code.replace('"127.0.0.1:8500"', repr(server.address))
    names = {}
    exec(code.replace('"seqcast"', '"noise"'), names)
    outputs = names["response"].outputs
    assert [tuple(d.size for d in outputs[k].tensor_shape.dim) for k in sorted(outputs)] == [
        (1, 30), (1, 30), (1, 30),
    ]  # fmt: skip
    names["channel"].close()
