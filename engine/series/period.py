"""The seasonal period of a series, inferred from its training part when nobody gave one.

Candidates come from the date column's frequency (monthly -> 12, hourly -> 24 or 168, ...)
or, without dates, from the peaks of the autocorrelation. A candidate `p` counts as a season
when the autocorrelation of the linearly detrended training part at lag `p` is clearly
positive and clearly above the one at half the period: a season repeats and is out of phase
half-way, while a merely persistent series (a random walk) has an autocorrelation that
only decays, high at `p/2` and lower at `p`. Where the training part holds three periods, a
season must also repeat at `2p`: a quasi-cycle whose length wanders (the sunspots' cycle of
about 11 years, 127 months in their autocorrelation) fades there, a calendar season does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import InputError

#: At least this autocorrelation at the period, and this much above the one at half of it.
MIN_AUTOCORRELATION = 0.3
MIN_ABOVE_HALF_PERIOD = 0.3
#: The candidate must fit this many times into the training part.
MIN_PERIODS = 2
#: With three periods in the training part, the autocorrelation at twice the period must be at
#: least this fraction of the one at the period (both per pair, so the longer lag is not
#: shrunk): about 1 for a season, 0.32 for the sunspots' 127-month cycle.
MIN_REPEAT = 0.5
#: Periods of calendar data (week, months, day in hours or half-hours, year in days, ...).
CALENDAR_PERIODS = (4, 7, 12, 24, 48, 52, 60, 168, 336, 365, 1440)


@dataclass(frozen=True)
class PeriodGuess:
    """The inferred period (None: no clear season) and a line saying how it was found."""

    period: int | None
    how: str


def autocorrelation(values: np.ndarray, max_lag: int, unbiased: bool = False) -> np.ndarray:
    """`acf[k]` for k = 0..max_lag of the linearly detrended series (FFT). The usual
    estimate divides every lag's sum by n, which shrinks long lags: that favours a season's
    fundamental over its multiples, but moves a yearly peak of daily data from 365 to 363.
    `unbiased` divides each lag by its own count of pairs instead."""
    values = np.asarray(values, dtype=np.float64)
    time = np.arange(len(values))
    slope, intercept = np.polyfit(time, values, 1)
    centred = values - (slope * time + intercept)
    size = 1 << int(np.ceil(np.log2(2 * len(values))))
    spectrum = np.fft.rfft(centred, size)
    sums = np.fft.irfft(spectrum * np.conj(spectrum), size)[: max_lag + 1]
    covariance = sums / ((len(values) - np.arange(max_lag + 1)) if unbiased else len(values))
    return covariance / covariance[0] if covariance[0] > 0 else np.zeros(max_lag + 1)


def season_score(acf: np.ndarray, period: int) -> tuple[float, float]:
    """`(acf at the period, acf at the period minus acf at half of it)`."""
    return float(acf[period]), float(acf[period] - acf[period // 2])


def is_season(acf: np.ndarray, period: int) -> bool:
    at_period, above_half = season_score(acf, period)
    return at_period >= MIN_AUTOCORRELATION and above_half >= MIN_ABOVE_HALF_PERIOD


def repeat_ratio(train: np.ndarray, period: int) -> float | None:
    """The per-pair autocorrelation at `2 * period` over the one at `period`; None when the
    training part holds fewer than three periods (too few pairs at the longer lag)."""
    if 3 * period > len(train):
        return None
    unbiased = autocorrelation(train, 2 * period, unbiased=True)
    return float(unbiased[2 * period] / unbiased[period]) if unbiased[period] > 0 else 0.0


def autocorrelation_peaks(acf: np.ndarray, count: int = 5) -> list[int]:
    """The `count` highest local maxima of `acf` at lags >= 2, highest first."""
    peaks = [
        lag
        for lag in range(2, len(acf) - 1)
        if acf[lag] > acf[lag - 1] and acf[lag] >= acf[lag + 1] and acf[lag] > 0
    ]
    return sorted(peaks, key=lambda lag: -acf[lag])[:count]


def refine(train: np.ndarray, period: int) -> int:
    """A calendar period within 2% of `period` (noise moves a peak by a step or two: 363 of
    daily data is the year), else the peak of the unbiased autocorrelation within 2%."""
    spread = period // 50 + 1
    near = [p for p in CALENDAR_PERIODS if abs(p - period) <= spread]
    if near:
        return min(near, key=lambda p: abs(p - period))
    unbiased = autocorrelation(train, min(period + spread, len(train) - 2), unbiased=True)
    lags = range(max(2, period - spread), min(period + spread, len(unbiased) - 1) + 1)
    return max(lags, key=lambda lag: unbiased[lag])


def infer_period(train: np.ndarray, frequency=None) -> PeriodGuess:
    """The season of `train` (a 1-D array), from `frequency` (an
    `engine.series.dates.Frequency`) when there is a date column, else from the
    autocorrelation; `PeriodGuess(None, why)` when nothing is clearly seasonal."""
    longest = len(train) // MIN_PERIODS
    if longest < 2 or np.ptp(train) == 0:
        return PeriodGuess(None, "no clear season (the training part is too short or constant)")
    if frequency is not None and frequency.period_candidates:
        source = f"the date column's {frequency.name} frequency"
        candidates = [p for p in frequency.period_candidates if p <= longest]
        if not candidates:
            shortest = min(frequency.period_candidates)
            return PeriodGuess(
                None,
                f"no clear season: {source} suggests {shortest}, but the training part holds "
                f"fewer than {MIN_PERIODS} periods",
            )
    elif frequency is not None:
        return PeriodGuess(None, f"no season: the date column's frequency is {frequency.name}")
    else:
        source = "the autocorrelation of the training part"
        candidates = None
    acf = autocorrelation(train, longest)
    if candidates is None:
        candidates = autocorrelation_peaks(acf)
    seasons = [p for p in candidates if is_season(acf, p)]
    ratios = {p: repeat_ratio(train, p) for p in seasons}
    cycles = [p for p, ratio in ratios.items() if ratio is not None and ratio < MIN_REPEAT]
    seasons = [p for p in seasons if p not in cycles]
    if not seasons and cycles:
        cycle = cycles[0]
        return PeriodGuess(
            None,
            f"no clear season in {source}: {cycle} (acf {acf[cycle]:.2f}) fades at "
            f"{2 * cycle} ({ratios[cycle]:.2f} of it per pair): a cycle, not a season",
        )
    if not seasons:
        tried = ", ".join(
            f"{p} (acf {season_score(acf, p)[0]:.2f}, {season_score(acf, p)[1]:+.2f} on half)"
            for p in candidates[:3]
        )
        return PeriodGuess(
            None, f"no clear season in {source}" + (f": tried {tried}" if tried else "")
        )
    period = refine(train, max(seasons, key=lambda p: acf[p]))
    at_period, above_half = season_score(acf, period)
    return PeriodGuess(
        period,
        f"period {period} inferred from {source} (autocorrelation {at_period:.2f} at lag "
        f"{period}, {above_half:+.2f} above half a period)",
    )


def check_period(given: int | None) -> None:
    """`--period` is None (find it), 0 (no season) or a season of at least 2 steps."""
    if given is not None and given < 0:
        raise InputError("--period must be 0 (no season) or a period of at least 2 steps")
    if given == 1:
        raise InputError("--period 1 is no season: give 0 for none, or at least 2")


def resolve_period(given, own, train, frequency=None) -> tuple[int, str]:
    """`(period, how it was found)`, 0 for no season: `given` (`--period`; 0: none), else
    the series' `own`, else inferred from the training part `train` (`infer_period`).
    `engine train` and `engine baselines` both resolve it here, so they agree."""
    check_period(given)
    if given is not None:
        return given, "--period 0: no season" if given == 0 else f"period {given}: given"
    if own:
        return own, f"period {own}: the series' own"
    guess = infer_period(train, frequency)
    return guess.period or 0, guess.how
