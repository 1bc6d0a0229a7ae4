"""Commands that take a model to clients: `export` and `forecast` (docs/cli.md); `serve` is
in engine/cli/serve.py."""

from __future__ import annotations

import click

from engine.cli.options import (
    column_option,
    data_option,
    date_column_option,
    json_option,
    print_json,
    quiet_option,
)
from engine.errors import InputError, RunFailed

model_base_path_option = click.option(
    "--model-base-path",
    default=None,
    metavar="DIR",
    help="The model's base path: the directory holding its integer-named versions.",
)


@click.command("export")
@click.argument("run_dir", required=False, type=click.Path(file_okay=False))
@model_base_path_option
@click.option(
    "--model-name",
    default=None,
    help="Model name written into the warmup requests (default: the base path's name).",
)
@click.option(
    "--version",
    "version",
    default=None,
    metavar="N",
    help="Version number (default: the next free one).",
)
@click.option("--no-verify", is_flag=True, help="Publish without running the four checks.")
@click.option(
    "--verify-only",
    default=None,
    type=click.Path(file_okay=False),
    metavar="VERSION_DIR",
    help="Only run the four checks on an exported version directory.",
)
@quiet_option
@json_option
def export_command(
    run_dir, model_base_path, model_name, version, no_verify, verify_only, quiet, as_json
):
    """Export a run as a verified SavedModel version for TensorFlow Serving.

    Writes <model-base-path>/<version>/ under a temporary name, checks it (a fresh process
    without seqcast, the TF1 session loader TF Serving uses, standard ops only, the warmup
    requests) and renames it into place. Existing versions are never overwritten.
    """
    from export import ExportError, VerificationFailed, check_target, export_model, verify_version

    def say(line: str) -> None:
        if not (quiet or as_json):
            click.echo(line)

    try:
        if verify_only is not None:
            if run_dir is not None or model_base_path is not None or version is not None:
                raise InputError("--verify-only VERSION_DIR takes no RUN_DIR, base path or version")
            say(f"verifying {verify_only}")
            report = verify_version(verify_only, progress=say)
            if as_json:
                print_json(report.to_dict())
            if not report.passed:
                failed = ", ".join(check.name for check in report.failures())
                raise RunFailed(f"{verify_only} failed verification ({failed})")
            say(f"{verify_only}: all four checks passed")
            return

        if run_dir is None or model_base_path is None:
            raise InputError("give RUN_DIR and --model-base-path (or --verify-only VERSION_DIR)")
        # Bad versions and base paths are reported before the slow part: loading the run.
        check_target(model_base_path, version)
        from engine.series.load import load_series
        from engine.training.runs import load_run

        run = load_run(run_dir)
        say(f"run {run_dir}: {run.rebuilt_note}")
        try:  # the run's own series makes the warmup and verification requests realistic
            config = run.config
            example = load_series(
                config.data, column=config.column, date_column=config.date_column
            ).values
        except (InputError, OSError):
            example = None
            say("the run's data cannot be read: warmup requests use a synthetic series")
        result = export_model(
            run.model,
            model_base_path,
            run.metadata,
            version=None if version is None else int(version),
            verify=not no_verify,
            progress=say,
            example_series=example,
            model_name=model_name,
            calibration=run.calibration,
        )
        if run.calibration is None:
            say("the run has no calibration (calibration.json): `forecast` has no band")
    except ExportError as error:
        raise InputError(str(error)) from error
    except VerificationFailed as error:
        if as_json and error.report is not None:
            print_json({"published": False, "verification": error.report.to_dict()})
        raise RunFailed(str(error)) from error
    if as_json:
        print_json({"published": True, "rebuilt_note": run.rebuilt_note, **result.to_dict()})
    else:
        checks = "verified" if result.report is not None else "not verified (--no-verify)"
        say(f"exported version {result.version} to {result.path} ({checks})")


@click.command("forecast")
@click.option("--server", default="127.0.0.1:8500", show_default=True, help="HOST:PORT.")
@click.option("--model-name", default="seqcast", show_default=True)
@data_option
@column_option
@date_column_option
@click.option("--horizon", default=None, type=int, help="Steps ahead (default 30).")
@click.option("--version", default=None, type=int, help="Model version (default: the newest).")
@click.option(
    "--signature",
    default="forecast",
    show_default=True,
    type=click.Choice(["forecast", "serving_default"]),
    help="`forecast` (horizon steps) or `serving_default` (the next value).",
)
@click.option(
    "--window-size",
    default=None,
    type=click.IntRange(min=1),
    help="Send the last N values (default: the time length the model's signature fixes, "
    "else the whole series).",
)
@click.option(
    "--timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Deadline of each gRPC call, in seconds.",
)
@click.option(
    "--coverage",
    default=None,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Coverage of the band around the forecast, between 0 and 1 (default: the model's, "
    "0.9; only for models exported with a band).",
)
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print step,forecast[,lower,upper] as CSV.")
@click.option("--plot", default=None, help="Write a PNG of the history and the forecast.")
def forecast(
    server,
    model_name,
    data,
    column,
    date_column,
    horizon,
    version,
    signature,
    window_size,
    timeout,
    coverage,
    as_json,
    as_csv,
    plot,
):
    """Ask a TensorFlow Serving server (real or `engine serve`) for a forecast over gRPC,
    with its band when the model has one."""
    from engine.series.dates import dates_after, steps_from
    from engine.series.load import load_series
    from engine.series.metrics import figure
    from export.intervals import DEFAULT_COVERAGE
    from serving.client import ForecastClient, ServingClientError

    if as_json and as_csv:
        raise InputError("choose one of --json and --csv")
    if signature == "serving_default" and horizon not in (None, 1):
        raise InputError("the serving_default signature forecasts one step: drop --horizon")
    if signature == "serving_default" and coverage is not None:
        raise InputError("the serving_default signature has no band: drop --coverage")
    if plot:  # before the request: a path it cannot write is bad input, found at once
        from engine.training.plots import check_plot_path

        check_plot_path(plot)
    horizon = 1 if signature == "serving_default" else (30 if horizon is None else horizon)
    series = load_series(data, column=column, date_column=date_column)
    try:
        with ForecastClient(server, timeout=timeout) as client:
            if window_size is None:
                window_size = client.window_size(model_name, signature, version=version)
            history = series.values if window_size is None else series.values[-window_size:]
            if signature == "serving_default":
                result = client.next_value(model_name, history[None, :], version=version)
            else:
                if coverage is not None and not client.has_band(model_name, version=version):
                    raise InputError(
                        f"model {model_name} has no band (exported without calibration): "
                        "drop --coverage"
                    )
                result = client.forecast(
                    model_name, history[None, :], horizon, version=version, coverage=coverage
                )
    except ServingClientError as error:
        if error.bad_request:
            raise InputError(str(error)) from error
        raise RunFailed(str(error)) from error

    values = result.values[0]
    first_step = len(series.values)
    steps = [str(first_step + offset) for offset in range(len(values))]
    # A dated CSV's forecast is labelled with the dates it is for.
    dates = None
    if series.frequency is not None and series.last_date is not None:
        dates = dates_after(series.last_date, series.frequency, len(values))
    # The contract's default when the request left `coverage` out.
    shown_coverage = DEFAULT_COVERAGE if coverage is None else coverage
    # One row per step: the forecast, then the band's lower and upper end if there is one.
    columns = [values] + ([result.lower[0], result.upper[0]] if result.lower is not None else [])
    names = ["forecast", "lower", "upper"][: len(columns)]
    rows = list(zip(*columns))
    if as_json:
        print_json(result.as_json())
    elif as_csv:
        click.echo(",".join(["step", *(["date"] if dates else []), *names]))
        for offset, row in enumerate(rows):
            labels = [steps[offset], *([dates[offset]] if dates else [])]
            click.echo(",".join([*labels, *(figure(v, 6) for v in row)]))
    else:
        band = ""
        if result.lower is not None:
            band = f", {shown_coverage:.0%} band"
        click.echo(
            f"model {result.model_name} version {result.version} signature "
            f"{result.signature_name}: {len(values)} steps after the last of {len(history)} "
            f"values sent ({series.description}){band}"
        )
        width = max(len(date) for date in dates) + 2 if dates else 0
        date_header = f"{'date':>{width}}" if dates else ""
        click.echo(f"{'step':>8}{date_header}" + "".join(f"{name:>14}" for name in names))
        for offset, row in enumerate(rows):
            date = f"{dates[offset]:>{width}}" if dates else ""
            click.echo(f"{steps[offset]:>8}{date}" + "".join(f"{figure(v, 6):>14}" for v in row))
    if plot:
        from engine.training.plots import plot_history_and_forecast

        label = f"forecast ({result.model_name} v{result.version})"
        shaded = None
        if result.lower is not None:
            shaded = (result.lower[0], result.upper[0], shown_coverage)
        times = None
        if dates:  # the history's dates too, so the axis reads in the CSV's calendar
            span = range(1 - len(series.values), len(values) + 1)
            times = steps_from(series.last_date, series.frequency, span)
        plot_history_and_forecast(series.values, values, plot, label, band=shaded, dates=times)
        if not (as_json or as_csv):
            click.echo(f"plot written to {plot}")
