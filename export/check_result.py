"""What one check reports, and how it compares a loader's results with the reference.

A request's result is its signature's outputs by name. Results agree when both have the
same outputs and `relative_difference(got, reference) <= RELATIVE_TOLERANCE` for each
output of every request: `max|got - reference| <= 1e-6 * max|reference|`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

RELATIVE_TOLERANCE = 1e-6


@dataclass
class CheckResult:
    """One check: `passed`, a one-line `detail`, and where it compares results the largest
    relative difference seen."""

    name: str
    passed: bool
    detail: str
    max_relative_difference: float | None = None
    seconds: float = 0.0


def seconds_since(start: float) -> float:
    """Wall time since `start` (a `time.perf_counter()` reading), as a report states it."""
    return round(time.perf_counter() - start, 3)


def relative_difference(got, reference) -> float:
    """`max|got - reference| / max|reference|` in float64, absolute when the reference is all
    zeros: the same definition as the cells' equivalence proof.

    Shapes that differ, or any non-finite value in either, give inf; empty arrays give 0.0.
    """
    got = np.asarray(got, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if got.shape != reference.shape:
        return math.inf
    if got.size == 0:
        return 0.0
    if not (np.all(np.isfinite(got)) and np.all(np.isfinite(reference))):
        return math.inf
    scale = float(np.max(np.abs(reference)))
    difference = float(np.max(np.abs(got - reference)))
    return difference / scale if scale > 0 else difference


def result_difference(got: dict, reference: dict) -> float:
    """The largest relative difference over the outputs; inf when the names differ."""
    if set(got) != set(reference):
        return math.inf
    return max((relative_difference(got[k], reference[k]) for k in reference), default=0.0)


def compare_results(name: str, label: str, results, references, start: float) -> CheckResult:
    """The check `name` passes when there is one result per reference and each agrees with
    its reference, output by output; `label` says how the results were computed."""
    differences = [result_difference(got, want) for got, want in zip(results, references)]
    worst = max(differences, default=0.0)
    passed = len(results) == len(references) and worst <= RELATIVE_TOLERANCE
    outputs = sum(len(reference) for reference in references)
    detail = (
        f"{label}: {len(results)} requests ({outputs} outputs), max relative difference "
        f"{worst:.3g} (tolerance {RELATIVE_TOLERANCE:g})"
    )
    return CheckResult(name, passed, detail, worst, seconds_since(start))
