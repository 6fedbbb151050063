"""Reconciliation of the order store and the hedge book against what a venue says.

``diff`` is pure (no I/O): given the store's orders, the positions the book expects and
the venue's open orders, fills and positions, it lists every difference. ``reconcile``
fetches the venue's side and calls it. Nothing is adopted or changed here: an orphan order
(ours by its client id, unknown to the store) is flagged for resolution, a venue position
the book does not know is reported and never silently adopted into the budget. The caller
writes and alerts every difference and takes no new risk until a reconciliation came back
clean (fail closed); a venue that cannot be asked raises (Transient) and is not clean.

(The diff is pure and could live in policies/; it sits here while bot/act owns the act
step's modules.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from adapters.venues.base import FillReport, OrderReport, PositionReport, Venue
from policies.hedge import HedgeBook
from policies.orders import CLIENT_ID_PREFIX, Order, OrderState, from_venue_id

__all__ = ["Difference", "DifferenceKind", "ReconReport", "diff", "expected_positions",
           "reconcile"]

S = OrderState
DifferenceKind = Literal[
    "orphan_order",  # open at the venue with one of our client ids, not in the store
    "foreign_order",  # open at the venue, not ours (someone else on the account)
    "missing_order",  # the store has it open at the venue, the venue does not list it
    "missing_fill",  # a venue fill of one of our orders that the store has not applied
    "orphan_fill",  # a venue fill with one of our client ids that the store does not know
    "unknown_position",  # a venue position the book does not expect
    "position_mismatch",  # both have it, sizes differ (includes a book position gone)
]
_OPEN = frozenset({S.ACCEPTED, S.PARTIALLY_FILLED})


@dataclass(frozen=True, slots=True)
class Difference:
    kind: DifferenceKind
    venue: str
    symbol: str
    client_id: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class ReconReport:
    venue: str
    differences: tuple[Difference, ...]

    @property
    def clean(self) -> bool:
        return not self.differences


def _ours(venue: str, client_id: str) -> str | None:
    if client_id.startswith(CLIENT_ID_PREFIX) or venue == "hyperliquid":
        return from_venue_id(venue, client_id)
    return None


def diff(venue: str, store: Sequence[Order], expected: Mapping[str, Decimal],
         open_orders: Iterable[OrderReport], fills: Iterable[FillReport],
         positions: Iterable[PositionReport]) -> tuple[Difference, ...]:
    """Every difference between the store/book and the venue, in a stable order."""
    mine = {o.client_id: o for o in store if o.venue == venue}
    out: list[Difference] = []
    listed: set[str] = set()
    for r in open_orders:
        cid = _ours(venue, r.client_id)
        if cid is None:
            out.append(Difference("foreign_order", venue, r.symbol, r.client_id or None,
                                  f"{r.side} {r.qty} open, venue id {r.venue_order_id}"))
        elif cid not in mine:
            out.append(Difference("orphan_order", venue, r.symbol, cid,
                                  f"{r.side} {r.qty} {r.status.value}, {r.filled} filled"))
        else:
            listed.add(cid)
    for cid, stored in mine.items():
        if stored.state in _OPEN and cid not in listed:
            out.append(Difference("missing_order", venue, stored.symbol, cid,
                                  f"store: {stored.state.value}, the venue lists no such open "
                                  "order"))
    by_order: dict[str, list[FillReport]] = {}
    # venues whose trade lists carry only their order id (Binance): matched through it
    by_venue_id = {o.venue_order_id: cid for cid, o in mine.items() if o.venue_order_id}
    for f in fills:
        cid = _ours(venue, f.client_id) or by_venue_id.get(f.venue_order_id)
        if cid is not None:  # fills not ours show up in the positions if they matter
            by_order.setdefault(cid, []).append(f)
    for cid, fs in by_order.items():
        o = mine.get(cid)
        total = sum((f.qty for f in fs), Decimal(0))
        ids = ", ".join(f.fill_id for f in fs)
        if o is None:
            out.append(Difference("orphan_fill", venue, fs[0].symbol, cid,
                                  f"{fs[0].side} {total} filled ({ids})"))
        elif total > o.filled:
            # the store records an order's cumulative fill (from reports or fills): compare
            # quantities; fill ids only where the store has them
            new = [f.fill_id for f in fs if f.fill_id not in o.fill_ids]
            out.append(Difference("missing_fill", venue, o.symbol, cid,
                                  f"venue filled {total}, store {o.filled} (venue fills: "
                                  f"{', '.join(new) if o.fill_ids else ids})"))
    held = {p.symbol: p.size for p in positions if p.size != 0}
    for symbol in sorted(set(held) | {s for s, v in expected.items() if v != 0}):
        have, want = held.get(symbol, Decimal(0)), expected.get(symbol, Decimal(0))
        if want == 0:
            out.append(Difference("unknown_position", venue, symbol, None,
                                  f"venue holds {have}, the book expects none"))
        elif have != want:
            out.append(Difference("position_mismatch", venue, symbol, None,
                                  f"venue holds {have}, the book expects {want}"))
    return tuple(out)


def expected_positions(book: HedgeBook, venue: str,
                       perp_symbols: Mapping[tuple[str, str], str] | None = None
                       ) -> dict[str, Decimal]:
    """The positions the hedge book expects at ``venue``, by the venue's symbol (options
    summed over layers; perps through the configured symbol of (venue, underlying))."""
    out: dict[str, Decimal] = {}
    for h in book.options:
        if h.instrument.venue == venue:
            out[h.instrument.symbol] = out.get(h.instrument.symbol, Decimal(0)) + h.size
    for p in book.perps:
        if p.venue == venue:
            symbol = (perp_symbols or {}).get((p.venue, p.underlying), p.underlying)
            out[symbol] = out.get(symbol, Decimal(0)) + p.size
    return out


async def reconcile(venue_name: str, venue: Venue, store: Sequence[Order],
                    expected: Mapping[str, Decimal]) -> ReconReport:
    """Ask ``venue`` for its open orders, fills and positions and diff them."""
    open_orders = await venue.open_orders()
    fills = await venue.fills()
    positions = await venue.positions()
    return ReconReport(venue_name, diff(venue_name, store, expected, open_orders, fills,
                                        positions))
