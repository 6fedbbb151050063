"""The ``Venue`` protocol: what the act step and reconciliation need from any venue.

The paper venue, the ccxt venues (Deribit, Derive, Hyperliquid, Binance USD-M, Bybit, OKX)
and the on-chain venue all present this one shape, so the daemon never branches on "is
this a dry run". Everything a venue answers is parsed into the typed, frozen reports below
(pure parsing); sizes and prices are exact ``Decimal``, money integer cents, times the
venue's own milliseconds.

Orders are addressed by OUR client id (policies/orders.py): ``place`` is idempotent on it
where the venue allows (the paper venue always), ``order_status`` answers "what became of
the order with this client id?" (None: the venue has no such order), which is how an
UNKNOWN order is resolved; never by resubmitting. ``order_status`` and ``cancel`` also take
the symbol, which Binance and Bybit require to find an order by client id (the store
always has it).

Venue failures are ``VenueUnavailable`` (Transient: the outcome of a call is not known,
e.g. a timeout: the caller marks the order UNKNOWN) or ``VenueRefused`` (Refused: the
venue answered no to a request that is not an order, e.g. cancel of an order it does not
have). An order the venue refuses is not an exception: ``place`` returns a report with
status ``rejected`` and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

from policies.errors import ErrorFamily, Refused, Transient
from policies.fills import Book, Liquidity
from policies.orders import Fill, OrderState, Side, VenueReport
from policies.vocab import OptionKindName

__all__ = [
    "BookQuote",
    "FeeInfo",
    "FillReport",
    "InstrumentInfo",
    "OrderReport",
    "OrderRequest",
    "PositionReport",
    "ProductKind",
    "TimeInForce",
    "Venue",
    "VenueError",
    "VenueRefused",
    "VenueUnavailable",
]

ProductKind = Literal["option", "perp"]
TimeInForce = Literal["gtc", "ioc"]


class VenueError(ErrorFamily):
    """A venue call that did not do what was asked (catch the family, act on the member)."""


class VenueUnavailable(VenueError, Transient):
    """The venue did not answer (timeout, disconnect, 5xx, 429): the outcome is unknown."""


class VenueRefused(VenueError, Refused):
    """The venue answered no to a request (cancel of an order it does not have, ...)."""


@dataclass(frozen=True, slots=True)
class InstrumentInfo:
    symbol: str  # the venue's name, e.g. "ETH-26DEC26-2600-P", "ETH-PERP"
    kind: ProductKind
    underlying: str  # "ETH"
    size_step: Decimal  # smallest order increment, contracts
    tick_size: Decimal  # price increment
    option_kind: OptionKindName | None = None
    strike: Decimal | None = None
    expiry_ms: int | None = None


@dataclass(frozen=True, slots=True)
class BookQuote:
    """The book of one instrument with depth; ``underlying_price`` None when unknown."""

    symbol: str
    book: Book
    underlying_price: Decimal | None
    as_of_ms: int


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_id: str  # ours (policies.orders.client_order_id); the venue's field holds it
    symbol: str
    side: Side
    qty: Decimal
    limit_price: Decimal | None = None  # None: market
    time_in_force: TimeInForce = "ioc"
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class OrderReport:
    """What the venue says about one order."""

    client_id: str
    venue_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    status: OrderState  # accepted | partially_filled | filled | cancelled | rejected | expired
    filled: Decimal
    avg_price: Decimal | None
    fee_cents: int  # fees charged on its fills so far
    ts_ms: int
    reason: str = ""

    def to_event(self) -> VenueReport:
        """As the state machine's venue report."""
        return VenueReport(self.status.value, self.filled, self.avg_price, self.venue_order_id,
                           self.reason)


@dataclass(frozen=True, slots=True)
class FillReport:
    fill_id: str  # the venue's trade id
    client_id: str
    venue_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee_cents: int
    liquidity: Liquidity
    ts_ms: int

    def to_event(self) -> Fill:
        return Fill(self.fill_id, self.qty, self.price)


@dataclass(frozen=True, slots=True)
class PositionReport:
    symbol: str
    size: Decimal  # signed contracts, negative = short
    avg_price: Decimal | None


@dataclass(frozen=True, slots=True)
class FeeInfo:
    """Which documented schedule (policies/fills.py) a venue's fills are charged by."""

    venue: str  # key into policies.fills.OPTION_FEES / PERP_FEES
    liquidity: Liquidity  # what our orders pay (market-taking IOC orders: taker)


@runtime_checkable
class Venue(Protocol):
    """One venue, addressed by our client ids."""

    name: str

    async def instruments(self) -> tuple[InstrumentInfo, ...]: ...

    async def quote(self, symbol: str, depth: int = 10) -> BookQuote: ...

    async def place(self, request: OrderRequest) -> OrderReport: ...

    async def cancel(self, client_id: str, symbol: str) -> OrderReport: ...

    async def order_status(self, client_id: str, symbol: str) -> OrderReport | None: ...

    async def open_orders(self) -> tuple[OrderReport, ...]: ...

    async def positions(self) -> tuple[PositionReport, ...]: ...

    async def fills(self, client_id: str | None = None) -> tuple[FillReport, ...]: ...

    def fees(self, kind: ProductKind) -> FeeInfo: ...
