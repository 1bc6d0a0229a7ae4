"""The options several commands share, spelled once (the names DESIGN.md fixes)."""

from __future__ import annotations

import json

import click

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


def train_options(function):
    """The options of a run, shared by `train` and `lr-find` (names as in DESIGN.md)."""
    options = [
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False),
            help="TOML file of run settings (field names of TrainConfig); flags override it.",
        ),
        data_option,
        column_option,
        date_column_option,
        split_option,
        click.option(
            "--window-size", type=int, help="Input window (model default: 20, seasonal: period+19)."
        ),
        click.option("--batch-size", type=int, help="Batch size (default 32)."),
        click.option("--epochs", type=int, help="Epochs (default 60)."),
        click.option(
            "--period",
            type=int,
            help="Seasonal period in steps; 0: none. Default: the series' own (the course "
            "series: 365), else inferred from the dates or the autocorrelation.",
        ),
        click.option(
            "--selection-fraction",
            type=float,
            help="End of the training part that picks the best epoch and early-stops "
            "(default 0.1; 0: keep the last epoch).",
        ),
        click.option(
            "--interval-horizon",
            type=int,
            help="Steps the forecast's conformal band is calibrated for, on the selection "
            "slice (default: the backtest's horizon).",
        ),
        click.option(
            "--model",
            help="seasonal-gru, ar-gru, rnn, lstm, bilstm, gru or conv-lstm (default: "
            "seasonal-gru when the series has a season, else ar-gru).",
        ),
        click.option("--cells", help="custom (ours, default) or keras (the built-ins)."),
        click.option("--units", type=int, help="Units per recurrent layer (model default)."),
        click.option("--layers", type=int, help="Recurrent layers (model default)."),
        click.option("--optimizer", help="adam (default) or sgd (momentum 0.9)."),
        click.option("--lr", type=float, help="Learning rate (default 2e-3)."),
        click.option("--lr-schedule", help="cosine (default) or constant."),
        click.option("--weight-decay", type=float, help="Decoupled weight decay (default 0)."),
        click.option("--dropout", type=float, help="Recurrent layers' input dropout (default 0)."),
        click.option(
            "--recurrent-dropout", type=float, help="Recurrent layers' state dropout (default 0)."
        ),
        click.option("--loss", help="huber (default), mse or mae."),
        click.option(
            "--huber-delta",
            type=float,
            help="Huber's delta in series units (default 0.1 standard deviations of the "
            "training part's one-step changes: 0.74 on the course series).",
        ),
        click.option("--precision", help="float32 (default), mixed_float16 or mixed_bfloat16."),
        click.option("--clip-norm", type=float, help="Clip each gradient's norm."),
        click.option("--clip-global-norm", type=float, help="Clip the global gradient norm."),
        click.option("--clip-value", type=float, help="Clip each gradient element."),
        click.option("--seed", type=int, help="Seed for weights and data order (default 42)."),
        click.option(
            "--fast/--no-fast",
            default=None,
            help="Let the engine pick the fastest measured step (default), or the plain path.",
        ),
        click.option(
            "--deterministic", is_flag=True, default=None, help="Turn on TensorFlow op determinism."
        ),
        click.option("--run-dir", help="Where the run is written (default runs/latest)."),
        click.option(
            "--patience",
            type=int,
            help="Stop after this many epochs without a better selection MAE (the best "
            "epoch's weights are restored either way).",
        ),
        click.option(
            "--refit/--no-refit",
            default=None,
            help="After the selection slice picks the best epoch, train that many epochs "
            "again on the whole training part, slice included, and keep that model "
            "(default: off, keep the best epoch's).",
        ),
        click.option("--strategy", help="default (one device), mirrored or multi-worker."),
        click.option(
            "--replicas",
            type=int,
            help="For --strategy mirrored: the first N GPUs, or N logical CPU devices without one.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def run_config(config_file, **flags):
    """Defaults < the TOML file < the flags given, validated."""
    from engine.training.config import TrainConfig, load_config

    base = load_config(config_file) if config_file else TrainConfig()
    return base.replace(**flags).validate()
