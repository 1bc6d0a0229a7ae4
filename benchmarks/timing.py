"""What every timing table here prints and records: the median of repeated rounds, their
range, and the ratio of the median to the reference variant's median."""

from __future__ import annotations

import statistics


def timing_figures(prefix: str, times: list[float], reference: float, ratio_key: str) -> dict:
    """`{prefix}_median`, `{prefix}_min`, `{prefix}_max` (ms) and `ratio_key`, rounded."""
    median = statistics.median(times)
    return {
        f"{prefix}_median": round(median, 3),
        f"{prefix}_min": round(min(times), 3),
        f"{prefix}_max": round(max(times), 3),
        ratio_key: round(median / reference, 3),
    }


def timing_columns(times: list[float], reference: float) -> str:
    """The `median  [min-max]  ratio` columns of a table row."""
    median = statistics.median(times)
    spread = f"[{min(times):.2f}-{max(times):.2f}]"
    return f"{median:9.2f}{spread:>19}{median / reference:8.2f}"
