"""Indicators: pure numeric functions over series, with no levels and no thresholds.

No I/O, no clock, no randomness. The signal rules (policies/signals.py) turn these
numbers into levelled readings.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

Point = tuple[int, float]  # (unix seconds, value), ascending by time


def percentile_rank(values: Sequence[float], x: float) -> float:
    """Share (0-100) of ``values`` at or below ``x``; 100 when ``x`` is the maximum."""
    if not values:
        raise ValueError("percentile_rank of no values")
    return 100.0 * sum(1 for v in values if v <= x) / len(values)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation."""
    if not values:
        raise ValueError("mean_std of no values")
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def zscore(x: float, mean: float, std: float, min_std: float = 0.0) -> float:
    """(x - mean) / std, the denominator floored at ``min_std`` (a flat baseline)."""
    denominator = max(std, min_std)
    if denominator <= 0:
        raise ValueError("zscore needs a positive standard deviation or floor")
    return (x - mean) / denominator


def ema(values: Sequence[float], period: int) -> list[float]:
    """Exponential moving average (alpha = 2 / (period + 1)), seeded with the first value."""
    alpha = 2.0 / (period + 1)
    out = [values[0]]
    for v in values[1:]:
        out.append(alpha * v + (1 - alpha) * out[-1])
    return out


def rsi(closes: Sequence[float], period: int = 14) -> float:
    """Wilder's RSI of the last close (needs period + 1 closes)."""
    if len(closes) < period + 1:
        raise ValueError(f"RSI({period}) needs {period + 1} closes, got {len(closes)}")
    gains = [max(b - a, 0.0) for a, b in itertools.pairwise(closes)]
    losses = [max(a - b, 0.0) for a, b in itertools.pairwise(closes)]
    avg_gain = sum(gains[:period]) / period
    avg_loss = sum(losses[:period]) / period
    for g, lo in zip(gains[period:], losses[period:], strict=True):
        avg_gain = (avg_gain * (period - 1) + g) / period
        avg_loss = (avg_loss * (period - 1) + lo) / period
    if avg_loss == 0:
        return 100.0 if avg_gain > 0 else 50.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


def macd_histogram(closes: Sequence[float], fast: int = 12, slow: int = 26,
                   signal: int = 9) -> float:
    """Last MACD histogram value: (EMA_fast - EMA_slow) minus its EMA over ``signal``."""
    line = [f - s for f, s in zip(ema(closes, fast), ema(closes, slow), strict=True)]
    return line[-1] - ema(line, signal)[-1]


def resample_closes(series: Sequence[Point], bar_seconds: int) -> list[Point]:
    """Last value in each bar of ``bar_seconds`` (bars aligned to the epoch), bar start as ts."""
    out: list[Point] = []
    for ts, value in series:
        start = ts - ts % bar_seconds
        if out and out[-1][0] == start:
            out[-1] = (start, value)
        else:
            out.append((start, value))
    return out
