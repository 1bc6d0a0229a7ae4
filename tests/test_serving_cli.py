"""The `engine` CLI's serving commands: `engine forecast` against the embedded server, and
`engine serve` refusing bad arguments and config files with exit status 2.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import serving_fixtures as fixtures
from cli_runner import engine_in_process
from serving_fixtures import MODEL, WEIGHTS

# The shared server's fixtures (pytest knows them as `base_path`, `server`, ...).
from serving_fixtures import tiny_base_path as tiny_base_path
from serving_fixtures import tiny_server as tiny_server

# --- engine forecast -------------------------------------------------------------------


def test_engine_forecast_outputs(server, capsys, tmp_path):
    base = ["forecast", "--server", server.address, "--model-name", MODEL]
    status, out, _ = engine_in_process(capsys, *base, "--horizon", "5", "--json")
    assert status == 0
    payload = json.loads(out)
    assert list(payload) == ["model_spec", "forecast"]
    assert payload["model_spec"] == {"name": MODEL, "version": 2, "signature_name": "forecast"}
    assert np.asarray(payload["forecast"]).shape == (1, 5)

    from engine.series.load import load_series

    series = load_series("synthetic").values
    expected = fixtures.reference_forecast(series[None, :].astype(np.float32), 5, *WEIGHTS[2])
    np.testing.assert_allclose(payload["forecast"], expected, rtol=1e-5)

    status, out, _ = engine_in_process(capsys, *base, "--horizon", "3", "--csv")
    lines = out.strip().splitlines()
    assert status == 0 and lines[0] == "step,forecast" and len(lines) == 4

    # The tiny model has no band: asking for one is bad input, before any forecast.
    status, out, err = engine_in_process(capsys, *base, "--coverage", "0.8")
    assert (status, out) == (2, "") and "has no band" in err and err.count("\n") == 1
    status, out, err = engine_in_process(
        capsys, *base, "--signature", "serving_default", "--coverage", "0.8"
    )
    assert (status, out) == (2, "") and "serving_default signature has no band" in err
    assert lines[1].startswith(f"{len(series)},")

    # A dated CSV's forecast is labelled with the dates it is for, in the CSV's own form.
    dated = tmp_path / "monthly.csv"
    months = [f"{2000 + m // 12}-{m % 12 + 1:02d}" for m in range(30)]
    dated.write_text("month,value\n" + "".join(f"{m},{v}\n" for m, v in zip(months, series)))
    status, out, _ = engine_in_process(capsys, *base, "--horizon", "2", "--csv", "--data", dated)
    lines = out.strip().splitlines()
    assert status == 0 and lines[0] == "step,date,forecast"
    assert [line.split(",")[:2] for line in lines[1:]] == [["30", "2002-07"], ["31", "2002-08"]]
    dated_plot = tmp_path / "dated.png"  # its x axis is the CSV's calendar
    status, out, _ = engine_in_process(
        capsys, *base, "--horizon", "1", "--data", dated, "--plot", str(dated_plot)
    )
    assert out.splitlines()[1].split() == ["step", "date", "forecast"]
    assert out.splitlines()[2].split()[:2] == ["30", "2002-07"]
    assert status == 0 and dated_plot.stat().st_size > 1000

    plot = tmp_path / "forecast.png"
    status, out, _ = engine_in_process(capsys, *base, "--version", "2", "--plot", str(plot))
    assert status == 0 and plot.stat().st_size > 1000
    assert "version 2" in out and len(out.strip().splitlines()) == 2 + 30 + 1


@pytest.mark.parametrize(
    ("extra", "status", "fragment"),
    [
        (["--model-name", "nope"], 2, "Latest(nope)"),
        (["--model-name", MODEL, "--horizon", "0"], 2, "horizon must be at least 1"),
        (["--model-name", MODEL, "--signature", "serving_default", "--horizon", "3"], 2, "drop"),
        (["--model-name", MODEL, "--version", "5"], 2, "Specific(tiny, 5)"),
    ],
)
def test_engine_forecast_errors(server, capsys, extra, status, fragment):
    code, _, err = engine_in_process(capsys, "forecast", "--server", server.address, *extra)
    assert code == status
    assert fragment in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("plot", "fragment"),
    [
        ("no-such-folder/forecast.png", "no-such-folder is not a directory"),
        ("forecast.txt", "give it a suffix such as .png"),
    ],
)
def test_engine_forecast_refuses_a_plot_path_before_asking(capsys, plot, fragment):
    # The server is unreachable: exit 2 and no output show the path was refused first. Once
    # the forecast was fetched and printed, then the plot failed (a .txt as an internal error).
    code, out, err = engine_in_process(
        capsys, "forecast", "--server", "127.0.0.1:1", "--model-name", MODEL, "--plot", plot
    )
    assert (code, out) == (2, "")
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_engine_forecast_unreachable_server_exits_1(capsys):
    code, _, err = engine_in_process(
        capsys, "forecast", "--server", "127.0.0.1:1", "--model-name", MODEL, "--timeout", "2"
    )
    assert code == 1 and "UNAVAILABLE" in err


# --- engine serve: bad arguments ---------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["serve"], "either --model-base-path"),
        (["serve", "--model-base-path", "/nonexistent/models"], "is not a directory"),
        (["serve", "--model-config-file", "/nonexistent/models.config"], "cannot read"),
        (["serve", "--model-base-path", ".", "--tls-cert", "cert.pem"], "both a certificate"),
    ],
)
def test_engine_serve_bad_arguments_exit_2(capsys, argv, fragment):
    code, _, err = engine_in_process(capsys, *argv)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1


def test_bad_model_config_file(tmp_path, capsys):
    config = tmp_path / "models.config"
    config.write_text("model_config_list { config { name: 'm' base_path: 3 } ")
    code, _, err = engine_in_process(capsys, "serve", "--model-config-file", str(config))
    assert code == 2 and "Error parsing text-format tensorflow.serving.ModelServerConfig: 1:" in err
