"""The `engine` command line: one click group, one module per command family.

Exit status: 0 success, 1 the work failed (`RunFailed`), 2 bad usage or bad input
(`InputError`, click usage errors). Errors are one line on stderr, never a traceback
(set SEQCAST_DEBUG=1 to see one).
"""

from __future__ import annotations

import os
import sys

import click

from engine.cli.backtest import backtest_command
from engine.cli.deploy import export_command, forecast
from engine.cli.equivalence import verify
from engine.cli.serve import serve
from engine.cli.training import baselines, evaluate_command, lr_find_command, train_command
from engine.errors import InputError, Interrupted, RunFailed, first_line


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="seqcast", prog_name="engine")
def cli() -> None:
    """seqcast: train recurrent forecasters, export them for TensorFlow Serving, serve them."""


for command in (
    train_command,
    lr_find_command,
    evaluate_command,
    backtest_command,
    baselines,
    verify,
    export_command,
    serve,
    forecast,
):
    cli.add_command(command)


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
    except InputError as error:
        click.echo(f"engine: error: {error}", err=True)
        sys.exit(2)
    except RunFailed as error:
        click.echo(f"engine: failed: {error}", err=True)
        sys.exit(1)
    except Interrupted as error:
        click.echo(f"engine: interrupted; {error}", err=True)
        sys.exit(130)
    except (KeyboardInterrupt, click.exceptions.Abort):  # click turns Ctrl-C into Abort
        click.echo("engine: interrupted", err=True)
        sys.exit(130)
    except Exception as error:  # noqa: BLE001 - the contract is one line, never a traceback
        if os.environ.get("SEQCAST_DEBUG"):
            raise
        click.echo(f"engine: internal error: {type(error).__name__}: {first_line(error)}", err=True)
        sys.exit(1)
