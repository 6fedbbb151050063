"""position_metrics / position_amounts: human units, regions, fees, refusals."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.lp_math import (
    PositionMetrics,
    amounts_for_liquidity,
    fees_owed,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    lp_delta,
    position_amounts,
    position_metrics,
    price_at_sqrt_ratio,
    x_max_raw,
)
from policies.types import TickFeeGrowth

from .helpers import make_position

Q128 = 2**128


def _usdc_weth(tick_offset: int, *, liquidity: int = 10**18) -> PositionMetrics:
    """token0 USDC (6 dp), token1 WETH (18 dp): raw price ~ 1/3000 * 1e12, tick ~ 195,000."""
    lo, up = 194_000, 197_000
    sqrt = get_sqrt_ratio_at_tick(195_500 + tick_offset) + 99
    pos = make_position(
        sqrt_price_x96=sqrt,
        tick=get_tick_at_sqrt_ratio(sqrt),
        tick_lower=lo,
        tick_upper=up,
        liquidity=liquidity,
        decimals0=6,
        decimals1=18,
        global0=500 * Q128,
        global1=7 * Q128,
        owed0=1_000_000,
        owed1=10**15,
        token_id=42,
    )
    return position_metrics(pos)


def test_in_range_metrics_human_units() -> None:
    m = _usdc_weth(0)
    assert m.token_id == 42 and m.in_range
    # human price: WETH per USDC, about 1/3000
    assert 1 / 4000 < m.price < 1 / 2500
    assert m.price_lower < m.price < m.price_upper
    raw = price_at_sqrt_ratio(get_sqrt_ratio_at_tick(195_500) + 99)
    assert m.price == pytest.approx(raw * 1e-12, rel=1e-12)
    assert m.price_lower == pytest.approx(1.0001**194_000 * 1e-12, rel=1e-9)
    assert m.price_upper == pytest.approx(1.0001**197_000 * 1e-12, rel=1e-9)
    # value of amounts only, in WETH; fees separately
    assert m.value == pytest.approx(m.amount0 / 1e6 * m.price + m.amount1 / 1e18, rel=1e-12)
    assert m.fees0 == 1_000_000 + 500 * 10**18 and m.fees1 == 10**15 + 7 * 10**18
    assert m.fees_value == pytest.approx(m.fees0 / 1e6 * m.price + m.fees1 / 1e18, rel=1e-12)
    # delta in USDC = token0 held
    assert m.delta == pytest.approx(m.amount0 / 1e6, rel=1e-9)
    assert m.x_max == m.x_max_raw / 1e6
    assert m.x_max_raw == x_max_raw(10**18, 194_000, 197_000)
    assert m.gamma < 0


def test_gamma_in_human_units_is_d_delta_d_price() -> None:
    m = _usdc_weth(0)
    pa = price_at_sqrt_ratio(get_sqrt_ratio_at_tick(194_000))
    pb = price_at_sqrt_ratio(get_sqrt_ratio_at_tick(197_000))

    def delta_h(price_h: float) -> float:  # token0 human, as a function of the human price
        return lp_delta(1e18, price_h * 1e12, pa, pb) / 1e6

    h = m.price * 1e-6
    fd = (delta_h(m.price + h) - delta_h(m.price - h)) / (2 * h)
    assert m.gamma == pytest.approx(fd, rel=1e-5)


def test_below_and_above_range() -> None:
    below = _usdc_weth(-5000)  # tick 190,500 < 194,000
    assert not below.in_range
    assert below.amount1 == 0 and below.amount0 == below.x_max_raw
    assert below.delta == pytest.approx(below.x_max, rel=1e-9)
    assert below.gamma == 0.0
    above = _usdc_weth(5000)
    assert not above.in_range
    assert above.amount0 == 0 and above.amount1 > 0
    assert above.delta == 0.0 and above.gamma == 0.0
    assert above.value == pytest.approx(above.amount1 / 1e18)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(-300_000, 300_000),
    st.integers(1, 20_000),
    st.integers(-330_000, 330_000),
    st.integers(0, 2**120),
    st.integers(0, 24),
    st.integers(0, 24),
)
def test_metrics_consistent_with_exact_functions(
    lo: int, width: int, t: int, liq: int, d0: int, d1: int
) -> None:
    up = lo + width
    sqrt = get_sqrt_ratio_at_tick(t)
    tick = t - 1 if t in (lo, up) else t  # on an edge the pool may report the tick below
    pos = make_position(
        sqrt_price_x96=sqrt,
        tick=tick,
        tick_lower=lo,
        tick_upper=up,
        liquidity=liq,
        decimals0=d0,
        decimals1=d1,
        global0=3 * Q128,
        lower=TickFeeGrowth(Q128, 0),
        upper=TickFeeGrowth(0, 0),
    )
    m = position_metrics(pos)
    assert (m.amount0, m.amount1) == position_amounts(pos)
    assert position_amounts(pos) == amounts_for_liquidity(sqrt, tick, lo, up, liq, False)
    assert (m.fees0, m.fees1) == fees_owed(pos)
    assert m.in_range == (lo <= tick < up)
    assert m.x_max_raw == x_max_raw(liq, lo, up)
    assert m.price == pytest.approx(price_at_sqrt_ratio(sqrt) * 10.0 ** (d0 - d1), rel=1e-12)
    assert math.isclose(m.delta * 10**d0, m.amount0, rel_tol=1e-8, abs_tol=2)


def test_bad_range_refused() -> None:
    pos = make_position(
        sqrt_price_x96=get_sqrt_ratio_at_tick(0), tick=0, tick_lower=10, tick_upper=10, liquidity=1
    )
    with pytest.raises(ValueError, match="tick_lower 10 must be < tick_upper 10"):
        position_metrics(pos)
    with pytest.raises(ValueError, match="tick_lower 10 must be < tick_upper 10"):
        position_amounts(pos)
