"""Exposure of one covered LP position: what protection sizes from (x_max, delta, gamma,
range edges in the underlying's quote), and which policy coverage a position falls under."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from policies.lp_math import (
    amount0_delta,
    amount1_delta,
    get_sqrt_ratio_at_tick,
    lp_delta,
    lp_gamma,
    lp_value,
    price_at_sqrt_ratio,
)
from policies.policy_file import Coverage, Policy
from policies.types import Position

# ------------------------------------------------------------------------------ exposure


@dataclass(frozen=True, slots=True)
class Exposure:
    """One covered LP position seen from its underlying, in USD-per-underlying terms.

    ``lower``/``upper`` are the range edges as underlying prices (whichever pool
    token the underlying is), ``x_max`` the underlying held once the price is below
    the range, ``delta`` the underlying held now, ``gamma`` d delta / d spot.
    """

    token_id: int
    underlying: str
    quote: str
    pool: str
    spot: float
    lower: float
    upper: float
    in_range: bool
    liquidity: int
    x_max: float
    delta: float
    gamma: float
    value_usd: float


def exposure(position: Position, cover: Coverage) -> Exposure:
    """Exposure of one position via policies.lp_math (exact x_max, float greeks)."""
    pool = position.pool
    d0, d1 = pool.token0.decimals, pool.token1.decimals
    lo_t, up_t = position.tick_lower, position.tick_upper
    sa, sb = get_sqrt_ratio_at_tick(lo_t), get_sqrt_ratio_at_tick(up_t)
    scale = 10.0 ** (d0 - d1)  # raw price -> human token1 per token0
    p = price_at_sqrt_ratio(pool.sqrt_price_x96) * scale
    pa = price_at_sqrt_ratio(sa) * scale
    pb = price_at_sqrt_ratio(sb) * scale
    liq = position.liquidity
    # In underlying-price space both orientations are the same v3 curve with
    # L_h = L * 10**(-(d0 + d1) / 2) (see docs/policy.md).
    l_h = liq * 10.0 ** (-(d0 + d1) / 2.0)
    if cover.underlying_token == "token0":
        spot, lower, upper = p, pa, pb
        x_max = amount0_delta(sa, sb, liq, False) / 10.0**d0
    else:
        spot, lower, upper = 1.0 / p, 1.0 / pb, 1.0 / pa
        x_max = amount1_delta(sa, sb, liq, False) / 10.0**d1
    return Exposure(
        token_id=position.token_id, underlying=cover.underlying, quote=cover.quote,
        pool=pool.address.lower(), spot=spot, lower=lower, upper=upper,
        in_range=lo_t <= pool.tick < up_t, liquidity=liq, x_max=x_max,
        delta=lp_delta(l_h, spot, lower, upper), gamma=lp_gamma(l_h, spot, lower, upper),
        value_usd=lp_value(l_h, spot, lower, upper),
    )


def match_coverage(policy: Policy, position: Position) -> Coverage | None:
    """The coverage entry of a position: one listing its token id, else a pool-wide one."""
    addr = position.pool.address.lower()
    pool_wide: Coverage | None = None
    for cover in policy.coverage:
        if cover.pool != addr:
            continue
        if position.token_id in cover.token_ids:
            return cover
        if not cover.token_ids and pool_wide is None:
            pool_wide = cover
    return pool_wide




@dataclass(frozen=True, slots=True)
class HeldUnderlying:
    """Underlying the Safe holds outside LP positions, e.g. what an exit returned (issue
    13, M3). Exposure being removed: its existing hedges are kept (no perp buy-back, rolls
    continue up to the layer's share of it) but no new protection is opened for it."""

    underlying: str
    amount: float  # underlying units, >= 0


def _plain(symbol: str) -> str:
    """WETH -> ETH, WBTC -> BTC: a wrapped token names the same underlying."""
    s = symbol.upper()
    return s[1:] if s.startswith("W") and len(s) > 3 else s


def token_mismatch(position: Position, cover: Coverage) -> str | None:
    """Why the coverage entry names the wrong pool token (None: the symbols agree).

    The side named ``underlying_token`` must be the underlying (WETH/ETH-style wrapped
    pairs agree) and the other side the quote (issue 13, M1)."""
    pool = position.pool
    mine, other = ((pool.token0, pool.token1) if cover.underlying_token == "token0"
                   else (pool.token1, pool.token0))
    if _plain(mine.symbol) != _plain(cover.underlying):
        return (f"{cover.underlying_token} of pool {pool.address.lower()} is {mine.symbol}, "
                f"not the underlying {cover.underlying}")
    if _plain(other.symbol) != _plain(cover.quote):
        return (f"the other token of pool {pool.address.lower()} is {other.symbol}, not the "
                f"quote {cover.quote}")
    return None


def spot_mismatch(spot: float, reference: float | None, max_deviation: float) -> str | None:
    """Why a pool's spot cannot be trusted against the market (None: it agrees)."""
    if reference is None:
        return "no fresh market price (perp mark or option forward) to check the pool price"
    if not math.isfinite(spot) or spot <= 0 or abs(spot / reference - 1) > max_deviation:
        return (f"pool spot {spot:.6g} vs market {reference:.6g} differs by more than "
                f"{max_deviation:.1%}")
    return None


def quote_usd(signals_evidence: dict[str, object] | None) -> float:
    """USD per quote token from a depeg reading's evidence (``bps`` off a $1 peg, the
    worst fresh source), else 1.0 (issue 13, Q8). A quote far off its peg is also caught
    by the market check (pool spot vs the perp mark / option forward, both in USD)."""
    bps = (signals_evidence or {}).get("bps")
    if isinstance(bps, int | float) and not isinstance(bps, bool) and math.isfinite(bps) \
            and abs(bps) < 5000:
        return 1.0 + float(bps) / 1e4
    return 1.0


def in_usd(e: Exposure, usd_per_quote: float) -> Exposure:
    """The exposure with prices in USD when the quote token is worth ``usd_per_quote``
    (x_max and delta are underlying units and do not change; gamma is per USD)."""
    if usd_per_quote == 1.0:
        return e
    k = usd_per_quote
    return replace(e, spot=e.spot * k, lower=e.lower * k, upper=e.upper * k,
                   gamma=e.gamma / k, value_usd=e.value_usd * k)
