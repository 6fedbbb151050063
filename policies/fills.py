"""The one fill model: what an order of N contracts gets from a book, and what it costs.

Pure and exact (Decimal prices and sizes; money in integer cents). The paper venue fills
through it, and the backtester is meant to (issue 12), so a backtest, a dry run and the
budget all count the same premium and fees.

- ``walk(book, side, qty, limit)``: a buy takes the asks from the best (lowest) up, a sell
  the bids from the best (highest) down, level by level, never beyond a limit price, until
  ``qty`` is filled or the depth runs out (a partial fill: ``remaining`` > 0). Average
  price, slippage against the top of the book (always >= 0: what walking the book cost per
  contract), the levels taken.
- Fees per venue (``OPTION_FEES``, ``PERP_FEES``), each schedule with its source; a venue
  without a documented schedule is refused (``UnknownFeeSchedule``), never charged zero.
  Options (Deribit): per contract ``min(0.03% x underlying price, 12.5% x option price)``,
  charged per level at that level's price. Perps: notional x the maker or taker rate.
- Money: what we pay (premium of a buy, every fee) rounds up to the cent, what we receive
  (proceeds of a sell, settlement payoffs) rounds down, so a budget never under-counts.
- Expiry settlement (Deribit, cash-settled European options): intrinsic value at the
  settlement price minus the delivery fee ``min(0.015% x settlement price, 12.5% x the
  option's value)`` per contract (zero for an option that expires worthless).

Sizes are in contracts of one unit of underlying (Deribit ETH/BTC options, linear perps);
prices in USD per unit. Deribit quotes options in the coin: the caller converts (premium
in coin x index price) before building the book.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Final, Literal, TypeVar

from policies.errors import InvalidInput
from policies.orders import Side
from policies.vocab import OptionKindName

__all__ = [
    "OPTION_FEES",
    "PERP_FEES",
    "Book",
    "BookError",
    "FillResult",
    "Level",
    "LevelFill",
    "Liquidity",
    "OptionFeeSchedule",
    "PerpFeeSchedule",
    "Settlement",
    "Side",
    "UnknownFeeSchedule",
    "cents_paid",
    "cents_received",
    "option_fee_cents",
    "perp_fee_cents",
    "settle_option",
    "walk",
]

Liquidity = Literal["maker", "taker"]
ZERO: Final = Decimal(0)
_T = TypeVar("_T")


class BookError(InvalidInput):
    """A book or an order that cannot be walked (unsorted levels, empty sizes, qty <= 0)."""


class UnknownFeeSchedule(InvalidInput):
    """No documented fee schedule for this venue and product: never assumed to be free."""


@dataclass(frozen=True, slots=True)
class Level:
    price: Decimal  # USD per unit of underlying, >= 0
    size: Decimal  # contracts, > 0


@dataclass(frozen=True, slots=True)
class Book:
    """Bids best (highest) first, asks best (lowest) first; checked on construction."""

    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()

    def __post_init__(self) -> None:
        for name, levels, better in (("bids", self.bids, 1), ("asks", self.asks, -1)):
            for i, lv in enumerate(levels):
                if not lv.price.is_finite() or lv.price < 0:
                    raise BookError(f"book {name}[{i}]: price must be >= 0, got {lv.price}")
                if not lv.size.is_finite() or lv.size <= 0:
                    raise BookError(f"book {name}[{i}]: size must be > 0, got {lv.size}")
                if i and (lv.price - levels[i - 1].price) * better >= 0:
                    raise BookError(f"book {name}: level {i} ({lv.price}) is not worse than "
                                    f"level {i - 1} ({levels[i - 1].price})")
        if self.bids and self.asks and self.bids[0].price >= self.asks[0].price:
            raise BookError(f"book crossed: best bid {self.bids[0].price} >= best ask "
                            f"{self.asks[0].price}")

    def side_for(self, side: Side) -> tuple[Level, ...]:
        """The levels an order of ``side`` takes from."""
        return self.asks if side == "buy" else self.bids


@dataclass(frozen=True, slots=True)
class LevelFill:
    price: Decimal
    qty: Decimal


@dataclass(frozen=True, slots=True)
class FillResult:
    side: Side
    requested: Decimal
    levels: tuple[LevelFill, ...]  # what was taken, best level first
    best: Decimal | None  # top of the book on the order's side (None: empty side)

    @property
    def filled(self) -> Decimal:
        return sum((lf.qty for lf in self.levels), ZERO)

    @property
    def remaining(self) -> Decimal:
        return self.requested - self.filled

    @property
    def complete(self) -> bool:
        return self.remaining == 0

    @property
    def notional(self) -> Decimal:
        """Sum of qty x price over the levels taken, exact (USD)."""
        return sum((lf.qty * lf.price for lf in self.levels), ZERO)

    @property
    def avg_price(self) -> Decimal | None:
        return self.notional / self.filled if self.levels else None

    @property
    def worst(self) -> Decimal | None:
        return self.levels[-1].price if self.levels else None

    @property
    def slippage(self) -> Decimal:
        """Per contract, against the top of the book: avg - best for a buy, best - avg for a
        sell (>= 0). Zero when nothing filled."""
        avg = self.avg_price
        if avg is None or self.best is None:
            return ZERO
        return avg - self.best if self.side == "buy" else self.best - avg


def walk(book: Book, side: Side, qty: Decimal, limit: Decimal | None = None) -> FillResult:
    """Take ``qty`` contracts from ``book`` for a ``side`` order, level by level, never at
    a price worse than ``limit`` (a buy pays at most, a sell receives at least ``limit``)."""
    if side not in ("buy", "sell"):
        raise BookError(f"side must be buy or sell, got {side!r}")
    if not qty.is_finite() or qty <= 0:
        raise BookError(f"qty must be > 0, got {qty}")
    if limit is not None and (not limit.is_finite() or limit < 0):
        raise BookError(f"limit must be >= 0, got {limit}")
    levels = book.side_for(side)
    taken: list[LevelFill] = []
    left = qty
    for lv in levels:
        if left == 0:
            break
        if limit is not None and (lv.price > limit if side == "buy" else lv.price < limit):
            break
        q = min(left, lv.size)
        taken.append(LevelFill(lv.price, q))
        left -= q
    return FillResult(side, qty, tuple(taken), levels[0].price if levels else None)


# --------------------------------------------------------------------------------- money


def cents_paid(usd: Decimal) -> int:
    """What we pay, in cents, rounded up."""
    return int((usd * 100).to_integral_value(rounding=ROUND_CEILING))


def cents_received(usd: Decimal) -> int:
    """What we receive, in cents, rounded down."""
    return int((usd * 100).to_integral_value(rounding=ROUND_FLOOR))


# ---------------------------------------------------------------------------------- fees


@dataclass(frozen=True, slots=True)
class OptionFeeSchedule:
    """Per contract: min(of_underlying x underlying price, cap_of_price x option price) on a
    trade; min(delivery_of_underlying x settlement price, delivery_cap_of_value x value) at
    expiry."""

    of_underlying: Decimal
    cap_of_price: Decimal
    delivery_of_underlying: Decimal
    delivery_cap_of_value: Decimal
    source: str


@dataclass(frozen=True, slots=True)
class PerpFeeSchedule:
    """Fraction of the notional, base (lowest-volume) tier."""

    maker: Decimal
    taker: Decimal
    source: str


# Each schedule is the venue's base tier as its fee page states it (checked 2026-12-03).
# Check the venue's page before relying on a number (REFERENCE.md); tiers, discounts and
# rebates are not modelled: the base tier is the most a new account pays.
OPTION_FEES: Final[Mapping[str, OptionFeeSchedule]] = {
    "deribit": OptionFeeSchedule(
        Decimal("0.0003"), Decimal("0.125"), Decimal("0.00015"), Decimal("0.125"),
        "deribit.com/kb/fees: options 0.03% of the underlying per contract (maker and "
        "taker), capped at 12.5% of the option price; delivery 0.015%, capped at 12.5% of "
        "the option value"),
}
PERP_FEES: Final[Mapping[str, PerpFeeSchedule]] = {
    "binanceusdm": PerpFeeSchedule(
        Decimal("0.0002"), Decimal("0.0005"),
        "binance.com/en/fee/futureFee USD-M regular user: maker 0.0200%, taker 0.0500% "
        "(ccxt binanceusdm fees.linear.trading agrees)"),
    "bybit": PerpFeeSchedule(
        Decimal("0.0002"), Decimal("0.00055"),
        "bybit.com/en/help-center fee rates, non-VIP derivatives: maker 0.0200%, taker "
        "0.0550%"),
    "okx": PerpFeeSchedule(
        Decimal("0.0002"), Decimal("0.0005"),
        "okx.com/fees regular user swaps: maker 0.020%, taker 0.050% (ccxt okx fees.swap "
        "agrees)"),
    "hyperliquid": PerpFeeSchedule(
        Decimal("0.00015"), Decimal("0.00045"),
        "hyperliquid.gitbook.io trading/fees, tier 0 perps: taker 0.045%, maker 0.015% "
        "(ccxt hyperliquid fees.swap agrees)"),
    "deribit": PerpFeeSchedule(
        Decimal("0"), Decimal("0.0005"),
        "deribit.com/kb/fees perpetuals: maker 0.00%, taker 0.05%"),
}


def _schedule(table: Mapping[str, _T], venue: str, what: str) -> _T:
    found = table.get(venue)
    if found is None:
        raise UnknownFeeSchedule(f"no documented {what} fee schedule for venue {venue!r} "
                                 f"(known: {', '.join(sorted(table))})")
    return found


def option_fee_cents(venue: str, fill: FillResult, underlying_price: Decimal) -> int:
    """The venue's fee on an option fill, in cents rounded up: per level, qty x
    min(of_underlying x underlying price, cap_of_price x the level's price)."""
    s = _schedule(OPTION_FEES, venue, "option")
    if not underlying_price.is_finite() or underlying_price <= 0:
        raise BookError(f"underlying price must be > 0, got {underlying_price}")
    usd = sum((lf.qty * min(s.of_underlying * underlying_price, s.cap_of_price * lf.price)
               for lf in fill.levels), ZERO)
    return cents_paid(usd)


def perp_fee_cents(venue: str, fill: FillResult, liquidity: Liquidity = "taker") -> int:
    """The venue's fee on a perp fill, in cents rounded up: notional x the rate."""
    s = _schedule(PERP_FEES, venue, "perp")
    rate = s.taker if liquidity == "taker" else s.maker
    return cents_paid(fill.notional * rate)


@dataclass(frozen=True, slots=True)
class Settlement:
    gross_cents: int  # intrinsic value x qty, rounded down
    fee_cents: int  # delivery fee, rounded up
    net_cents: int  # gross - fee; the fee is capped at 12.5% of the value, so net >= 0
    # except by rounding in dust (a cent below zero when the value itself is a cent)


def settle_option(kind: OptionKindName, strike: Decimal, settlement_price: Decimal,
                  qty: Decimal, venue: str = "deribit") -> Settlement:
    """A long option's cash settlement at expiry, net of the venue's delivery fee."""
    s = _schedule(OPTION_FEES, venue, "option delivery")
    for name, v in (("strike", strike), ("settlement_price", settlement_price)):
        if not v.is_finite() or v <= 0:
            raise BookError(f"{name} must be > 0, got {v}")
    if not qty.is_finite() or qty < 0:
        raise BookError(f"qty must be >= 0, got {qty}")
    if kind not in ("put", "call"):
        raise BookError(f"kind must be put or call, got {kind!r}")
    value = max(ZERO, strike - settlement_price if kind == "put" else settlement_price - strike)
    fee = min(s.delivery_of_underlying * settlement_price, s.delivery_cap_of_value * value)
    gross = cents_received(value * qty)
    fee_c = cents_paid(fee * qty)
    return Settlement(gross, fee_c, gross - fee_c)
