"""Black-76 option pricing and greeks (pure floats, math.erf only, no scipy).

Black-76 prices an option on a forward ``F`` (for crypto options the venue's
forward / index price), struck at ``K``, expiring in ``t`` years, with implied
volatility ``sigma`` (a fraction: 0.65 = 65%) and discount rate ``r`` (continuous,
default 0: crypto venues quote premiums undiscounted against the forward).

Used to value the hedge book, to estimate the premium of protection and to run
backtests. Greeks are per unit of underlying:

- delta: d price / d F
- gamma: d delta / d F
- vega: d price / d sigma (per 1.00 of vol, i.e. per 100 vol points)
- theta: - d price / d t (per year; divide by 365 for per day)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from policies.vocab import OptionKind as OptionKind  # defined in the vocabulary, re-exported

SQRT2 = math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
SECONDS_PER_YEAR = 365.0 * 86400.0




def norm_cdf(x: float) -> float:
    """Standard normal CDF via erf."""
    return 0.5 * (1.0 + math.erf(x / SQRT2))


def norm_pdf(x: float) -> float:
    return INV_SQRT_2PI * math.exp(-0.5 * x * x)


@dataclass(frozen=True, slots=True)
class OptionGreeks:
    """Price and greeks of one option per unit of underlying."""

    price: float
    delta: float
    gamma: float
    vega: float
    theta: float


def _check(forward: float, strike: float, t: float, sigma: float) -> None:
    for name, value in (("forward", forward), ("strike", strike), ("t", t), ("sigma", sigma)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if forward <= 0 or strike <= 0:
        raise ValueError("forward and strike must be > 0")
    if t < 0 or sigma < 0:
        raise ValueError("t and sigma must be >= 0")


def black76(kind: OptionKind, forward: float, strike: float, t: float, sigma: float,
            r: float = 0.0) -> OptionGreeks:
    """Black-76 price and greeks. At expiry (t == 0) or zero vol: discounted intrinsic
    value of the forward, delta a step (0.5 at the money), gamma and vega zero."""
    _check(forward, strike, t, sigma)
    df = math.exp(-r * t)
    sign = 1.0 if kind is OptionKind.CALL else -1.0
    sd = sigma * math.sqrt(t)
    if sd <= 0.0:
        intrinsic = max(sign * (forward - strike), 0.0)
        if forward == strike:
            delta = 0.5 * sign * df
        else:
            delta = sign * df if sign * (forward - strike) > 0 else 0.0
        return OptionGreeks(price=df * intrinsic, delta=delta, gamma=0.0, vega=0.0,
                            theta=r * df * intrinsic)
    d1 = (math.log(forward / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    if kind is OptionKind.CALL:
        price = df * (forward * norm_cdf(d1) - strike * norm_cdf(d2))
        delta = df * norm_cdf(d1)
    else:
        price = df * (strike * norm_cdf(-d2) - forward * norm_cdf(-d1))
        delta = -df * norm_cdf(-d1)
    pdf = norm_pdf(d1)
    gamma = df * pdf / (forward * sd)
    vega = df * forward * pdf * math.sqrt(t)
    theta = r * price - df * forward * pdf * sigma / (2.0 * math.sqrt(t))
    return OptionGreeks(price=price, delta=delta, gamma=gamma, vega=vega, theta=theta)


def black76_price(kind: OptionKind, forward: float, strike: float, t: float, sigma: float,
                  r: float = 0.0) -> float:
    return black76(kind, forward, strike, t, sigma, r).price


def implied_vol(kind: OptionKind, price: float, forward: float, strike: float, t: float,
                r: float = 0.0, lo: float = 1e-4, hi: float = 10.0,
                tol: float = 1e-10) -> float | None:
    """Black-76 implied volatility by bisection (deterministic, monotone in vol).

    None when the price is outside what any vol in [lo, hi] gives (below intrinsic,
    above the forward/strike bound) or t <= 0: unknown, never a default.
    """
    if not math.isfinite(price) or t <= 0:
        return None
    p_lo = black76_price(kind, forward, strike, t, lo, r)
    p_hi = black76_price(kind, forward, strike, t, hi, r)
    if not p_lo <= price <= p_hi:
        return None
    a, b = lo, hi
    for _ in range(200):
        mid = 0.5 * (a + b)
        if black76_price(kind, forward, strike, t, mid, r) < price:
            a = mid
        else:
            b = mid
        if b - a < tol:
            break
    return 0.5 * (a + b)


def year_fraction(now: int, expiry: int) -> float:
    """Years from ``now`` to ``expiry`` (unix seconds), floored at 0."""
    return max(expiry - now, 0) / SECONDS_PER_YEAR


def put_payoff(strike: float, price: float) -> float:
    return max(strike - price, 0.0)


def call_payoff(strike: float, price: float) -> float:
    return max(price - strike, 0.0)
