"""`engine verify`: the cells' equivalence proof against keras.layers, run on this machine."""

from __future__ import annotations

import click

from engine.cli.options import json_option, print_json, quiet_option
from engine.errors import RunFailed


@click.command("verify")
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
    from cells.equivalence import default_cases, format_table, run_verify

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
