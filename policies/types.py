"""Domain types shared by every layer.

Integers wherever the chain is integer (raw token units, Q64.96 / Q128.128 fixed
point, ticks); floats only for prices, greeks and pricing. Frozen dataclasses so a
decision can never mutate its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

Q96 = 1 << 96
Q128 = 1 << 128
UINT256 = 1 << 256
UINT128_MAX = (1 << 128) - 1
HOUR = 3_600  # seconds
DAY = 86_400


class Level(IntEnum):
    """Regime level of one signal or of an underlying.

    Unknown is not a level: a reading whose inputs are missing or stale carries
    ``level=None`` and every consumer must treat that explicitly.
    """

    CALM = 0
    ELEVATED = 1
    STRESS = 2
    CRISIS = 3


@dataclass(frozen=True, slots=True)
class Token:
    address: str
    symbol: str
    decimals: int


@dataclass(frozen=True, slots=True)
class PoolState:
    """slot0, liquidity and global fee growth of one v3 pool."""

    address: str
    token0: Token
    token1: Token
    fee: int
    tick_spacing: int
    sqrt_price_x96: int
    tick: int
    liquidity: int
    fee_growth_global0_x128: int
    fee_growth_global1_x128: int


@dataclass(frozen=True, slots=True)
class TickFeeGrowth:
    """feeGrowthOutside{0,1}X128 of one initialised tick."""

    fee_growth_outside0_x128: int
    fee_growth_outside1_x128: int


@dataclass(frozen=True, slots=True)
class Position:
    """One NonfungiblePositionManager position with everything needed to value it."""

    token_id: int
    owner: str
    position_manager: str
    pool: PoolState
    tick_lower: int
    tick_upper: int
    liquidity: int
    fee_growth_inside0_last_x128: int
    fee_growth_inside1_last_x128: int
    tokens_owed0: int
    tokens_owed1: int
    lower: TickFeeGrowth
    upper: TickFeeGrowth


@dataclass(frozen=True, slots=True)
class SignalReading:
    """One regime signal: its level (None = unknown) and why."""

    name: str
    level: Level | None
    reason: str
    evidence: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Regime:
    """Aggregate regime of one underlying (e.g. "ETH"), with the signals behind it."""

    underlying: str
    level: Level | None
    reason: str
    signals: tuple[SignalReading, ...] = ()
