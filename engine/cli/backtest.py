"""`engine backtest`: rolling-origin evaluation of a trained run, fed back as served."""

from __future__ import annotations

import click

from engine.cli.options import json_option, print_json, quiet_option
from engine.series.metrics import figure


def table_steps(horizon: int) -> list[int]:
    """The horizon steps the table shows: 1, 2, 5, 10, 20, 30, ... up to and with `horizon`."""
    from engine.training.backtest import TABLE_STEPS

    return sorted({step for step in TABLE_STEPS if step <= horizon} | {horizon})


def format_table(result: dict) -> list[str]:
    """One row per shown step and a `mean` row; MAE and MASE columns per forecaster."""
    forecasts = result["forecasts"]
    names = list(forecasts)
    has_mase = result["mase_scale"] is not None
    columns = 2 if has_mase else 1
    width = 9 * columns
    lines = [f"{'':<6}" + "".join(f"{name:>{width}}" for name in names)]
    units = f"{'MAE':>9}" + (f"{'MASE':>9}" if has_mase else "")
    lines.append(f"{'step':<6}" + units * len(names))

    def cells(figures: dict, index: int | None) -> str:
        """`figures`' MAE (and MASE) at step `index + 1`, or their means for None."""
        if index is None:
            mae, mase = figures["mean"]["mae"], figures["mean"]["mase"]
        else:
            mae, mase = figures["mae"][index], has_mase and figures["mase"][index]
        return f"{figure(mae, 3):>9}" + (f"{mase:>9.3f}" if has_mase else "")

    for step in table_steps(result["horizon"]):
        lines.append(f"{step:<6}" + "".join(cells(forecasts[n], step - 1) for n in names))
    lines.append(f"{'mean':<6}" + "".join(cells(forecasts[n], None) for n in names))
    return lines


def format_band_table(band: dict, horizon: int) -> list[str]:
    """The band's empirical coverage and width at the shown steps, and their means."""
    lines = [
        f"{band['coverage']:.0%} band (calibrated for {band['calibrated_horizon']} steps; "
        "wider beyond, by the square root of the step):",
        f"{'step':<6}{'coverage':>10}{'width':>10}",
    ]
    for step in table_steps(horizon):
        coverage, width = band["empirical_coverage"][step - 1], band["width"][step - 1]
        lines.append(f"{step:<6}{coverage:>10.1%}{figure(width, 3):>10}")
    mean = band["mean"]
    lines.append(f"{'mean':<6}{mean['empirical_coverage']:>10.1%}{figure(mean['width'], 3):>10}")
    return lines


@click.command("backtest")
@click.argument("run_dir", type=click.Path())
@click.option(
    "--horizon",
    type=click.IntRange(min=1),
    default=None,
    help="Steps forecast from each origin (default: the run's period if it is at most 60, "
    "else 30).",
)
@click.option(
    "--stride",
    type=click.IntRange(min=1),
    default=None,
    help="Steps between origins (default 1, raised so that at most 500 origins are used).",
)
@click.option(
    "--coverage",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="Coverage of the band whose empirical coverage is measured (default 0.9; runs "
    "with a calibration.json only).",
)
@quiet_option
@json_option
def backtest_command(run_dir, horizon, stride, coverage, quiet, as_json):
    """Rolling-origin backtest over the validation part: from each origin the model forecasts
    HORIZON steps, each prediction fed back as the next input (as the exported `forecast`
    signature does). Per-step MAE, RMSE, MASE and sMAPE beside the naive, seasonal-naive and
    drift baselines on the same origins, and for a calibrated run how often its band holds
    the truth and how wide it is; writes plots/backtest.png and plots/backtest_origins.png.
    With --quiet, one summary line instead of the tables."""
    from engine.training.backtest import backtest_run, summary_line

    result = backtest_run(run_dir, horizon=horizon, stride=stride, coverage=coverage)
    if as_json:
        print_json(result)
        return
    if quiet:
        click.echo(summary_line(result))
        return
    click.echo(
        f"{result['origins']} origin{'s' * (result['origins'] != 1)} "
        f"{result['first_origin']}..{result['last_origin']} "
        f"(stride {result['stride']}), horizon {result['horizon']}, "
        f"MASE scale {result['mase_scale'] or float('nan'):.4g} "
        f"(in-sample seasonal naive, period {result['period'] or 1})"
    )
    for line in format_table(result):
        click.echo(line)
    if result.get("band"):
        for line in format_band_table(result["band"], result["horizon"]):
            click.echo(line)
    click.echo(f"plots: {result['plots']['errors']}, {result['plots']['origins']}")
