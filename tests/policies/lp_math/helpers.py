"""Builders for lp_math tests."""

from __future__ import annotations

from policies.types import PoolState, Position, TickFeeGrowth, Token

ZERO_FG = TickFeeGrowth(0, 0)


def make_position(
    *,
    sqrt_price_x96: int,
    tick: int,
    tick_lower: int,
    tick_upper: int,
    liquidity: int,
    decimals0: int = 18,
    decimals1: int = 18,
    global0: int = 0,
    global1: int = 0,
    lower: TickFeeGrowth = ZERO_FG,
    upper: TickFeeGrowth = ZERO_FG,
    inside_last0: int = 0,
    inside_last1: int = 0,
    owed0: int = 0,
    owed1: int = 0,
    token_id: int = 1,
) -> Position:
    pool = PoolState(
        address="0x" + "11" * 20,
        token0=Token("0x" + "01" * 20, "T0", decimals0),
        token1=Token("0x" + "02" * 20, "T1", decimals1),
        fee=3000,
        tick_spacing=1,
        sqrt_price_x96=sqrt_price_x96,
        tick=tick,
        liquidity=liquidity,
        fee_growth_global0_x128=global0,
        fee_growth_global1_x128=global1,
    )
    return Position(
        token_id=token_id,
        owner="0x" + "22" * 20,
        position_manager="0x" + "33" * 20,
        pool=pool,
        tick_lower=tick_lower,
        tick_upper=tick_upper,
        liquidity=liquidity,
        fee_growth_inside0_last_x128=inside_last0,
        fee_growth_inside1_last_x128=inside_last1,
        tokens_owed0=owed0,
        tokens_owed1=owed1,
        lower=lower,
        upper=upper,
    )
