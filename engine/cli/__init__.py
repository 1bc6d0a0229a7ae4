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
    if moving_average_window > index:
        raise InputError(
            f"too few rows for one window: the training part has {index} points, the "
            f"moving average needs {moving_average_window}"
        )
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


@cli.command("serve")
@click.option(
    "--model-base-path",
    default=None,
    help="Directory holding the model's integer-named version directories.",
)
@click.option(
    "--model-name",
    default=None,
    help="Name clients ask for (with --model-base-path; default seqcast).",
)
@click.option(
    "--model-config-file",
    default=None,
    help="A text ModelServerConfig (models.config) instead of --model-base-path.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=8500,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="gRPC port (0: any free port).",
)
@click.option(
    "--poll-seconds",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="How often the base paths are checked for new versions.",
)
@click.option("--tls-cert", default=None, help="PEM certificate: serve over TLS (with --tls-key).")
@click.option("--tls-key", default=None, help="PEM private key for --tls-cert.")
@quiet_option
def serve(
    model_base_path,
    model_name,
    model_config_file,
    host,
    port,
    poll_seconds,
    tls_cert,
    tls_key,
    quiet,
):
    """Serve exported models over TensorFlow Serving's gRPC API until SIGTERM or SIGINT.

    Prints one line when ready, then one line per version loaded or unloaded (not with
    --quiet). New versions written into the base path are picked up while serving.
    """
    import signal
    import threading

    from serving.server import (
        ModelServer,
        ServingConfigError,
        load_model_config,
        single_model_config,
    )

    if (model_config_file is None) == (model_base_path is None):
        raise InputError("give either --model-base-path (and --model-name) or --model-config-file")
    if model_config_file is not None and model_name is not None:
        raise InputError("--model-name goes with --model-base-path; models.config names its models")

    def event(message: str) -> None:
        if not quiet:
            click.echo(f"engine serve: {message}")

    try:
        if model_config_file is not None:
            config = load_model_config(model_config_file)
        else:
            config = single_model_config(model_name or "seqcast", model_base_path)
        server = ModelServer(
            config,
            host=host,
            port=port,
            poll_seconds=poll_seconds,
            tls_cert=tls_cert,
            tls_key=tls_key,
            on_event=event,
        ).start()
    except ServingConfigError as error:
        raise InputError(str(error)) from error

    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    models = ", ".join(
        f"{name} versions {versions or 'none yet'}"
        for name, versions in server.manager.available().items()
    )
    scheme = "TLS" if tls_cert else "plaintext"
    click.echo(f"engine serve: ready on {server.address} ({scheme}): {models}")
    while not stop.wait(0.5):
        pass
    event("shutting down: finishing in-flight requests")
    server.stop(grace=10.0)
    event("stopped")


@cli.command("forecast")
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
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print step,forecast as CSV.")
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
    as_json,
    as_csv,
    plot,
):
    """Ask a TensorFlow Serving server (real or `engine serve`) for a forecast over gRPC."""
    from engine.data import load_series
    from serving.client import ForecastClient, ServingClientError

    if as_json and as_csv:
        raise InputError("choose one of --json and --csv")
    if signature == "serving_default" and horizon not in (None, 1):
        raise InputError("the serving_default signature forecasts one step: drop --horizon")
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
                result = client.forecast(model_name, history[None, :], horizon, version=version)
    except ServingClientError as error:
        if error.bad_request:
            raise InputError(str(error)) from error
        raise RunFailed(str(error)) from error

    values = result.values[0]
    first_step = len(series.values)
    if as_json:
        print_json(result.as_json())
    elif as_csv:
        click.echo("step,forecast")
        for offset, value in enumerate(values):
            click.echo(f"{first_step + offset},{value:.6f}")
    else:
        click.echo(
            f"model {result.model_name} version {result.version} signature "
            f"{result.signature_name}: {len(values)} steps after the last of {len(history)} "
            f"values sent ({series.description})"
        )
        click.echo(f"{'step':>8}{'forecast':>14}")
        for offset, value in enumerate(values):
            click.echo(f"{first_step + offset:>8}{value:>14.6f}")
    if plot:
        _plot_forecast(series.values, values, plot, result)
        if not (as_json or as_csv):
            click.echo(f"plot written to {plot}")


def _plot_forecast(history, values, path, result) -> None:
    """History (the recent part) and the forecast after it, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    shown = min(len(history), max(4 * len(values), 365))
    start = len(history) - shown
    figure, axes = plt.subplots(figsize=(10, 4))
    axes.plot(np.arange(start, len(history)), history[start:], label="history", linewidth=1)
    axes.plot(
        np.arange(len(history), len(history) + len(values)),
        values,
        label=f"forecast ({result.model_name} v{result.version})",
        linewidth=1.5,
    )
    axes.set_xlabel("time step")
    axes.set_ylabel("value")
    axes.legend()
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=100)
    except OSError as error:
        raise InputError(f"cannot write plot {path}: {error.strerror}") from error
    finally:
        plt.close(figure)


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
            help="Seasonal period (seasonal models; the course series knows its own, 365).",
        ),
        click.option(
            "--model",
            help="seasonal-gru (default), rnn, lstm, bilstm, gru or conv-lstm.",
        ),
        click.option("--cells", help="custom (ours, default) or keras (the built-ins)."),
        click.option("--units", type=int, help="Units per recurrent layer (model default)."),
        click.option("--layers", type=int, help="Recurrent layers (model default)."),
        click.option("--optimizer", help="adam (default) or sgd (momentum 0.9)."),
        click.option("--lr", type=float, help="Learning rate (default 2e-3)."),
        click.option("--lr-schedule", help="cosine (default) or constant."),
        click.option("--loss", help="huber (default), mse or mae."),
        click.option("--huber-delta", type=float, help="Huber's delta, series units (default 10)."),
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
            help="Stop after this many epochs without a better "
            "validation MAE (best weights are restored either way).",
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


def _run_config(config_file, **flags):
    from engine.config import TrainConfig, load_config

    base = load_config(config_file) if config_file else TrainConfig()
    return base.replace(**flags).validate()


@cli.command("train")
@train_options
@click.option(
    "--resume", is_flag=True, help="Continue the run in --run-dir from its last checkpoint."
)
@quiet_option
@json_option
def train_command(config_file, resume, quiet, as_json, **flags):
    """Train a forecaster with seqcast's own loop; writes the run dir (metrics, checkpoints,
    model.keras, plots/, summary.json)."""
    from engine.train import train

    config = _run_config(config_file, **flags)
    summary = train(config, resume=resume, quiet=quiet or as_json)
    if as_json:
        print_json(summary)
    elif not quiet:
        run_dir = config.run_dir
        click.echo(
            f"validation MAE {summary['val_mae']:.4f}  MSE {summary['val_mse']:.4f}  "
            f"({summary['epochs_run']} epochs, {summary['seconds']:.0f}s)"
        )
        click.echo(
            f"run dir: {run_dir}  plots: {run_dir}/plots/loss.png, {run_dir}/plots/forecast.png"
        )


@cli.command("lr-find")
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
    from engine.lr_find import find_lr

    config = _run_config(config_file, **flags)
    if steps < 3:
        raise InputError("--steps must be at least 3")
    result = find_lr(
        config, min_lr, max_lr, steps, out_dir=f"{config.run_dir}/plots", quiet=quiet or as_json
    )
    if as_json:
        print_json(result)
    else:
        click.echo(
            f"suggested learning rate: {result['suggested_lr']:.3g}  (plot: {result['plot']})"
        )


@cli.command("evaluate")
@click.argument("run_dir", type=click.Path())
@json_option
def evaluate_command(run_dir, as_json):
    """Validation MAE, MSE, RMSE and MASE of a trained run beside the baselines."""
    from engine.evaluate import evaluate_run

    results = evaluate_run(run_dir)
    if as_json:
        print_json(results)
        return
    click.echo(f"{'forecast':<22}{'MAE':>10}{'MSE':>12}{'RMSE':>10}{'MASE':>9}")
    for name, row in results.items():
        click.echo(
            f"{name:<22}{row['mae']:>10.4f}{row['mse']:>12.4f}{row['rmse']:>10.4f}"
            f"{row['mase']:>9.4f}"
        )


@cli.command("export")
@click.argument("run_dir", required=False, type=click.Path(file_okay=False))
@click.option(
    "--model-base-path",
    default=None,
    metavar="DIR",
    help="The model's base path: the directory holding its integer-named versions.",
)
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
    # Only the light part of export here: bad input is reported without importing TensorFlow.
    from export import ExportError, VerificationFailed, check_target

    def say(line: str) -> None:
        if not (quiet or as_json):
            click.echo(line)

    try:
        if verify_only is not None:
            if run_dir is not None or model_base_path is not None or version is not None:
                raise InputError("--verify-only VERSION_DIR takes no RUN_DIR, base path or version")
            from export import verify_version

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
        from engine.data import load_series
        from engine.runs import load_run
        from export import export_model

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
        )
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


@cli.command("verify")
@click.option(
    "--dtype",
    "dtypes",
    multiple=True,
    type=click.Choice(["float64", "float32", "mixed_float16", "mixed_bfloat16"]),
    help="Only cases of this dtype policy (repeatable). Default: all.",
)
@click.option(
    "--cell",
    "cell_names",
    multiple=True,
    type=click.Choice(["SimpleRNN", "LSTM", "GRU", "GRU(reset_after=False)"]),
    help="Only cases of this cell (repeatable). Default: all.",
)
@json_option
@quiet_option
def verify(dtypes, cell_names, as_json, quiet):
    """Prove the cells equal keras.layers.SimpleRNN/LSTM/GRU/Bidirectional on this machine.

    Same weights on both sides; compares outputs, final states and gradients (inputs,
    initial states, every weight) as max |ours - keras| / max |keras|. Exit 1 if any case
    exceeds its tolerance (float64 1e-12, float32 1e-5, mixed 2e-2).
    """
    from engine.verify import default_cases, format_table, run_verify

    cases = [
        case
        for case in default_cases()
        if (not dtypes or case.dtype in dtypes) and (not cell_names or case.cell in cell_names)
    ]
    show_progress = not (quiet or as_json)

    def progress(done, total, result):
        if show_progress:
            verdict = "pass" if result.passed else "FAIL"
            click.echo(
                f"[{done:>3}/{total}] {verdict} {result.cell} {result.config} {result.dtype}",
                err=True,
            )

    if show_progress:
        click.echo(f"comparing {len(cases)} cases with keras.layers ...", err=True)
    report = run_verify(cases, progress=progress)
    failed = [row for row in report["cases"] if not row["passed"]]
    if as_json:
        print_json(report)
    else:
        if report["gpu"]:
            click.echo("GPU found: TF32 disabled before comparing (float32 stays float32).")
        click.echo(format_table(report))
        click.echo("largest differences (output / gradient):")
        for dtype, figures in report["max_diff"].items():
            click.echo(
                f"  {dtype:<15} {figures['output_diff']:.1e} / {figures['gradient_diff']:.1e}"
            )
        click.echo(
            f"{len(report['cases']) - len(failed)} of {len(report['cases'])} cases passed "
            f"in {report['seconds']:.0f} s"
        )
    if failed:
        raise RunFailed(f"{len(failed)} of {len(report['cases'])} cases differ from keras")


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


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its start-up chatter (CUDA probes, absl notices) kept off
    stderr, so that stderr carries only seqcast's own messages."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.config.list_physical_devices()  # device probes print here, not later
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the group and maps failures to one line and an exit status."""
    args = sys.argv[1:] if argv is None else argv
    wants_help = any(arg in ("-h", "--help") for arg in args)
    if args and args[0] in cli.commands and args[0] != "baselines" and not wants_help:
        import_tensorflow_quietly()
    try:
        cli.main(args=args, prog_name="engine", standalone_mode=False)
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
