"""A position in the operator's units: the pair as traders quote it, price as quote per base,
value in USD, delta in the base token, gamma per 1% move in base units (issue 10).

Orientation (``orient``): the quote is the token traders price in: a stablecoin first, then
ETH, then BTC (policies/vocab.py: STABLECOINS, WRAPPED, QUOTE_RANK); the base is the other.
Ties (two stables, two unknown volatiles) keep the pool's own direction (token1 quotes
token0). Wrapped tokens are named by their asset (WETH -> ETH) in the pair.

Delta in the base token is exact: for a v3 position the derivative of its value (in quote)
with respect to the price (quote per base) is the base amount it holds, in range and out of
it, whichever of token0/token1 the base is (V = x P + y, dV/dP = x; and with the pool's price
inverted, V/P = y + x/P gives the same for token1). So ``delta`` is the base amount held;
above the range of a base-is-token0 position it is 0, below it x_max.

USD: a stable leg values the position at face value (source "<symbol> leg"); otherwise the
caller gives a USD price of the quote with its source's name, or the USD value is unknown
(None), never guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

from policies.lp_math import MAX_TICK, MIN_TICK, PositionMetrics, price_at_sqrt_ratio
from policies.types import Position, Token
from policies.vocab import QUOTE_RANK, STABLECOINS, WRAPPED

Orientation = Literal["base=token0", "base=token1"]


def asset_name(symbol: str) -> str:
    """The asset a token stands for, as traders name it (WETH -> ETH)."""
    return WRAPPED.get(symbol.upper(), symbol)


def is_stable(symbol: str) -> bool:
    return symbol.upper() in STABLECOINS


def _rank(symbol: str) -> int:
    if is_stable(symbol):
        return 10
    return QUOTE_RANK.get(asset_name(symbol).upper(), 0)


def orient(token0: Token, token1: Token) -> Orientation:
    """Which token is the base (priced) one; the other is the quote."""
    return "base=token1" if _rank(token0.symbol) > _rank(token1.symbol) else "base=token0"


@dataclass(frozen=True, slots=True)
class UsdSource:
    """USD per one whole quote token, with where it came from (a feed, another pool)."""

    usd_per_quote: float
    name: str


@dataclass(frozen=True, slots=True)
class OperatorView:
    """One position in operator units; raw integers stay in PositionMetrics."""

    token_id: int
    orientation: Orientation
    base: str  # asset name (ETH)
    quote: str  # asset name (USDC)
    base_token: Token
    quote_token: Token
    base_amount: int  # raw
    quote_amount: int  # raw
    price: float  # quote per base
    price_lower: float
    price_upper: float
    full_range: bool
    in_range: bool
    delta: float  # base units
    gamma_1pct: float  # base units per +1% price move (negative: the LP sells into rises)
    value_quote: float  # amounts at the pool price, in quote units
    fees_quote: float
    value_usd: float | None
    fees_usd: float | None
    usd_source: str | None

    @property
    def pair(self) -> str:
        return f"{self.base}/{self.quote}"


def is_full_range(position: Position) -> bool:
    """Both ticks at the outermost usable ticks of the pool's spacing."""
    s = position.pool.tick_spacing
    return position.tick_lower - s < MIN_TICK and position.tick_upper + s > MAX_TICK


def operator_view(position: Position, metrics: PositionMetrics,
                  usd: UsdSource | None = None) -> OperatorView:
    """``position`` with its ``metrics`` (policies.lp_math.position_metrics) in operator units."""
    pool = position.pool
    t0, t1 = pool.token0, pool.token1
    o = orient(t0, t1)
    base0 = o == "base=token0"
    base_t, quote_t = (t0, t1) if base0 else (t1, t0)
    base_amt, quote_amt = (metrics.amount0, metrics.amount1) if base0 else (metrics.amount1, metrics.amount0)
    fees_base, fees_quote = (metrics.fees0, metrics.fees1) if base0 else (metrics.fees1, metrics.fees0)
    if base0:
        price, lo, hi = metrics.price, metrics.price_lower, metrics.price_upper
    else:
        price = 1 / metrics.price if metrics.price else math.inf
        lo = 1 / metrics.price_upper if metrics.price_upper else math.inf
        hi = 1 / metrics.price_lower if metrics.price_lower else math.inf
    sb, sq = 10 ** base_t.decimals, 10 ** quote_t.decimals
    delta = base_amt / sb
    value_quote = base_amt / sb * price + quote_amt / sq
    fees_value = fees_base / sb * price + fees_quote / sq
    # gamma: d(base held)/dP * 1% of P. In range, base=token0: x = L/sqrt(p) - L/sqrt(pb), so
    # dx/dp * 0.01 p = -0.005 L/sqrt(p); base=token1: y = L sqrt(p) - L sqrt(pa) with P = 1/p,
    # dy/dP * 0.01 P = -0.005 L sqrt(p) (raw units, p token1 per token0). 0 out of range.
    gamma = 0.0
    if metrics.in_range and position.liquidity:
        root = math.sqrt(price_at_sqrt_ratio(pool.sqrt_price_x96))
        raw = position.liquidity / root if base0 else position.liquidity * root
        gamma = -0.005 * raw / sb
    if is_stable(quote_t.symbol):  # orient() makes any stable leg the quote
        value_usd: float | None = value_quote
        fees_usd: float | None = fees_value
        source: str | None = f"{quote_t.symbol} leg at $1"
    elif usd is not None and math.isfinite(usd.usd_per_quote) and usd.usd_per_quote > 0:
        value_usd, fees_usd, source = value_quote * usd.usd_per_quote, fees_value * usd.usd_per_quote, usd.name
    else:
        value_usd = fees_usd = source = None
    return OperatorView(
        token_id=position.token_id, orientation=o, base=asset_name(base_t.symbol),
        quote=asset_name(quote_t.symbol), base_token=base_t, quote_token=quote_t,
        base_amount=base_amt, quote_amount=quote_amt, price=price, price_lower=lo,
        price_upper=hi, full_range=is_full_range(position), in_range=metrics.in_range,
        delta=delta, gamma_1pct=gamma, value_quote=value_quote, fees_quote=fees_value,
        value_usd=value_usd, fees_usd=fees_usd, usd_source=source)


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums per base asset (delta, gamma in base units) and in USD (None if any is unknown)."""

    by_base: tuple[tuple[str, float, float], ...]  # (base, delta, gamma_1pct)
    value_usd: float | None
    fees_usd: float | None
    unknown_usd: int  # positions without a USD value


def totals(views: list[OperatorView]) -> Totals:
    per: dict[str, tuple[float, float]] = {}
    for v in views:
        d, g = per.get(v.base, (0.0, 0.0))
        per[v.base] = (d + v.delta, g + v.gamma_1pct)
    unknown = sum(1 for v in views if v.value_usd is None)
    value = None if unknown else math.fsum(v.value_usd or 0.0 for v in views)
    fees = None if unknown else math.fsum(v.fees_usd or 0.0 for v in views)
    return Totals(tuple((b, d, g) for b, (d, g) in sorted(per.items())), value, fees, unknown)


def fmt_num(x: float | None, digits: int = 6) -> str:
    """The one number format: ``digits`` significant digits, thousands separators, no
    exponent; "unknown" for None, "∞" for infinity."""
    if x is None:
        return "unknown"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    d = Decimal(repr(x))
    q = Decimal(1).scaleb(d.adjusted() - digits + 1)
    r = d.quantize(q, rounding=ROUND_HALF_EVEN) if q < 1 else d.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    text = f"{r:,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def position_json(p: Position, m: PositionMetrics, usd: UsdSource | None = None) -> dict[str, Any]:
    """One position as JSON: `positions --json` and `plan --json` (same function, same numbers)."""
    pool = p.pool
    v = operator_view(p, m, usd)
    return {
        "token_id": p.token_id,
        "owner": p.owner,
        "position_manager": p.position_manager,
        "pool": pool.address,
        "token0": {"address": pool.token0.address, "symbol": pool.token0.symbol, "decimals": pool.token0.decimals},
        "token1": {"address": pool.token1.address, "symbol": pool.token1.symbol, "decimals": pool.token1.decimals},
        "fee": pool.fee,
        "tick": pool.tick,
        "sqrt_price_x96": pool.sqrt_price_x96,
        "tick_lower": p.tick_lower,
        "tick_upper": p.tick_upper,
        "liquidity": p.liquidity,
        "amount0": m.amount0,
        "amount1": m.amount1,
        "fees0": m.fees0,
        "fees1": m.fees1,
        "in_range": m.in_range,
        # operator units: the pair as traders quote it
        "base": v.base,
        "quote": v.quote,
        "orientation": v.orientation,  # which pool token is the base
        "price": v.price,  # quote per base
        "price_lower": v.price_lower,
        "price_upper": v.price_upper,
        "full_range": v.full_range,
        "value_quote": v.value_quote,  # amounts at the pool price, quote units
        "value_usd": v.value_usd,  # null: no USD source for this pair
        "fees_usd": v.fees_usd,
        "usd_source": v.usd_source,
        "delta": v.delta,  # base units (= base amount held)
        "gamma_1pct": v.gamma_1pct,  # base units per +1% price move
        "x_max_raw": m.x_max_raw,  # token0 raw at the lower edge (the policy's sizing input)
    }
