"""TickMath: known contract values, an independent Decimal reference, and properties."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import lp_math
from policies.lp_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
)

# Uniswap v3-core test/TickMath.spec.ts and its Jest snapshot
# (test/__snapshots__/TickMath.spec.ts.snap): results of the deployed library.
V3_CORE_SQRT_RATIO_AT_TICK = {
    MIN_TICK: 4295128739,
    MIN_TICK + 1: 4295343490,
    MAX_TICK - 1: 1461373636630004318706518188784493106690254656249,
    MAX_TICK: 1461446703485210103287273052203988822378723970342,
    -50: 79030349367926598376800521322,
    -100: 78833030112140176575862854579,
    -250: 78244023372248365697264290337,
    -500: 77272108795590369356373805297,
    -1000: 75364347830767020784054125655,
    -2500: 69919044979842180277688105136,
    -3000: 68192822843687888778582228483,
    -4000: 64867181785621769311890333195,
    -5000: 61703726247759831737814779831,
    -50000: 6504256538020985011912221507,
    -150000: 43836292794701720435367485,
    -250000: 295440463448801648376846,
    -500000: 1101692437043807371,
    -738203: 7409801140451,
    50: 79426470787362580746886972461,
    100: 79625275426524748796330556128,
    250: 80224679980005306637834519095,
    500: 81233731461783161732293370115,
    1000: 83290069058676223003182343270,
    2500: 89776708723587163891445672585,
    3000: 92049301871182272007977902845,
    4000: 96768528593268422080558758223,
    5000: 101729702841318637793976746270,
    50000: 965075977353221155028623082916,
    150000: 143194173941309278083010301478497,
    250000: 21246587762933397357449903968194344,
    500000: 5697689776495288729098254600827762987878,
    738203: 847134979253254120489401328389043031315994541,
}

V3_CORE_TICK_AT_SQRT_RATIO = {
    4295128739: -887272,
    4295343490: -887271,
    79228162514264337593543: -276325,
    79228162514264337593543950: -138163,
    9903520314283042199192993792: -41591,
    28011385487393069959365969113: -20796,
    56022770974786139918731938227: -6932,
    79228162514264337593543950336: 0,
    112045541949572279837463876454: 6931,
    224091083899144559674927752909: 20795,
    633825300114114700748351602688: 41590,
    79228162514264337593543950336000: 138162,
    79228162514264337593543950336000000: 276324,
    1461373636630004318706518188784493106690254656249: 887271,
    1461446703485210103287273052203988822378723970341: 887271,
}

ticks = st.integers(MIN_TICK, MAX_TICK)
edge_ticks = st.one_of(
    ticks,
    st.integers(MIN_TICK, MIN_TICK + 50),
    st.integers(MAX_TICK - 50, MAX_TICK),
    st.integers(-50, 50),
)
sqrt_ratios = st.one_of(
    st.integers(MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1),
    st.integers(MIN_SQRT_RATIO, 2**64),
    st.integers(2**96 - 2**80, 2**96 + 2**80),
    st.integers(MAX_SQRT_RATIO - 2**100, MAX_SQRT_RATIO - 1),
    st.integers(MIN_SQRT_RATIO, MIN_SQRT_RATIO + 10**6),
)


@pytest.mark.parametrize(("tick", "expected"), sorted(V3_CORE_SQRT_RATIO_AT_TICK.items()))
def test_sqrt_ratio_matches_v3_core_snapshot(tick: int, expected: int) -> None:
    assert get_sqrt_ratio_at_tick(tick) == expected


@pytest.mark.parametrize(("sqrt", "expected"), sorted(V3_CORE_TICK_AT_SQRT_RATIO.items()))
def test_tick_at_sqrt_ratio_matches_v3_core_snapshot(sqrt: int, expected: int) -> None:
    assert get_tick_at_sqrt_ratio(sqrt) == expected


def test_constants() -> None:
    assert get_sqrt_ratio_at_tick(MIN_TICK) == MIN_SQRT_RATIO
    assert get_sqrt_ratio_at_tick(MAX_TICK) == MAX_SQRT_RATIO
    assert get_sqrt_ratio_at_tick(0) == 2**96
    assert get_tick_at_sqrt_ratio(MIN_SQRT_RATIO) == MIN_TICK
    assert get_tick_at_sqrt_ratio(MAX_SQRT_RATIO - 1) == MAX_TICK - 1


def _decimal_sqrt_ratio(tick: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 120
        return Decimal("1.0001").sqrt() ** tick * (Decimal(2) ** 96)


@settings(max_examples=400, deadline=None)
@given(edge_ticks)
def test_sqrt_ratio_against_decimal_reference(tick: int) -> None:
    """Independent reference: 1.0001**(t/2) * 2**96 in 120-digit Decimal.

    The contract works in Q128.128 and rounds up into Q64.96, so for t <= 0 the
    result is within one Q64.96 unit of the exact value. For t > 0 it inverts
    the Q128.128 value r' of -t (type(uint256).max / r'), whose own error of a
    few units becomes a relative error of a few units / r'.
    """
    got = Decimal(get_sqrt_ratio_at_tick(tick))
    exact = _decimal_sqrt_ratio(tick)
    with localcontext() as ctx:
        ctx.prec = 120
        err = abs(got - exact)
        if tick <= 0:
            assert err <= 1
        else:
            mirror = Decimal(2) ** 128 / Decimal("1.0001").sqrt() ** tick  # r' in Q128.128
            assert err <= 1 + exact * 64 / mirror


@settings(max_examples=300, deadline=None)
@given(ticks)
def test_table_matches_bit_by_bit_contract_loop(tick: int) -> None:
    assert get_sqrt_ratio_at_tick(tick) == lp_math._get_sqrt_ratio_at_tick_bitwise(tick)


def test_table_exhaustive_low_bits() -> None:
    # Every entry of the 2**14-entry table, both signs, plus a high bit set.
    for a in range(1 << 14):
        for t in (a, -a, a | 0x54000, -(a | 0x54000)):
            assert get_sqrt_ratio_at_tick(t) == lp_math._get_sqrt_ratio_at_tick_bitwise(t), t


@settings(max_examples=400, deadline=None)
@given(st.integers(MIN_TICK, MAX_TICK - 1))
def test_round_trip_tick(tick: int) -> None:
    assert get_tick_at_sqrt_ratio(get_sqrt_ratio_at_tick(tick)) == tick


@settings(max_examples=400, deadline=None)
@given(sqrt_ratios)
def test_tick_brackets_sqrt_ratio(sqrt: int) -> None:
    t = get_tick_at_sqrt_ratio(sqrt)
    assert MIN_TICK <= t < MAX_TICK
    assert get_sqrt_ratio_at_tick(t) <= sqrt < get_sqrt_ratio_at_tick(t + 1)


@settings(max_examples=300, deadline=None)
@given(edge_ticks, edge_ticks)
def test_sqrt_ratio_strictly_monotonic(a: int, b: int) -> None:
    if a == b:
        return
    lo, hi = min(a, b), max(a, b)
    assert get_sqrt_ratio_at_tick(lo) < get_sqrt_ratio_at_tick(hi)


@settings(max_examples=300, deadline=None)
@given(sqrt_ratios, sqrt_ratios)
def test_tick_at_sqrt_ratio_monotonic(a: int, b: int) -> None:
    lo, hi = min(a, b), max(a, b)
    assert get_tick_at_sqrt_ratio(lo) <= get_tick_at_sqrt_ratio(hi)


def test_adjacent_ticks_near_both_ends() -> None:
    for t in [*range(MIN_TICK, MIN_TICK + 300), *range(MAX_TICK - 300, MAX_TICK)]:
        s = get_sqrt_ratio_at_tick(t)
        s_next = get_sqrt_ratio_at_tick(t + 1)
        assert s < s_next
        assert get_tick_at_sqrt_ratio(s) == t
        assert get_tick_at_sqrt_ratio(s_next - 1) == t


@pytest.mark.parametrize("tick", [MIN_TICK - 1, MAX_TICK + 1, -(2**23), 2**23, 10**9])
def test_tick_out_of_range_refused(tick: int) -> None:
    with pytest.raises(ValueError, match=r"tick .* outside \[-887272, 887272\]"):
        get_sqrt_ratio_at_tick(tick)


@pytest.mark.parametrize(
    "sqrt", [0, 1, MIN_SQRT_RATIO - 1, MAX_SQRT_RATIO, MAX_SQRT_RATIO + 1, 2**200]
)
def test_sqrt_ratio_out_of_range_refused(sqrt: int) -> None:
    with pytest.raises(
        ValueError, match=r"sqrt_price_x96 .* outside \[MIN_SQRT_RATIO, MAX_SQRT_RATIO\)"
    ):
        get_tick_at_sqrt_ratio(sqrt)
