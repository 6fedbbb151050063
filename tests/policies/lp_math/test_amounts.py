"""SqrtPriceMath amounts, the pool's branching, LiquidityAmounts: exact references and properties."""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from math import ceil, floor

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from policies.lp_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    amount0_delta,
    amount1_delta,
    amounts_for_liquidity,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    liquidity_for_amounts,
    x_max_raw,
)

UINT128_MAX = 2**128 - 1
Q96 = 2**96


def encode_price_sqrt(reserve1: int, reserve0: int) -> int:
    """The Uniswap test suites' encodePriceSqrt: bignumber.js with DECIMAL_PLACES 40, HALF_UP."""
    with localcontext() as ctx:
        ctx.prec = 200
        q = Decimal(10) ** -40
        ratio = (Decimal(reserve1) / Decimal(reserve0)).quantize(q, ROUND_HALF_UP)
        root = ratio.sqrt().quantize(q, ROUND_HALF_UP)
        return int((root * Decimal(2) ** 96).to_integral_value(ROUND_FLOOR))


sqrts = st.integers(MIN_SQRT_RATIO, MAX_SQRT_RATIO)
liquidities = st.one_of(
    st.integers(0, UINT128_MAX),
    st.integers(0, 10**6),
    st.just(UINT128_MAX),
)


@st.composite
def ranges(draw: st.DrawFn) -> tuple[int, int]:
    kind = draw(st.sampled_from(["any", "full", "narrow", "low", "high"]))
    if kind == "full":
        return MIN_TICK, MAX_TICK
    if kind == "narrow":
        lo = draw(st.integers(-200_000, 200_000))
        return lo, lo + draw(st.integers(1, 100))
    if kind == "low":
        lo = draw(st.integers(MIN_TICK, MIN_TICK + 100))
        return lo, lo + draw(st.integers(1, 1000))
    if kind == "high":
        up = draw(st.integers(MAX_TICK - 100, MAX_TICK))
        return up - draw(st.integers(1, 1000)), up
    a = draw(st.integers(MIN_TICK, MAX_TICK - 1))
    b = draw(st.integers(a + 1, MAX_TICK))
    return a, b


# -------------------------------------------------------------- known values (v3 test suites)


def test_encode_price_sqrt_matches_known_constants() -> None:
    assert encode_price_sqrt(1, 1) == Q96
    assert encode_price_sqrt(121, 100) == 87150978765690771352898345369


def test_amount0_delta_v3_core_example() -> None:
    # v3-core SqrtPriceMath.spec: "returns 0.1 amount1 for price of 1 to 1.21"
    a, b = encode_price_sqrt(1, 1), encode_price_sqrt(121, 100)
    up = amount0_delta(a, b, 10**18, True)
    assert up == 90909090909090910
    assert amount0_delta(a, b, 10**18, False) == up - 1
    assert amount1_delta(a, b, 10**18, True) == 100000000000000000
    assert amount1_delta(a, b, 10**18, False) == 99999999999999999


def test_amount0_delta_prices_that_overflow_256_bits() -> None:
    # v3-core: "works for prices that overflow" (L << 96 * (B - A) exceeds 2**256)
    a, b = 2787593149816327892691964784081045188247552, 22300745198530623141535718272648361505980416
    assert a == encode_price_sqrt(2**90, 1) and b == encode_price_sqrt(2**96, 1)
    assert amount0_delta(a, b, 10**18, True) == amount0_delta(a, b, 10**18, False) + 1


@pytest.mark.parametrize(
    ("price", "expected"),
    [((1, 1), 2148), ((99, 100), 1938), ((111, 100), 2097)],
)
def test_liquidity_for_amounts_v3_periphery_examples(price: tuple[int, int], expected: int) -> None:
    # v3-periphery LiquidityAmounts.spec: amounts 100 / 200, range [100/110, 110/100]
    a, b = encode_price_sqrt(100, 110), encode_price_sqrt(110, 100)
    assert liquidity_for_amounts(encode_price_sqrt(*price), a, b, 100, 200) == expected
    assert liquidity_for_amounts(encode_price_sqrt(*price), b, a, 100, 200) == expected


# ------------------------------------------------------------------- exact rational reference


@settings(max_examples=400, deadline=None)
@given(sqrts, sqrts, liquidities)
def test_amount_deltas_equal_exact_rational_rounding(a: int, b: int, liq: int) -> None:
    """floor(floor(x / B) / A) == floor(x / (A B)) (same for ceil): the contract's two-step
    division is the exactly rounded L (B - A) 2**96 / (A B)."""
    lo, hi = min(a, b), max(a, b)
    exact0 = Fraction(liq * (hi - lo) * Q96, lo * hi)
    exact1 = Fraction(liq * (hi - lo), Q96)
    assert amount0_delta(a, b, liq, False) == floor(exact0)
    assert amount0_delta(a, b, liq, True) == ceil(exact0)
    assert amount1_delta(a, b, liq, False) == floor(exact1)
    assert amount1_delta(a, b, liq, True) == ceil(exact1)
    # argument order does not matter (the contracts swap)
    assert amount0_delta(b, a, liq, True) == amount0_delta(a, b, liq, True)
    assert amount1_delta(b, a, liq, False) == amount1_delta(a, b, liq, False)


@settings(max_examples=400, deadline=None)
@given(sqrts, sqrts, liquidities)
def test_round_up_at_most_one_above_round_down(a: int, b: int, liq: int) -> None:
    for fn in (amount0_delta, amount1_delta):
        down, up = fn(a, b, liq, False), fn(a, b, liq, True)
        assert 0 <= up - down <= 1


# -------------------------------------------------------------------- the pool's branching


@st.composite
def positions(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    lo, up = draw(ranges())
    sqrt = draw(
        st.one_of(
            st.integers(MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1),
            st.integers(get_sqrt_ratio_at_tick(lo), get_sqrt_ratio_at_tick(up) - 1),
            st.sampled_from([get_sqrt_ratio_at_tick(lo), get_sqrt_ratio_at_tick(up)]).filter(
                lambda s: s < MAX_SQRT_RATIO
            ),
        )
    )
    return sqrt, get_tick_at_sqrt_ratio(sqrt), lo, up, draw(liquidities)


@settings(max_examples=400, deadline=None)
@given(positions())
def test_amounts_for_liquidity_branches_like_the_pool(p: tuple[int, int, int, int, int]) -> None:
    sqrt, tick, lo, up, liq = p
    sa, sb = get_sqrt_ratio_at_tick(lo), get_sqrt_ratio_at_tick(up)
    for round_up in (False, True):
        got = amounts_for_liquidity(sqrt, tick, lo, up, liq, round_up)
        if tick < lo:
            assert got == (amount0_delta(sa, sb, liq, round_up), 0)
        elif tick < up:
            assert got == (
                amount0_delta(sqrt, sb, liq, round_up),
                amount1_delta(sa, sqrt, liq, round_up),
            )
        else:
            assert got == (0, amount1_delta(sa, sb, liq, round_up))
    down = amounts_for_liquidity(sqrt, tick, lo, up, liq, False)
    upr = amounts_for_liquidity(sqrt, tick, lo, up, liq, True)
    assert all(0 <= u - d <= 1 for d, u in zip(down, upr, strict=True))


@settings(max_examples=300, deadline=None)
@given(ranges(), liquidities)
def test_amounts_continuous_at_range_edges(rng: tuple[int, int], liq: int) -> None:
    """On an edge the pool may report either neighbouring tick (after a swap that ends on
    a tick boundary it sets tick = boundary - 1): both branches give the same amounts."""
    lo, up = rng
    sa, sb = get_sqrt_ratio_at_tick(lo), get_sqrt_ratio_at_tick(up)
    for round_up in (False, True):
        assert amounts_for_liquidity(sa, lo, lo, up, liq, round_up) == amounts_for_liquidity(
            sa, lo - 1, lo, up, liq, round_up
        )
        assert amounts_for_liquidity(sb, up - 1, lo, up, liq, round_up) == amounts_for_liquidity(
            sb, up, lo, up, liq, round_up
        )


@settings(max_examples=300, deadline=None)
@given(ranges(), liquidities, st.data())
def test_x_max_equals_amount0_below_range(
    rng: tuple[int, int], liq: int, data: st.DataObject
) -> None:
    lo, up = rng
    assume(lo > MIN_TICK)
    sqrt = data.draw(st.integers(MIN_SQRT_RATIO, get_sqrt_ratio_at_tick(lo) - 1))
    tick = get_tick_at_sqrt_ratio(sqrt)
    assert tick < lo
    assert amounts_for_liquidity(sqrt, tick, lo, up, liq) == (x_max_raw(liq, lo, up), 0)
    # and it is the most token0 the position can ever hold
    mid = get_sqrt_ratio_at_tick((lo + up) // 2)
    assert amounts_for_liquidity(mid, (lo + up) // 2, lo, up, liq)[0] <= x_max_raw(liq, lo, up)


def test_full_range_max_liquidity_at_price_one() -> None:
    # Full range, uint128 max liquidity, price 1: about L of each token, exactly rounded down.
    a0, a1 = amounts_for_liquidity(Q96, 0, MIN_TICK, MAX_TICK, UINT128_MAX)
    assert a0 == floor(Fraction(UINT128_MAX * (MAX_SQRT_RATIO - Q96), MAX_SQRT_RATIO))
    assert a1 == floor(Fraction(UINT128_MAX * (Q96 - MIN_SQRT_RATIO), Q96))
    assert UINT128_MAX - 2**97 < a0 < UINT128_MAX
    assert UINT128_MAX - 2**97 < a1 < UINT128_MAX


# ------------------------------------------------------------------------ LiquidityAmounts


@settings(max_examples=400, deadline=None)
@given(
    positions(),
    st.integers(0, 2**100),
    st.integers(0, 2**100),
)
def test_liquidity_for_amounts_never_needs_more_than_given(
    p: tuple[int, int, int, int, int], amount0: int, amount1: int
) -> None:
    sqrt, _, lo, up, _ = p
    sa, sb = get_sqrt_ratio_at_tick(lo), get_sqrt_ratio_at_tick(up)
    try:
        liq = liquidity_for_amounts(sqrt, sa, sb, amount0, amount1)
    except ValueError as e:
        assert "overflows uint128" in str(e)
        event("liquidity overflows uint128")
        return
    event("liquidity computed")
    # Mint charges (round up) at the periphery's own price branching (by sqrt price).
    if sqrt <= sa:
        need = (amount0_delta(sa, sb, liq, True), 0)
    elif sqrt < sb:
        need = (amount0_delta(sqrt, sb, liq, True), amount1_delta(sa, sqrt, liq, True))
    else:
        need = (0, amount1_delta(sa, sb, liq, True))
    assert need[0] <= amount0 and need[1] <= amount1


# ------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("lo", "up", "msg"),
    [
        (10, 10, "tick_lower 10 must be < tick_upper 10"),
        (20, 10, "tick_lower 20 must be < tick_upper 10"),
        (MIN_TICK - 1, 0, "tick_lower -887273 below MIN_TICK"),
        (0, MAX_TICK + 1, "tick_upper 887273 above MAX_TICK"),
    ],
)
def test_bad_ranges_refused(lo: int, up: int, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        amounts_for_liquidity(Q96, 0, lo, up, 1)
    with pytest.raises(ValueError, match=msg):
        x_max_raw(1, lo, up)


@pytest.mark.parametrize("liq", [-1, 2**128])
def test_liquidity_outside_uint128_refused(liq: int) -> None:
    with pytest.raises(ValueError, match=r"liquidity .* outside uint128"):
        amounts_for_liquidity(Q96, 0, -10, 10, liq)
    with pytest.raises(ValueError, match=r"liquidity .* outside uint128"):
        amount0_delta(Q96, 2 * Q96, liq, False)
    with pytest.raises(ValueError, match=r"liquidity .* outside uint128"):
        amount1_delta(Q96, 2 * Q96, liq, True)


def test_zero_sqrt_ratio_refused() -> None:
    with pytest.raises(ValueError, match="sqrt ratio must be > 0"):
        amount0_delta(0, Q96, 1, False)


@pytest.mark.parametrize("sqrt", [MIN_SQRT_RATIO - 1, MAX_SQRT_RATIO + 1])
def test_in_range_sqrt_price_out_of_bounds_refused(sqrt: int) -> None:
    with pytest.raises(ValueError, match=r"sqrt_price_x96 .* outside"):
        amounts_for_liquidity(sqrt, 0, -10, 10, 1)


def test_liquidity_for_amounts_refusals() -> None:
    with pytest.raises(ValueError, match="empty range"):
        liquidity_for_amounts(Q96, Q96, Q96, 1, 1)
    with pytest.raises(ValueError, match="overflows uint128"):
        liquidity_for_amounts(Q96, Q96, Q96 + 1, 2**200, 0)
    with pytest.raises(ValueError, match="overflows uint128"):
        liquidity_for_amounts(Q96 + 1, Q96, Q96 + 1, 0, 2**200)
    with pytest.raises(ValueError, match="amounts must be uint256"):
        liquidity_for_amounts(Q96, Q96, 2 * Q96, -1, 0)
    with pytest.raises(ValueError, match=r"sqrt ratios must be in \(0, 2\*\*160\)"):
        liquidity_for_amounts(Q96, 0, 2 * Q96, 1, 1)
