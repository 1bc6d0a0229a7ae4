"""Running many cases and reporting them: `engine verify`'s JSON and its table."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from cells.equivalence.cases import Case, default_cases
from cells.equivalence.compare import Result, compare, disable_tf32


def run_verify(
    cases: list[Case] | None = None,
    progress: Callable[[int, int, Result], None] | None = None,
    seed: int = 0,
) -> dict:
    """Runs `cases` (default: `default_cases()`) and returns the report of `engine verify`.

    `{"passed": bool, "cases": [{"cell", "config", "dtype", "output_diff", "gradient_diff",
    "tolerance", "passed", ...}], "gpu": bool, "tf32_disabled": bool, "max_diff": {...},
    "seconds": float}`.
    """
    import tensorflow as tf

    cases = default_cases() if cases is None else cases
    gpu = disable_tf32()
    start = time.perf_counter()
    results = []
    for index, case in enumerate(cases):
        result = compare(case, seed=seed + index)
        results.append(result)
        if progress is not None:
            progress(index + 1, len(cases), result)
    largest: dict[str, dict[str, float]] = {}
    for result in results:
        entry = largest.setdefault(result.dtype, {"output_diff": 0.0, "gradient_diff": 0.0})
        for key in entry:
            value = getattr(result, key)
            entry[key] = value if not math.isfinite(value) else max(entry[key], value)
    return {
        "passed": all(result.passed for result in results),
        "cases": [result.as_json() for result in results],
        "gpu": gpu,
        "tf32_disabled": gpu and not tf.config.experimental.tensor_float_32_execution_enabled(),
        "max_diff": largest,
        "seconds": round(time.perf_counter() - start, 1),
    }


def format_table(report: dict) -> str:
    """The report as a fixed-width table, one row per case."""
    rows = report["cases"]
    cell_width = max([len("cell")] + [len(row["cell"]) for row in rows]) + 2
    config_width = max([len("configuration")] + [len(row["config"]) for row in rows]) + 2
    lines = [
        f"{'cell':<{cell_width}}{'configuration':<{config_width}}{'dtype':<16}"
        f"{'output':>9}{'gradient':>10}{'tolerance':>11}  result"
    ]
    for row in rows:
        verdict = "pass" if row["passed"] else "FAIL"
        if row.get("error"):
            verdict += f" ({row['error']})"
        lines.append(
            f"{row['cell']:<{cell_width}}{row['config']:<{config_width}}{row['dtype']:<16}"
            f"{_figure(row['output_diff']):>9}{_figure(row['gradient_diff']):>10}"
            f"{row['tolerance']:>11.0e}  {verdict}"
        )
    return "\n".join(lines)


def _figure(value) -> str:
    return "n/a" if value is None else f"{value:.1e}"
