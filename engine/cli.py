"""The `engine` command line: one click group, one command per job.

Exit status: 0 success, 1 the work failed (`RunFailed`), 2 bad usage or bad input
(`InputError`, click usage errors). Errors are one line on stderr, never a traceback
(set SEQCAST_DEBUG=1 to see one).
"""

from __future__ import annotations

import json
import os
import sys

import click

from engine.errors import InputError, RunFailed

# Shared options: every command that takes one of these spells it the same way.
data_option = click.option(
    "--data",
    default="synthetic",
    show_default=True,
    help="`synthetic` (the course series) or the path of a CSV file.",
)
column_option = click.option(
    "--column",
    default=None,
    help="CSV value column, by header name or 0-based index (default: last).",
)
date_column_option = click.option(
    "--date-column", default=None, help="CSV column to order rows by (ISO dates sort correctly)."
)
split_option = click.option(
    "--split",
    default=None,
    help="Training/validation split: an index (1000) or a fraction (0.7). Default: 1000 for "
    "the course series, else 0.7.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
quiet_option = click.option("--quiet", is_flag=True, help="No progress output.")


def data_options(function):
    for option in reversed([data_option, column_option, date_column_option, split_option]):
        function = option(function)
    return function


def print_json(payload: dict) -> None:
    click.echo(json.dumps(payload, indent=2, sort_keys=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="seqcast", prog_name="engine")
def cli() -> None:
    """seqcast: train recurrent forecasters, export them for TensorFlow Serving, serve them."""


@cli.command()
@data_options
@click.option(
    "--window",
    "moving_average_window",
    default=30,
    show_default=True,
    type=int,
    help="Moving-average window.",
)
@click.option(
    "--period",
    default=None,
    type=int,
    help="Seasonal period for seasonal baselines (the course series: 365).",
)
@json_option
def baselines(data, column, date_column, split, moving_average_window, period, as_json):
    """Naive, moving-average and seasonal forecasts over the validation part: MAE and MSE."""
    from engine.baselines import compute_baselines
    from engine.data import load_series, split_index

    series = load_series(data, column=column, date_column=date_column)
    index = split_index(len(series.values), split)
    results = compute_baselines(
        series.values, index, period=period or series.period, window=moving_average_window
    )
    if as_json:
        print_json(results)
        return
    click.echo(
        f"{series.description}: {index} training, {len(series.values) - index} validation points"
    )
    click.echo(f"{'baseline':<22}{'MAE':>12}{'MSE':>14}")
    for name, figures in results.items():
        click.echo(f"{name:<22}{figures['mae']:>12.6f}{figures['mse']:>14.6f}")


def _not_yet(issue: str):
    def command(**_):
        raise InputError(f"this command is not available yet ({issue})")

    return command


for _name, _issue in [
    ("train", "the training engine"),
    ("lr-find", "the training engine"),
    ("evaluate", "the training engine"),
    ("verify", "the cells issue"),
    ("export", "the export issue"),
    ("serve", "the serving issue"),
    ("forecast", "the serving issue"),
]:
    if _name not in cli.commands:
        cli.command(_name, help=f"Not available yet: arrives with {_issue}.")(_not_yet(_issue))


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the group and maps failures to one line and an exit status."""
    try:
        cli.main(args=argv, prog_name="engine", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as error:  # bad usage: unknown option, bad value, ...
        click.echo(f"engine: error: {error.format_message()}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("engine: aborted", err=True)
        sys.exit(1)
    except InputError as error:
        click.echo(f"engine: error: {error}", err=True)
        sys.exit(2)
    except RunFailed as error:
        click.echo(f"engine: failed: {error}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("engine: interrupted", err=True)
        sys.exit(130)
    except Exception as error:  # noqa: BLE001 - the contract is one line, never a traceback
        if os.environ.get("SEQCAST_DEBUG"):
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        click.echo(f"engine: internal error: {type(error).__name__}: {message}", err=True)
        sys.exit(1)
