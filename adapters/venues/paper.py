"""The paper venue: orders fill against a book it is given, through policies/fills.py.

The book comes from outside (``set_book``): a live venue's book in a dry run, a replayed
one in a test or backtest, a fixed one. Nothing is sent anywhere. The fill model and the
fee schedules are the pure ones in policies/fills.py, the same the backtester is to use.

Behaviour that the act step relies on, as a real venue's:

- Idempotent on our client id: placing an id it already has returns that order's report,
  never a second order (the executor may not know whether a first send landed).
- Market-taking: an order walks the book from the best level up to its limit. ``ioc``
  cancels what the book could not fill (a partial fill, status cancelled with ``filled``
  > 0); ``gtc`` rests, and the remainder fills when a later ``set_book`` brings depth
  within its limit (partial fills over time).
- Depth taken stays taken until the next ``set_book`` (a book does not refill the instant
  it is hit), so two orders against one fixed book do not both get its top level.
- Each level taken is one fill with its own fee, rounded up to the cent per fill as venues
  charge per trade. An option order needs the underlying price for its fee; without it
  the order is rejected (unknown stays unknown: never charged zero), and a resting option
  order waits for a book that comes with one.
- An order the venue cannot take (unknown instrument, no book, a size off the step, a
  client id the strictest venue would refuse) is rejected with the reason, not raised.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal

from adapters.venues.base import (
    BookQuote,
    FeeInfo,
    FillReport,
    InstrumentInfo,
    OrderReport,
    OrderRequest,
    PositionReport,
    ProductKind,
    VenueRefused,
)
from policies.fills import (
    Book,
    FillResult,
    Level,
    Liquidity,
    option_fee_cents,
    perp_fee_cents,
    walk,
)
from policies.orders import VENUE_ID_RULES, OrderState
from policies.vocab import PAPER

__all__ = ["PaperVenue"]

S = OrderState
_OPEN = (S.ACCEPTED, S.PARTIALLY_FILLED)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class _Market:
    info: InstrumentInfo
    book: Book | None = None
    underlying_price: Decimal | None = None
    as_of_ms: int = 0


@dataclass
class _PaperOrder:
    request: OrderRequest
    venue_order_id: str
    ts_ms: int
    status: OrderState = S.ACCEPTED
    fills: list[FillReport] = field(default_factory=list)
    reason: str = ""

    @property
    def filled(self) -> Decimal:
        return sum((f.qty for f in self.fills), Decimal(0))

    def report(self) -> OrderReport:
        filled = self.filled
        avg = (sum((f.qty * f.price for f in self.fills), Decimal(0)) / filled) if filled else None
        r = self.request
        return OrderReport(r.client_id, self.venue_order_id, r.symbol, r.side, r.qty, self.status,
                           filled, avg, sum(f.fee_cents for f in self.fills), self.ts_ms,
                           self.reason)


def _taken(levels: tuple[Level, ...], fill: FillResult) -> tuple[Level, ...]:
    """``levels`` after ``fill`` took from them (best first)."""
    left = list(levels)
    for lf in fill.levels:
        lv = left[0]
        assert lv.price == lf.price
        rest = lv.size - lf.qty
        left = ([Level(lv.price, rest)] if rest > 0 else []) + left[1:]
    return tuple(left)


class PaperVenue:
    """A ``Venue`` that fills against books it is given (see the module doc)."""

    def __init__(self, instruments: Mapping[str, InstrumentInfo] | None = None, *,
                 name: str = PAPER,
                 fee_venues: Mapping[ProductKind, str] | None = None,
                 liquidity: Liquidity = "taker",
                 clock_ms: Callable[[], int] = _wall_ms) -> None:
        self.name = name
        self._fee_venues: dict[ProductKind, str] = dict(
            fee_venues or {"option": "deribit", "perp": "hyperliquid"})
        self._liquidity: Liquidity = liquidity
        self._clock_ms = clock_ms
        self._markets: dict[str, _Market] = {}
        self._orders: dict[str, _PaperOrder] = {}  # by our client id, insertion order
        self._seq = 0
        self._id_rule = re.compile(VENUE_ID_RULES[PAPER].pattern)
        for info in (instruments or {}).values():
            self.list_instrument(info)

    # -------------------------------------------------------------------- book feed

    def list_instrument(self, info: InstrumentInfo) -> None:
        self._markets.setdefault(info.symbol, _Market(info))

    def set_book(self, symbol: str, book: Book, underlying_price: Decimal | None,
                 as_of_ms: int | None = None) -> tuple[FillReport, ...]:
        """A new book for ``symbol`` (replacing the last); resting orders fill against it.
        Returns the fills this produced."""
        m = self._markets.get(symbol)
        if m is None:
            raise VenueRefused(f"{self.name}: instrument {symbol} is not listed")
        m.book, m.underlying_price = book, underlying_price
        m.as_of_ms = self._clock_ms() if as_of_ms is None else as_of_ms
        new: list[FillReport] = []
        if m.info.kind == "option" and underlying_price is None:
            return ()  # resting option orders wait: their fee needs the underlying price
        for o in self._orders.values():
            if o.request.symbol == symbol and o.status in _OPEN:
                new.extend(self._match(o, m))
        return tuple(new)

    # ------------------------------------------------------------------------ Venue

    async def instruments(self) -> tuple[InstrumentInfo, ...]:
        return tuple(m.info for m in self._markets.values())

    async def quote(self, symbol: str, depth: int = 10) -> BookQuote:
        m = self._markets.get(symbol)
        if m is None or m.book is None:
            raise VenueRefused(f"{self.name}: no book for {symbol}")
        b = Book(m.book.bids[:depth], m.book.asks[:depth])
        return BookQuote(symbol, b, m.underlying_price, m.as_of_ms)

    async def place(self, request: OrderRequest) -> OrderReport:
        existing = self._orders.get(request.client_id)
        if existing is not None:  # idempotent on our client id: never a second order
            return existing.report()
        self._seq += 1
        o = _PaperOrder(request, f"paper-{self._seq}", self._clock_ms())
        self._orders[request.client_id] = o
        reason = self._refusal(request)
        if reason:
            o.status, o.reason = S.REJECTED, reason
            return o.report()
        self._match(o, self._markets[request.symbol])
        if o.status in _OPEN and request.time_in_force == "ioc":
            o.status = S.CANCELLED  # what the book could not fill now
            o.reason = "ioc remainder cancelled" if o.fills else "no liquidity within the limit"
        return o.report()

    async def cancel(self, client_id: str, symbol: str) -> OrderReport:
        o = self._orders.get(client_id)
        if o is None or o.request.symbol != symbol:
            raise VenueRefused(f"{self.name}: no order with client id {client_id}")
        if o.status not in _OPEN:
            raise VenueRefused(f"{self.name}: order {client_id} is {o.status.value}, not open")
        o.status = S.CANCELLED
        return o.report()

    async def order_status(self, client_id: str, symbol: str) -> OrderReport | None:
        o = self._orders.get(client_id)
        return o.report() if o is not None and o.request.symbol == symbol else None

    async def open_orders(self) -> tuple[OrderReport, ...]:
        return tuple(o.report() for o in self._orders.values() if o.status in _OPEN)

    async def positions(self) -> tuple[PositionReport, ...]:
        net: dict[str, Decimal] = {}
        for f in self._all_fills():
            net[f.symbol] = net.get(f.symbol, Decimal(0)) + (f.qty if f.side == "buy" else -f.qty)
        out = []
        for symbol, size in net.items():
            if size == 0:
                continue
            side = "buy" if size > 0 else "sell"
            same = [f for f in self._all_fills() if f.symbol == symbol and f.side == side]
            qty = sum((f.qty for f in same), Decimal(0))
            out.append(PositionReport(symbol, size,
                                      sum((f.qty * f.price for f in same), Decimal(0)) / qty))
        return tuple(out)

    async def fills(self, client_id: str | None = None) -> tuple[FillReport, ...]:
        return tuple(f for f in self._all_fills() if client_id in (None, f.client_id))

    def fees(self, kind: ProductKind) -> FeeInfo:
        return FeeInfo(self._fee_venues[kind], self._liquidity)

    # --------------------------------------------------------------------- internals

    def order_count(self) -> int:
        """Orders this venue holds (what a duplicate would show up in)."""
        return len(self._orders)

    def _all_fills(self) -> list[FillReport]:
        return [f for o in self._orders.values() for f in o.fills]

    def _refusal(self, r: OrderRequest) -> str:
        if not self._id_rule.fullmatch(r.client_id):
            return f"client id {r.client_id!r} is not accepted ({VENUE_ID_RULES[PAPER].pattern})"
        m = self._markets.get(r.symbol)
        if m is None:
            return f"instrument {r.symbol} is not listed"
        if m.book is None:
            return f"no book for {r.symbol}"
        if not r.qty.is_finite() or r.qty <= 0 or r.qty % m.info.size_step != 0:
            return f"size {r.qty} is not a positive multiple of {m.info.size_step}"
        if r.limit_price is not None and (not r.limit_price.is_finite() or r.limit_price < 0):
            return f"limit price {r.limit_price} is not >= 0"
        if m.info.kind == "option" and m.underlying_price is None:
            return f"underlying price of {r.symbol} unknown: the option fee cannot be charged"
        return ""

    def _match(self, o: _PaperOrder, m: _Market) -> list[FillReport]:
        assert m.book is not None
        r = o.request
        remaining = r.qty - o.filled
        if remaining <= 0:
            return []
        result = walk(m.book, r.side, remaining, r.limit_price)
        if not result.levels:
            return []
        levels = _taken(m.book.side_for(r.side), result)
        m.book = (replace(m.book, asks=levels) if r.side == "buy"
                  else replace(m.book, bids=levels))
        new = []
        for lf in result.levels:
            one = FillResult(r.side, lf.qty, (lf,), result.best)
            fee = self._fee(m, one)
            new.append(FillReport(f"{o.venue_order_id}-{len(o.fills) + 1}", r.client_id,
                                  o.venue_order_id, r.symbol, r.side, lf.qty, lf.price, fee,
                                  self._liquidity, self._clock_ms()))
            o.fills.append(new[-1])
        o.status = S.FILLED if o.filled == r.qty else S.PARTIALLY_FILLED
        return new

    def _fee(self, m: _Market, fill: FillResult) -> int:
        venue = self._fee_venues[m.info.kind]
        if m.info.kind == "option":
            assert m.underlying_price is not None  # checked before the order was taken
            return option_fee_cents(venue, fill, m.underlying_price)
        return perp_fee_cents(venue, fill, self._liquidity)
