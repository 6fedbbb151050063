"""policies/quote.py: orientation of pairs, delta and gamma in the base token, USD only from a
stable leg or a named source. Expected values come from the definitions (amounts of
policies.lp_math at two prices, hand-written orientation table), never from operator_view."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.lp_math import (
    MAX_TICK,
    MIN_TICK,
    amount0_delta,
    amount1_delta,
    get_sqrt_ratio_at_tick,
    position_metrics,
)
from policies.quote import UsdSource, fmt_num, operator_view, orient, totals
from policies.types import PoolState, Position, TickFeeGrowth, Token

USDC = Token("0x" + "a0" * 20, "USDC", 6)
WETH = Token("0x" + "c0" * 20, "WETH", 18)
WBTC = Token("0x" + "20" * 20, "WBTC", 8)
DAI = Token("0x" + "6b" * 20, "DAI", 18)
USDT = Token("0x" + "da" * 20, "USDT", 6)
UNI = Token("0x" + "1f" * 20, "UNI", 18)
LINK = Token("0x" + "51" * 20, "LINK", 18)


@pytest.mark.parametrize("t0, t1, pair", [
    (USDC, WETH, "base=token1"), (WETH, USDC, "base=token0"), (WETH, DAI, "base=token0"),
    (DAI, WETH, "base=token1"), (WBTC, WETH, "base=token0"), (WETH, WBTC, "base=token1"),
    (USDC, WBTC, "base=token1"), (UNI, WETH, "base=token0"), (WETH, UNI, "base=token1"),
    (USDC, USDT, "base=token0"), (UNI, LINK, "base=token0"), (LINK, USDC, "base=token0"),
])
def test_orientation_table(t0: Token, t1: Token, pair: str) -> None:
    assert orient(t0, t1) == pair


def _pos(t0: Token, t1: Token, tick: int, lo: int, up: int, liq: int, spacing: int = 10) -> Position:
    pool = PoolState("0x" + "88" * 20, t0, t1, 500, spacing, get_sqrt_ratio_at_tick(tick), tick,
                     liq, 0, 0)
    z = TickFeeGrowth(0, 0)
    return Position(1, "0x" + "5a" * 20, "0x" + "c3" * 20, pool, lo, up, liq, 0, 0, 0, 0, z, z)


def _base_raw(p: Position, sqrt_price: int, base0: bool) -> int:
    """The base amount at ``sqrt_price`` inside the range (the v3 amount formulas)."""
    sa, sb = get_sqrt_ratio_at_tick(p.tick_lower), get_sqrt_ratio_at_tick(p.tick_upper)
    if base0:
        return amount0_delta(sqrt_price, sb, p.liquidity, False)
    return amount1_delta(sa, sqrt_price, p.liquidity, False)


TICKS = st.integers(-30_000, 30_000).map(lambda t: t - t % 10)


@given(order=st.booleans(), tick=st.integers(-40_000, 40_000), lo=TICKS, width=st.integers(1, 3000),
       liq=st.integers(10**9, 10**24))
def test_delta_is_base_amount_and_pair_reads_eth_usdc(order: bool, tick: int, lo: int, width: int,
                                                       liq: int) -> None:
    t0, t1 = (USDC, WETH) if order else (WETH, USDC)
    up = lo + 10 * width
    p = _pos(t0, t1, tick, lo, up, liq)
    m = position_metrics(p)
    v = operator_view(p, m)
    base0 = not order
    assert (v.base, v.quote, v.pair) == ("ETH", "USDC", "ETH/USDC")
    weth = m.amount1 if order else m.amount0
    usdc = m.amount0 if order else m.amount1
    assert v.delta == float(Fraction(weth, 10**18))  # exact from the integers, both orders
    above = (tick >= up) if base0 else (tick < lo)  # ETH price above the range: all USDC
    if above:
        assert v.delta == 0
    # price: USDC per ETH from sqrtPriceX96, exactly by Fraction
    raw = Fraction(get_sqrt_ratio_at_tick(tick) ** 2, 2**192)  # token1 per token0, raw
    usdc_per_eth = (raw if base0 else 1 / raw) * Fraction(10**18, 10**6)
    assert v.price == pytest.approx(float(usdc_per_eth), rel=1e-12)
    assert v.price_lower < v.price_upper
    value = Fraction(weth, 10**18) * usdc_per_eth + Fraction(usdc, 10**6)
    assert v.value_usd == pytest.approx(float(value), rel=1e-12, abs=1e-12)
    assert v.usd_source == "USDC leg at $1"
    # gamma per 1%: the base amount's change from P*0.995 to P*1.005 (central difference)
    if lo + 60 < tick < up - 60 and liq >= 10**15:  # the ±0.5% move stays in range, integers large
        s = get_sqrt_ratio_at_tick(tick)
        # P is quote per base: for base=token0 the pool's price moves with P, else inversely
        up_, dn_ = math.sqrt(1.005), math.sqrt(0.995)
        s_up, s_dn = (int(s * up_), int(s * dn_)) if base0 else (int(s / up_), int(s / dn_))
        fd = (_base_raw(p, s_up, base0) - _base_raw(p, s_dn, base0)) / 10**18
        assert v.gamma_1pct == pytest.approx(fd, rel=2e-3, abs=1e-15)
        assert v.gamma_1pct < 0
    else:
        assert v.gamma_1pct == 0 or (lo <= tick < up)


def test_full_range_is_named() -> None:
    p = _pos(USDC, WETH, 0, MIN_TICK + 2, MAX_TICK - 2, 10**18)  # -887270, 887270 at spacing 10
    assert operator_view(p, position_metrics(p)).full_range
    q = _pos(USDC, WETH, 0, -887200, 887200, 10**18)
    assert not operator_view(q, position_metrics(q)).full_range


def test_usd_unknown_without_stable_leg_unless_a_source_is_named() -> None:
    p = _pos(WBTC, WETH, 0, -100, 100, 10**12, spacing=10)
    m = position_metrics(p)
    v = operator_view(p, m)
    assert (v.pair, v.value_usd, v.usd_source) == ("BTC/ETH", None, None)
    w = operator_view(p, m, UsdSource(3000.0, "chainlink ETH/USD"))
    assert w.usd_source == "chainlink ETH/USD"
    assert w.value_usd == pytest.approx(v.value_quote * 3000.0, rel=1e-15)
    for bad in (math.nan, math.inf, 0.0, -1.0):
        assert operator_view(p, m, UsdSource(bad, "x")).value_usd is None
    t = totals([v, operator_view(_pos(USDC, WETH, 0, -100, 100, 10**12), m)])
    assert t.value_usd is None and t.unknown_usd == 1


def test_totals_per_base() -> None:
    a = _pos(USDC, WETH, 0, -100, 100, 10**15)
    b = _pos(WETH, USDC, 0, -100, 100, 10**15)
    va, vb = operator_view(a, position_metrics(a)), operator_view(b, position_metrics(b))
    t = totals([va, vb])
    assert t.by_base == (("ETH", va.delta + vb.delta, va.gamma_1pct + vb.gamma_1pct),)
    assert t.value_usd == pytest.approx((va.value_usd or 0) + (vb.value_usd or 0))


@pytest.mark.parametrize("x, text", [
    (0.0, "0"), (1234567.891, "1,234,568"), (3000.0, "3,000"), (0.000333333, "0.000333333"),
    (-1.557e-3, "-0.001557"), (2.9395e-27, "0.0000000000000000000000000029395"), (None, "unknown"),
    (math.inf, "∞"), (1.5, "1.5"), (12.3456789, "12.3457"),
])
def test_one_number_format(x: float | None, text: str) -> None:
    assert fmt_num(x) == text
