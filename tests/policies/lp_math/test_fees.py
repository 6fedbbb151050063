"""Fee growth inside (mod 2**256) and NonfungiblePositionManager fees owed (uint128)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.lp_math import fee_growth_inside, fees_owed, get_sqrt_ratio_at_tick
from policies.types import TickFeeGrowth

from .helpers import make_position

U256 = 2**256
Q128 = 2**128
UINT128_MAX = Q128 - 1
u256 = st.integers(0, U256 - 1)


def test_fee_growth_inside_by_region_hand_computed() -> None:
    lower, upper = TickFeeGrowth(10, 1000), TickFeeGrowth(20, 2000)
    # inside: below = lower.outside, above = upper.outside
    assert fee_growth_inside(5, 0, 10, 100, 10_000, lower, upper) == (70, 7000)
    # at tick == tick_lower the price counts as inside
    assert fee_growth_inside(0, 0, 10, 100, 10_000, lower, upper) == (70, 7000)
    # below: below = global - lower.outside
    assert fee_growth_inside(-1, 0, 10, 100, 10_000, lower, upper) == (
        (100 - (100 - 10) - 20) % U256,
        (10_000 - (10_000 - 1000) - 2000) % U256,
    )
    # above (tick == tick_upper counts as above): above = global - upper.outside
    assert fee_growth_inside(10, 0, 10, 100, 10_000, lower, upper) == (
        (100 - 10 - (100 - 20)) % U256,
        (10_000 - 1000 - (10_000 - 2000)) % U256,
    )


def test_fee_growth_inside_wraps_mod_2_256() -> None:
    # global has wrapped past 2**256 since the ticks were crossed
    lower, upper = TickFeeGrowth(U256 - 5, U256 - 50), TickFeeGrowth(U256 - 3, U256 - 30)
    inside = fee_growth_inside(1, 0, 10, 7, 70, lower, upper)
    assert inside == ((7 - (U256 - 5) - (U256 - 3)) % U256, (70 - (U256 - 50) - (U256 - 30)) % U256)
    assert inside == (15, 150)
    assert all(0 <= x < U256 for x in inside)


class _Pool:
    """Independent model of the pool's fee bookkeeping for one range [lo, up).

    Ticks are initialised with the contract's convention (outside = global if
    tick_current >= tick else 0), crossing flips outside = global - outside,
    and ``true_inside`` counts, without any modular tricks, the growth that
    accrued while the price was in range.
    """

    def __init__(self, lo: int, up: int, tick: int, g0: int) -> None:
        self.lo, self.up, self.tick = lo, up, tick
        self.glob = g0
        self.out = {t: (g0 if tick >= t else 0) for t in (lo, up)}
        self.true_inside = 0

    def accrue(self, g: int) -> None:
        self.glob = (self.glob + g) % U256
        if self.lo <= self.tick < self.up:
            self.true_inside += g

    def move(self, new_tick: int) -> None:
        for t in (self.lo, self.up):
            if (self.tick >= t) != (new_tick >= t):
                self.out[t] = (self.glob - self.out[t]) % U256
        self.tick = new_tick

    def inside(self) -> int:
        lower = TickFeeGrowth(self.out[self.lo], 0)
        upper = TickFeeGrowth(self.out[self.up], 0)
        return fee_growth_inside(self.tick, self.lo, self.up, self.glob, 0, lower, upper)[0]


@settings(max_examples=300, deadline=None)
@given(
    st.integers(-1000, 1000),
    st.integers(1, 500),
    st.integers(-1500, 1500),
    st.one_of(u256, st.integers(U256 - 2**100, U256 - 1)),
    st.lists(st.tuples(st.integers(0, 2**200), st.integers(-1600, 1600)), min_size=1, max_size=30),
)
def test_fee_growth_inside_tracks_growth_while_in_range(
    lo: int, width: int, start: int, g0: int, steps: list[tuple[int, int]]
) -> None:
    up = lo + width
    pool = _Pool(lo, up, start, g0)
    base = pool.inside()
    for g, new_tick in steps:
        pool.accrue(g)
        pool.move(new_tick)
        # (inside now - inside at start) mod 2**256 == growth accrued while in range
        assert (pool.inside() - base) % U256 == pool.true_inside % U256
        assert 0 <= pool.inside() < U256


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2**128 - 1),
    st.integers(0, 2**120),
    st.one_of(u256, st.integers(U256 - 2**130, U256 - 1)),
    st.integers(0, UINT128_MAX),
)
def test_fees_owed_from_simulated_accrual(liquidity: int, growth: int, g0: int, owed: int) -> None:
    """Fees owed = tokensOwed + floor(growth_inside_since_last * L / 2**128), uint128 wrap."""
    lo, up = -60, 60
    pool = _Pool(lo, up, 0, g0)
    last = pool.inside()
    pool.accrue(growth)
    pool.move(-100)  # price leaves the range: fees stay put
    pool.accrue(growth)
    pos = make_position(
        sqrt_price_x96=get_sqrt_ratio_at_tick(pool.tick),
        tick=pool.tick,
        tick_lower=lo,
        tick_upper=up,
        liquidity=liquidity,
        global0=pool.glob,
        global1=pool.glob,
        lower=TickFeeGrowth(pool.out[lo], pool.out[lo]),
        upper=TickFeeGrowth(pool.out[up], pool.out[up]),
        inside_last0=last,
        inside_last1=last,
        owed0=owed,
        owed1=0,
    )
    earned = growth * liquidity // Q128
    f0, f1 = fees_owed(pos)
    assert f0 == (owed + (earned % Q128)) % Q128
    assert f1 == earned % Q128


def test_fees_owed_inside_last_wrapped() -> None:
    # insideLast just below 2**256, inside wrapped past zero: 3 token units per unit of L
    pos = make_position(
        sqrt_price_x96=get_sqrt_ratio_at_tick(0),
        tick=0,
        tick_lower=-10,
        tick_upper=10,
        liquidity=10,
        global0=2 * Q128,
        global1=0,
        inside_last0=U256 - Q128,
        inside_last1=0,
        owed0=5,
        owed1=7,
    )
    assert fees_owed(pos) == (5 + 30, 7)


def test_fees_owed_truncates_to_uint128_like_the_npm() -> None:
    # mulDiv result 2**129 + 3 does not fit uint128: the NPM keeps the low 128 bits
    pos = make_position(
        sqrt_price_x96=get_sqrt_ratio_at_tick(0),
        tick=0,
        tick_lower=-10,
        tick_upper=10,
        liquidity=4,
        global0=(2**129 + 3) * Q128 // 4 + 1,
        inside_last0=1,
        owed0=0,
    )
    assert fees_owed(pos)[0] == 3
    # tokensOwed + fees wrap in uint128
    pos2 = make_position(
        sqrt_price_x96=get_sqrt_ratio_at_tick(0),
        tick=0,
        tick_lower=-10,
        tick_upper=10,
        liquidity=1,
        global1=5 * Q128,
        owed1=UINT128_MAX,
    )
    assert fees_owed(pos2) == (0, 4)


def test_fees_owed_zero_liquidity_is_tokens_owed() -> None:
    pos = make_position(
        sqrt_price_x96=get_sqrt_ratio_at_tick(0),
        tick=0,
        tick_lower=-10,
        tick_upper=10,
        liquidity=0,
        global0=12345 * Q128,
        global1=999 * Q128,
        owed0=11,
        owed1=22,
    )
    assert fees_owed(pos) == (11, 22)
