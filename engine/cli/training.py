"""Commands about a run: `baselines`, `train`, `lr-find` and `evaluate` (docs/cli.md)."""

from __future__ import annotations

import click

from engine.cli.options import (
    data_options,
    json_option,
    print_json,
    quiet_option,
    run_config,
    train_options,
)
from engine.errors import InputError, Interrupted
from engine.series.metrics import figure


@click.command()
@data_options
@click.option(
    "--window",
    "moving_average_window",
    default=30,
    show_default=True,
    type=click.IntRange(min=1),
    help="Moving-average window.",
)
@click.option(
    "--period",
    default=None,
    type=int,
    help="Seasonal period for the seasonal baselines (default: the series' own, else "
    "inferred as engine train infers it; 0: none).",
)
@json_option
def baselines(data, column, date_column, split, moving_average_window, period, as_json):
    """Naive, moving-average and seasonal forecasts over the validation part: MAE and MSE."""
    from engine.series.baselines import compute_baselines
    from engine.series.load import load_series, split_index
    from engine.series.period import resolve_period

    series = load_series(data, column=column, date_column=date_column)
    index = split_index(len(series.values), split)
    if moving_average_window > index:
        raise InputError(
            f"too few rows for one window: the training part has {index} points, the "
            f"moving average needs {moving_average_window}"
        )
    period, period_source = resolve_period(
        period, series.period, series.values[:index], series.frequency
    )
    results = compute_baselines(
        series.values, index, period=period or None, window=moving_average_window
    )
    if as_json:
        print_json(results)
        return
    click.echo(
        f"{series.description}: {index} training, {len(series.values) - index} validation points"
    )
    click.echo(period_source)
    if period and "seasonal_naive" not in results:  # compute_baselines found it too long
        click.echo(f"no seasonal baselines: period {period} is longer than the training part")
    click.echo(f"{'baseline':<22}{'MAE':>12}{'MSE':>14}")
    for name, figures in results.items():
        click.echo(f"{name:<22}{figure(figures['mae'], 6):>12}{figure(figures['mse'], 6):>14}")


@click.command("train")
@train_options
@click.option(
    "--ensemble",
    type=int,
    help="Train N runs with seeds SEED, SEED+1, ... (in RUN_DIR/members/) and forecast "
    "their mean (default 1: one run).",
)
@click.option(
    "--resume", is_flag=True, help="Continue the run in --run-dir from its last checkpoint."
)
@quiet_option
@json_option
def train_command(config_file, resume, quiet, as_json, **flags):
    """Train a forecaster with seqcast's own loop; writes the run dir (metrics, checkpoints,
    model.keras, plots/, summary.json)."""
    from engine.training.config import read_settings
    from engine.training.train import train

    config = run_config(config_file, **flags)
    context = click.get_current_context()
    given = {  # what the user named, as opposed to a default (--data has one)
        name
        for name in flags
        if context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    }
    if config_file:
        given |= set(read_settings(config_file))
    try:
        summary = train(config, resume=resume, quiet=quiet or as_json, given=given)
    except KeyboardInterrupt:
        raise Interrupted(
            f"to go on from the last finished epoch: engine train --resume --run-dir "
            f"{config.run_dir}"
        ) from None
    if as_json:
        print_json(summary)
    elif not quiet:
        run_dir = config.run_dir
        click.echo(
            f"validation MAE {figure(summary['val_mae'])}  MSE {figure(summary['val_mse'])}  "
            f"({summary['epochs_run']} epochs, {summary['seconds']:.0f}s)"
        )
        click.echo(
            f"run dir: {run_dir}  plots: {run_dir}/plots/loss.png, {run_dir}/plots/forecast.png"
        )


@click.command("lr-find")
@train_options
@click.option("--min-lr", type=float, default=1e-7, show_default=True)
@click.option("--max-lr", type=float, default=1.0, show_default=True)
@click.option(
    "--steps",
    type=int,
    default=140,
    show_default=True,
    help="Sweep steps (one batch each); 20 a decade is the course's rate.",
)
@quiet_option
@json_option
def lr_find_command(config_file, min_lr, max_lr, steps, quiet, as_json, **flags):
    """Sweep the learning rate exponentially and suggest one (plots/lr_find.png)."""
    from engine.training.lr_find import find_lr
    from engine.training.runs import check_creatable

    config = run_config(config_file, **flags)
    check_creatable(config.run_dir, "--run-dir")  # its plots/ holds the sweep's plot
    result = find_lr(
        config, min_lr, max_lr, steps, out_dir=f"{config.run_dir}/plots", quiet=quiet or as_json
    )
    if as_json:
        print_json(result)
    else:
        click.echo(
            f"suggested learning rate: {result['suggested_lr']:.3g}  (plot: {result['plot']})"
        )
        if not result["diverged"]:
            click.echo(
                f"the loss never diverged up to --max-lr {max_lr:g}: the rates that train "
                "best may lie above it (raise --max-lr and look at the plot)"
            )


@click.command("evaluate")
@click.argument("run_dir", type=click.Path())
@json_option
def evaluate_command(run_dir, as_json):
    """Validation MAE, MSE, RMSE and MASE of a trained run beside the baselines."""
    from engine.training.evaluate import evaluate_run

    results = evaluate_run(run_dir)
    if as_json:
        print_json(results)
        return
    click.echo(f"{'forecast':<22}{'MAE':>10}{'MSE':>12}{'RMSE':>10}{'MASE':>9}")
    for name, row in results.items():
        click.echo(
            f"{name:<22}{figure(row['mae']):>10}{figure(row['mse']):>12}{figure(row['rmse']):>10}"
            f"{row['mase']:>9.4f}"
        )
