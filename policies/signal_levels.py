"""Levels of a signal: entry thresholds with a hysteresis band, and input checks.

No I/O, no clock, no randomness. A signal turns its inputs into one severity
score (bigger = worse); :func:`classify` maps the score to a level with
ascending entry thresholds (elevated, stress, crisis) and a band: a level, once
reached, is kept until the score falls below its entry threshold minus the band.
The checks here turn empty, unordered, future, stale, NaN, infinite, negative or
absurd inputs into an unknown reading (``level=None``) with the reason.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from policies.indicators import Point
from policies.types import Level, SignalReading

EPS = 1e-9  # relative tolerance of "at or above a threshold" against float representation


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Entry thresholds of the score for ELEVATED, STRESS, CRISIS and the exit band."""

    elevated: float
    stress: float
    crisis: float
    band: float

    def __post_init__(self) -> None:
        values = (self.elevated, self.stress, self.crisis, self.band)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("thresholds must be finite")
        if not self.elevated <= self.stress <= self.crisis:
            raise ValueError("thresholds must ascend: elevated <= stress <= crisis")
        if self.band < 0:
            raise ValueError("hysteresis band must be >= 0")

    def entry(self, level: Level) -> float:
        return {Level.ELEVATED: self.elevated, Level.STRESS: self.stress,
                Level.CRISIS: self.crisis}[level]

    def as_evidence(self) -> dict[str, float]:
        return {"elevated": self.elevated, "stress": self.stress, "crisis": self.crisis,
                "band": self.band}


def classify(score: float, thresholds: Thresholds, previous: Level | None) -> Level:
    """Level of a finite score with hysteresis.

    A level above ``previous`` is entered at its entry threshold; a level at or
    below ``previous`` is kept while the score stays at or above its entry
    threshold minus the band. Monotone in the score and in ``previous``.
    """
    level = Level.CALM
    for candidate in (Level.ELEVATED, Level.STRESS, Level.CRISIS):
        threshold = thresholds.entry(candidate)
        if previous is not None and candidate <= previous:
            threshold -= thresholds.band
        if score >= threshold - EPS * max(1.0, abs(threshold)):  # "at or above", float-safe
            level = candidate
    return level


def unknown(name: str, reason: str, **evidence: object) -> SignalReading:
    return SignalReading(name=name, level=None, reason=reason, evidence=dict(evidence))


def levelled(name: str, score: float, thresholds: Thresholds, previous: Level | None,
              what: str, evidence: dict[str, object]) -> SignalReading:
    level = classify(score, thresholds, previous)
    evidence = {**evidence, "score": score, "thresholds": thresholds.as_evidence(),
                "previous": None if previous is None else previous.name.lower()}
    if level is Level.CALM:
        reason = f"{what} below elevated threshold {thresholds.elevated:g}"
    else:
        entry = thresholds.entry(level)
        held = previous is not None and level <= previous and score < entry
        reason = (f"{what} >= {level.name.lower()} threshold {entry:g}" if not held else
                  f"{what} held at {level.name.lower()} (hysteresis: above "
                  f"{entry - thresholds.band:g})")
    return SignalReading(name=name, level=level, reason=reason, evidence=evidence)


def bad_value(value: float, *, positive: bool = False, upper: float | None = None) -> str | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"not a number ({value!r})"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "infinite"
    if positive and value <= 0:
        return f"non-positive ({value:g})"
    if upper is not None and abs(value) > upper:
        return f"absurd ({value:g} beyond {upper:g})"
    return None


def check_series(name: str, series: Sequence[Point], now: int, max_age: int, *,
                  positive: bool, upper: float | None) -> SignalReading | None:
    """Unknown reading if the series is empty, unordered, from the future, stale or bad."""
    if not series:
        return unknown(name, "no data")
    prev_ts: int | None = None
    for ts, value in series:
        if prev_ts is not None and ts <= prev_ts:
            return unknown(name, f"series not strictly ascending at ts {ts}")
        prev_ts = ts
        bad = bad_value(value, positive=positive, upper=upper)
        if bad is not None:
            return unknown(name, f"invalid input at ts {ts}: {bad}", bad_ts=ts)
    last_ts = series[-1][0]
    if last_ts > now:
        return unknown(name, f"latest point ts {last_ts} is after now {now}", latest_ts=last_ts)
    if now - last_ts > max_age:
        return unknown(name, f"stale: latest point is {now - last_ts}s old, bound {max_age}s",
                        latest_ts=last_ts, age_s=now - last_ts, max_age_s=max_age)
    return None


def window(series: Sequence[Point], start: int, end: int) -> Sequence[Point]:
    """Points with start <= ts <= end (series ascending)."""
    times = [p[0] for p in series]
    return series[bisect_left(times, start):bisect_right(times, end)]
