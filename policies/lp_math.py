"""Exact Uniswap v3 position math, and float greeks.

Integer functions reproduce the contracts bit for bit (v3-core TickMath,
SqrtPriceMath, FullMath, Tick.getFeeGrowthInside; v3-periphery LiquidityAmounts
and NonfungiblePositionManager.collect), including where the contracts wrap
mod 2**256 or truncate to uint128. Python's integers are unbounded, so FullMath's
512-bit tricks reduce to a plain ``a * b // d``; masking happens only where the
contracts actually wrap or truncate.

Floats appear only in the greeks (raw units: price ``p`` = token1 raw per token0
raw, range prices ``pa < pb``, liquidity ``L``) and in :func:`position_metrics`
(human units, decimals applied).

Pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from policies.types import Position, TickFeeGrowth

__all__ = [
    "MAX_SQRT_RATIO",
    "MAX_TICK",
    "MIN_SQRT_RATIO",
    "MIN_TICK",
    "PositionMetrics",
    "amount0_delta",
    "amount1_delta",
    "amounts_for_liquidity",
    "fee_growth_inside",
    "fees_owed",
    "get_sqrt_ratio_at_tick",
    "get_tick_at_sqrt_ratio",
    "liquidity_for_amounts",
    "lp_delta",
    "lp_gamma",
    "lp_value",
    "position_amounts",
    "position_metrics",
    "price_at_sqrt_ratio",
    "x_max_raw",
]

MIN_TICK = -887272
MAX_TICK = 887272
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342

_Q96 = 1 << 96
_UINT256 = 1 << 256
_MASK256 = _UINT256 - 1
_MASK128 = (1 << 128) - 1
_MAX_UINT128 = _MASK128
_MAX_UINT160 = (1 << 160) - 1

# TickMath constants, as in the contract: 2**128 / sqrt(1.0001)**(2**i) (Q128.128);
# _R0 is bit 0's, _Ci bit i's.
_R0 = 0xFFFCB933BD6FAD37AA2D162D1A594001
_ONE_X128 = 1 << 128
_C1 = 0xFFF97272373D413259A46990580E213A
_C2 = 0xFFF2E50F5F656932EF12357CF3C7FDCC
_C3 = 0xFFE5CACA7E10E4E61C3624EAA0941CD0
_C4 = 0xFFCB9843D60F6159C9DB58835C926644
_C5 = 0xFF973B41FA98C081472E6896DFB254C0
_C6 = 0xFF2EA16466C96A3843EC78B326B52861
_C7 = 0xFE5DEE046A99A2A811C461F1969C3053
_C8 = 0xFCBE86C7900A88AEDCFFC83B479AA3A4
_C9 = 0xF987A7253AC413176F2B074CF7815E54
_C10 = 0xF3392B0822B70005940C7A398E4B70F3
_C11 = 0xE7159475A2C29B7443B29C7FA6E889D9
_C12 = 0xD097F3BDFD2022B8845AD8F792AA5825
_C13 = 0xA9F746462D870FDF8A65DC1F90E061E5
_C14 = 0x70D869A156D2A1B890BB3DF62BAF32F7
_C15 = 0x31BE135F97D08FD981231505542FCFA6
_C16 = 0x9AA508B5B7A84E1C677DE54F3E99BC9
_C17 = 0x5D6AF8DEDB81196699C329225EE604
_C18 = 0x2216E584F5FA1EA926041BEDFE98
_C19 = 0x48A170391F7DC42444E8FA2

_TICK_CONSTS = (
    _C1,
    _C2,
    _C3,
    _C4,
    _C5,
    _C6,
    _C7,
    _C8,
    _C9,
    _C10,
    _C11,
    _C12,
    _C13,
    _C14,
    _C15,
    _C16,
    _C17,
    _C18,
    _C19,
)

_LOG_SQRT10001_MUL = 255738958999603826347141
_TICK_LOW_OFFSET = 3402992956809132418596140100660247210
_TICK_HIGH_OFFSET = 291339464771989622907027621153398088495


# --------------------------------------------------------------------------- TickMath


_LOW_BITS = 14
_LOW_MASK = (1 << _LOW_BITS) - 1


def _build_low_table() -> tuple[int, ...]:
    """Exact intermediate ``ratio`` of getSqrtRatioAtTick after the low 14 bits of |tick|.

    The contract multiplies bit by bit in increasing bit order, truncating after
    each step, so its state after bit k depends only on |tick| & (2**(k+1) - 1).
    Building entry ``x | 2**j`` from entry ``x`` with constant j applies the same
    steps in the same order: the table is the contract's own intermediate values
    (16384 entries, built in a few ms), and the remaining 6 bits run as in the contract.
    """
    consts = (_C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13)
    table = [_ONE_X128, _R0]
    for c in consts:
        table.extend([(r * c) >> 128 for r in table])
    return tuple(table)


_LOW_TABLE = _build_low_table()


def get_sqrt_ratio_at_tick(tick: int) -> int:
    """TickMath.getSqrtRatioAtTick: sqrt(1.0001**tick) as Q64.96, contract rounding."""
    a = -tick if tick < 0 else tick
    if a > MAX_TICK:
        raise ValueError(f"tick {tick} outside [{MIN_TICK}, {MAX_TICK}]")
    r = _LOW_TABLE[a & _LOW_MASK]
    if a & 0x4000:
        r = (r * _C14) >> 128
    if a & 0x8000:
        r = (r * _C15) >> 128
    if a & 0x10000:
        r = (r * _C16) >> 128
    if a & 0x20000:
        r = (r * _C17) >> 128
    if a & 0x40000:
        r = (r * _C18) >> 128
    if a & 0x80000:
        r = (r * _C19) >> 128
    if tick > 0:
        r = _MASK256 // r
    # Q128.128 -> Q64.96, rounding up.
    return (r >> 32) + (1 if r & 0xFFFFFFFF else 0)


def _get_sqrt_ratio_at_tick_bitwise(tick: int) -> int:
    """The contract's bit-by-bit loop without the table (kept as the tests' cross-check)."""
    a = -tick if tick < 0 else tick
    if a > MAX_TICK:
        raise ValueError(f"tick {tick} outside [{MIN_TICK}, {MAX_TICK}]")
    r = _R0 if a & 0x1 else _ONE_X128
    for bit, c in enumerate(_TICK_CONSTS, start=1):
        if a >> bit & 1:
            r = (r * c) >> 128
    if tick > 0:
        r = _MASK256 // r
    return (r >> 32) + (1 if r & 0xFFFFFFFF else 0)


def get_tick_at_sqrt_ratio(sqrt_price_x96: int) -> int:
    """TickMath.getTickAtSqrtRatio: greatest tick with get_sqrt_ratio_at_tick(tick) <= sqrt_price_x96."""
    if not MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO:
        raise ValueError(
            f"sqrt_price_x96 {sqrt_price_x96} outside [MIN_SQRT_RATIO, MAX_SQRT_RATIO) "
            f"= [{MIN_SQRT_RATIO}, {MAX_SQRT_RATIO})"
        )
    ratio = sqrt_price_x96 << 32
    msb = ratio.bit_length() - 1
    r = ratio >> (msb - 127) if msb >= 128 else ratio << (127 - msb)
    log_2 = (msb - 128) << 64
    # 14 iterations of "square and take the top bit", unrolled.
    r = (r * r) >> 127
    if r >> 128:
        log_2 |= 1 << 63
        r >>= 1
    r = (r * r) >> 127
    if r >> 128:
        log_2 |= 1 << 62
        r >>= 1
    r = (r * r) >> 127
    if r >> 128:
        log_2 |= 1 << 61
        r >>= 1
    r = (r * r) >> 127
    if r >> 128:
        log_2 |= 1 << 60
        r >>= 1
    r = (r * r) >> 127
    if r >> 128:
        log_2 |= 1 << 59
        r >>= 1
    r = (r * r) >> 127
    if r >> 128:
        log_2 |= 1 << 58
        r >>= 1
    r = (r * r) >> 127
    if r >> 128:
        log_2 |= 1 << 57
        r >>= 1
    r = (r * r) >> 127
    if r >> 128:
        log_2 |= 1 << 56
        r >>= 1
    r = (r * r) >> 127
    if r >> 128:
        log_2 |= 1 << 55
        r >>= 1
    r = (r * r) >> 127
    if r >> 128:
        log_2 |= 1 << 54
        r >>= 1
    r = (r * r) >> 127
    if r >> 128:
        log_2 |= 1 << 53
        r >>= 1
    r = (r * r) >> 127
    if r >> 128:
        log_2 |= 1 << 52
        r >>= 1
    r = (r * r) >> 127
    if r >> 128:
        log_2 |= 1 << 51
        r >>= 1
    r = (r * r) >> 127
    if r >> 128:
        log_2 |= 1 << 50
    log_sqrt10001 = log_2 * _LOG_SQRT10001_MUL
    tick_low = (log_sqrt10001 - _TICK_LOW_OFFSET) >> 128
    tick_high = (log_sqrt10001 + _TICK_HIGH_OFFSET) >> 128
    if tick_low == tick_high:
        return tick_low
    return tick_high if get_sqrt_ratio_at_tick(tick_high) <= sqrt_price_x96 else tick_low


def price_at_sqrt_ratio(sqrt_price_x96: int) -> float:
    """Raw price (token1 raw per token0 raw) of a Q64.96 sqrt price, as a float."""
    s = sqrt_price_x96 / _Q96
    return s * s


# ---------------------------------------------------------------------- SqrtPriceMath


def amount0_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount0Delta (unsigned): L * (B - A) / (A * B) in token0 raw."""
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    if sqrt_a <= 0:
        raise ValueError(f"sqrt ratio must be > 0, got {sqrt_a}")
    if not 0 <= liquidity <= _MAX_UINT128:
        raise ValueError(f"liquidity {liquidity} outside uint128")
    n = (liquidity << 96) * (sqrt_b - sqrt_a)
    if round_up:
        # divRoundingUp(mulDivRoundingUp(n1, n2, B), A); -(-x // d) is ceil(x / d)
        q = -(-n // sqrt_b)
        return -(-q // sqrt_a)
    return n // sqrt_b // sqrt_a


def amount1_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount1Delta (unsigned): L * (B - A) / 2**96 in token1 raw."""
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    if not 0 <= liquidity <= _MAX_UINT128:
        raise ValueError(f"liquidity {liquidity} outside uint128")
    n = liquidity * (sqrt_b - sqrt_a)
    if round_up:
        return -(-n >> 96)
    return n >> 96


def _check_range(tick_lower: int, tick_upper: int) -> None:
    if tick_lower >= tick_upper:
        raise ValueError(f"tick_lower {tick_lower} must be < tick_upper {tick_upper}")
    if tick_lower < MIN_TICK:
        raise ValueError(f"tick_lower {tick_lower} below MIN_TICK {MIN_TICK}")
    if tick_upper > MAX_TICK:
        raise ValueError(f"tick_upper {tick_upper} above MAX_TICK {MAX_TICK}")


def amounts_for_liquidity(
    sqrt_price_x96: int,
    tick: int,
    tick_lower: int,
    tick_upper: int,
    liquidity: int,
    round_up: bool = False,
) -> tuple[int, int]:
    """Token amounts of ``liquidity`` in [tick_lower, tick_upper), branching like the pool.

    The pool branches on its current ``tick`` (slot0.tick), not on the sqrt price:
    tick < tick_lower -> all token0; tick < tick_upper -> both; else all token1.
    ``round_up=False`` is what burn/decreaseLiquidity pays out; ``True`` is what mint charges.
    """
    _check_range(tick_lower, tick_upper)
    if not 0 <= liquidity <= _MAX_UINT128:
        raise ValueError(f"liquidity {liquidity} outside uint128")
    return _amounts(
        sqrt_price_x96,
        tick,
        tick_lower,
        tick_upper,
        get_sqrt_ratio_at_tick(tick_lower),
        get_sqrt_ratio_at_tick(tick_upper),
        liquidity,
        round_up,
    )


def _amounts(
    sqrt_price_x96: int,
    tick: int,
    tick_lower: int,
    tick_upper: int,
    sa: int,
    sb: int,
    liquidity: int,
    round_up: bool,
) -> tuple[int, int]:
    """amounts_for_liquidity with validated inputs and the edges' sqrt ratios given."""
    if tick < tick_lower:
        n = (liquidity << 96) * (sb - sa)
        if round_up:
            q = -(-n // sb)
            return -(-q // sa), 0
        return n // sb // sa, 0
    if tick < tick_upper:
        if not MIN_SQRT_RATIO <= sqrt_price_x96 <= MAX_SQRT_RATIO:
            raise ValueError(
                f"sqrt_price_x96 {sqrt_price_x96} outside [MIN_SQRT_RATIO, MAX_SQRT_RATIO]"
            )
        # Inside the range the pool keeps sa <= sqrt_price_x96 <= sb; the contracts
        # take |B - A| either way, so we do too.
        d0 = sb - sqrt_price_x96
        if d0 < 0:
            n0 = (liquidity << 96) * -d0
            hi, lo = sqrt_price_x96, sb
        else:
            n0 = (liquidity << 96) * d0
            hi, lo = sb, sqrt_price_x96
        d1 = sqrt_price_x96 - sa
        n1 = liquidity * (-d1 if d1 < 0 else d1)
        if round_up:
            q = -(-n0 // hi)
            return -(-q // lo), -(-n1 >> 96)
        return n0 // hi // lo, n1 >> 96
    n = liquidity * (sb - sa)
    if round_up:
        return 0, -(-n >> 96)
    return 0, n >> 96


def x_max_raw(liquidity: int, tick_lower: int, tick_upper: int) -> int:
    """token0 held (raw) once the price is below the range: L (1/sqrt(pa) - 1/sqrt(pb)), burn rounding."""
    _check_range(tick_lower, tick_upper)
    return amount0_delta(
        get_sqrt_ratio_at_tick(tick_lower), get_sqrt_ratio_at_tick(tick_upper), liquidity, False
    )


# -------------------------------------------------------------------- LiquidityAmounts


def _liquidity_for_amount0(sqrt_a: int, sqrt_b: int, amount0: int) -> int:
    intermediate = sqrt_a * sqrt_b >> 96
    liq = amount0 * intermediate // (sqrt_b - sqrt_a)
    if liq > _MAX_UINT128:
        raise ValueError(f"liquidity for amount0 {amount0} overflows uint128")
    return liq


def _liquidity_for_amount1(sqrt_a: int, sqrt_b: int, amount1: int) -> int:
    liq = (amount1 << 96) // (sqrt_b - sqrt_a)
    if liq > _MAX_UINT128:
        raise ValueError(f"liquidity for amount1 {amount1} overflows uint128")
    return liq


def liquidity_for_amounts(
    sqrt_price_x96: int, sqrt_a: int, sqrt_b: int, amount0: int, amount1: int
) -> int:
    """LiquidityAmounts.getLiquidityForAmounts (v3-periphery): max L mintable from the amounts."""
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    if sqrt_a == sqrt_b:
        raise ValueError(f"empty range: sqrt_a == sqrt_b == {sqrt_a}")
    if sqrt_a <= 0 or sqrt_b > _MAX_UINT160:
        raise ValueError(f"sqrt ratios must be in (0, 2**160): got {sqrt_a}, {sqrt_b}")
    if amount0 < 0 or amount1 < 0 or amount0 > _MASK256 or amount1 > _MASK256:
        raise ValueError(f"amounts must be uint256: got {amount0}, {amount1}")
    if sqrt_price_x96 <= sqrt_a:
        return _liquidity_for_amount0(sqrt_a, sqrt_b, amount0)
    if sqrt_price_x96 < sqrt_b:
        l0 = _liquidity_for_amount0(sqrt_price_x96, sqrt_b, amount0)
        l1 = _liquidity_for_amount1(sqrt_a, sqrt_price_x96, amount1)
        return l0 if l0 < l1 else l1
    return _liquidity_for_amount1(sqrt_a, sqrt_b, amount1)


# -------------------------------------------------------------------------------- fees


def fee_growth_inside(
    tick: int,
    tick_lower: int,
    tick_upper: int,
    global0: int,
    global1: int,
    lower: TickFeeGrowth,
    upper: TickFeeGrowth,
) -> tuple[int, int]:
    """Tick.getFeeGrowthInside: fee growth per unit of liquidity inside the range, mod 2**256.

    below = lower.outside if tick >= tick_lower else global - lower.outside;
    above = upper.outside if tick < tick_upper else global - upper.outside;
    inside = global - below - above. ``tick`` is the pool's slot0.tick.
    """
    if tick >= tick_lower:
        below0 = lower.fee_growth_outside0_x128
        below1 = lower.fee_growth_outside1_x128
    else:
        below0 = global0 - lower.fee_growth_outside0_x128
        below1 = global1 - lower.fee_growth_outside1_x128
    if tick < tick_upper:
        above0 = upper.fee_growth_outside0_x128
        above1 = upper.fee_growth_outside1_x128
    else:
        above0 = global0 - upper.fee_growth_outside0_x128
        above1 = global1 - upper.fee_growth_outside1_x128
    return (global0 - below0 - above0) & _MASK256, (global1 - below1 - above1) & _MASK256


def fees_owed(position: Position) -> tuple[int, int]:
    """What NonfungiblePositionManager.collect(id, recipient, max, max) returns.

    tokensOwed + uint128(mulDiv((inside - insideLast) mod 2**256, liquidity, 2**128)), with
    the uint128 sum wrapping as in the NPM (Solidity 0.7, unchecked). The NPM only
    refreshes fees when the position has liquidity; with L = 0 the product is 0 anyway.
    """
    pool = position.pool
    in0, in1 = fee_growth_inside(
        pool.tick,
        position.tick_lower,
        position.tick_upper,
        pool.fee_growth_global0_x128,
        pool.fee_growth_global1_x128,
        position.lower,
        position.upper,
    )
    liq = position.liquidity
    f0 = ((in0 - position.fee_growth_inside0_last_x128) & _MASK256) * liq >> 128
    f1 = ((in1 - position.fee_growth_inside1_last_x128) & _MASK256) * liq >> 128
    return (
        (position.tokens_owed0 + (f0 & _MASK128)) & _MASK128,
        (position.tokens_owed1 + (f1 & _MASK128)) & _MASK128,
    )


def position_amounts(position: Position) -> tuple[int, int]:
    """Amounts decreaseLiquidity(all) would credit now (burn rounding, pool tick branching)."""
    pool = position.pool
    return amounts_for_liquidity(
        pool.sqrt_price_x96,
        pool.tick,
        position.tick_lower,
        position.tick_upper,
        position.liquidity,
        False,
    )


# ------------------------------------------------------------------------ float greeks


def _check_prices(p: float, pa: float, pb: float) -> None:
    if not (0.0 < pa < pb and p > 0.0):
        raise ValueError(f"need 0 < pa < pb and p > 0, got p={p}, pa={pa}, pb={pb}")


def lp_value(L: float, p: float, pa: float, pb: float) -> float:
    """Value of liquidity L on [pa, pb] at price p, in token1 raw units."""
    _check_prices(p, pa, pb)
    if p <= pa:
        return L * (1.0 / math.sqrt(pa) - 1.0 / math.sqrt(pb)) * p
    if p >= pb:
        return L * (math.sqrt(pb) - math.sqrt(pa))
    return L * (2.0 * math.sqrt(p) - p / math.sqrt(pb) - math.sqrt(pa))


def lp_delta(L: float, p: float, pa: float, pb: float) -> float:
    """d value / d p: token0 held (raw units). Below: x_max; inside: L(1/sqrt p - 1/sqrt pb); above: 0."""
    _check_prices(p, pa, pb)
    if p <= pa:
        return L * (1.0 / math.sqrt(pa) - 1.0 / math.sqrt(pb))
    if p >= pb:
        return 0.0
    return L * (1.0 / math.sqrt(p) - 1.0 / math.sqrt(pb))


def lp_gamma(L: float, p: float, pa: float, pb: float) -> float:
    """d delta / d p (raw units): -L / (2 p**1.5) strictly inside the range, 0 outside."""
    _check_prices(p, pa, pb)
    if p <= pa or p >= pb:
        return 0.0
    return -L / (2.0 * p * math.sqrt(p))


# ----------------------------------------------------------------------------- metrics


@dataclass(frozen=True, slots=True)
class PositionMetrics:
    """One position's exposure. Ints are raw token units; floats are human units
    (prices token1 per token0 with decimals applied, value in token1, delta in token0)."""

    token_id: int
    amount0: int
    amount1: int
    fees0: int
    fees1: int
    in_range: bool
    price: float
    price_lower: float
    price_upper: float
    value: float
    fees_value: float
    delta: float
    gamma: float
    x_max: float
    x_max_raw: int


def position_metrics(position: Position) -> PositionMetrics:
    """Exact amounts and fees plus float value and greeks of one position, in human units.

    ``value`` is the position's amounts only (at the current price, in token1);
    fees owed are valued separately in ``fees_value``.
    """
    pool = position.pool
    lo, up = position.tick_lower, position.tick_upper
    _check_range(lo, up)
    dec0 = pool.token0.decimals
    dec1 = pool.token1.decimals
    sa = get_sqrt_ratio_at_tick(lo)
    sb = get_sqrt_ratio_at_tick(up)
    liquidity = position.liquidity
    if not 0 <= liquidity <= _MAX_UINT128:
        raise ValueError(f"liquidity {liquidity} outside uint128")
    amount0, amount1 = _amounts(pool.sqrt_price_x96, pool.tick, lo, up, sa, sb, liquidity, False)
    fees0, fees1 = fees_owed(position)
    xmax = (liquidity << 96) * (sb - sa) // sb // sa  # amount0_delta(sa, sb, L, round down)

    p_raw = price_at_sqrt_ratio(pool.sqrt_price_x96)
    pa_raw = price_at_sqrt_ratio(sa)
    pb_raw = price_at_sqrt_ratio(sb)
    scale0 = 10.0**dec0
    scale1 = 10.0**dec1
    to_human = 10.0 ** (dec0 - dec1)  # raw price -> human price
    price = p_raw * to_human
    liq = float(liquidity)

    value = amount0 / scale0 * price + amount1 / scale1
    fees_value = fees0 / scale0 * price + fees1 / scale1
    delta = lp_delta(liq, p_raw, pa_raw, pb_raw) / scale0
    # d(delta_raw / 10**dec0) / d(p_raw * 10**(dec0 - dec1)) = gamma_raw * 10**(dec1 - 2 dec0)
    gamma = lp_gamma(liq, p_raw, pa_raw, pb_raw) * 10.0 ** (dec1 - 2 * dec0)
    return PositionMetrics(
        token_id=position.token_id,
        amount0=amount0,
        amount1=amount1,
        fees0=fees0,
        fees1=fees1,
        in_range=lo <= pool.tick < up,
        price=price,
        price_lower=pa_raw * to_human,
        price_upper=pb_raw * to_human,
        value=value,
        fees_value=fees_value,
        delta=delta,
        gamma=gamma,
        x_max=xmax / scale0,
        x_max_raw=xmax,
    )
