"""Exposure of one covered LP position: what protection sizes from (x_max, delta, gamma,
range edges in the underlying's quote), and which policy coverage a position falls under."""

from __future__ import annotations

from dataclasses import dataclass

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


