"""The act step on exchange venues: intents become orders that are never doubled or lost.

For each leg (``legs_of`` turns a decision's intents into venue orders, in the
vocabulary's execution order):

1. ``OrderStore.record`` commits the intent's leg and its order, PENDING_SUBMIT, with its
   deterministic client order id (policies/orders.py). Nothing has been sent.
2. ``Sent`` is committed (SUBMITTED) just before the request leaves, so a PENDING_SUBMIT
   row found later was never sent and a SUBMITTED one may have been.
3. ``Venue.place``; its answer (a report) is recorded through the state machine. A
   timeout, a disconnect or any answer that is not a report is a lost answer: UNKNOWN.
4. Nothing is sent again for a leg whose order is not terminal. ``resolve`` /
   ``reconcile`` ask the venue by client id (``order_status``) and record what it says;
   the venue having no such order ends an UNKNOWN order as rejected (policies/orders.py
   says when that is safe), after which a new attempt (a new client id) may be recorded.
   A failed status query leaves the order as it is: no timer makes anything terminal.

``checkpoint(name)`` is called at each instrumented point (after the intent row, before
the send, after a lost answer, after the answer before its commit) so a harness can stop
the process there; it does nothing by default.

Budget: when an order ends with something filled, its premium (buys) and its fees are
charged to the budget in integer cents (BookStore.record_spend, keyed by client id, so a
fill is charged once however often it is reconciled).

Not here yet (issue 11): the on-chain venue (ExitLP), the single-writer lease checked
before every send, retries with backoff for status queries, per-venue rate limits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapters.venues.base import OrderRequest, TimeInForce, Venue, VenueError, VenueUnavailable
from bot.book_store import BookStore
from bot.order_store import OrderStore
from policies.errors import InvalidInput
from policies.fills import cents_paid
from policies.hedge import (
    AdjustPerp,
    Intent,
    OpenOption,
    RollOption,
    intent_sort_key,
    intent_to_json,
)
from policies.orders import (
    NOT_FOUND_REASON,
    TERMINAL_STATES,
    LostAnswer,
    Order,
    OrderState,
    Sent,
    Side,
    VenueReport,
)
from policies.vocab import OPEN_OPTION, ROLL_OPTION

__all__ = ["Executor", "Leg", "legs_of"]

S = OrderState
# states whose outcome only the venue knows: resolved by asking it
_ASK_VENUE = frozenset({S.SUBMITTED, S.UNKNOWN, S.ACCEPTED, S.PARTIALLY_FILLED,
                        S.PENDING_CANCEL})


@dataclass(frozen=True, slots=True)
class Leg:
    """One order to carry out: a leg of an intent of a decision."""

    decision_id: str
    leg: int
    kind: str  # policies.vocab intent kind
    venue: str
    symbol: str
    side: Side
    size: Decimal
    limit_price: Decimal | None
    payload: Mapping[str, Any] = field(default_factory=dict)
    time_in_force: TimeInForce = "ioc"


def legs_of(decision_id: str, intents: Iterable[Intent],
            perp_symbols: Mapping[tuple[str, str], str] | None = None) -> list[Leg]:
    """The venue orders of a decision's intents, numbered in execution order (the same
    intents always give the same legs, hence the same client ids). Bookkeeping intents
    (engage/release layer) and settlements of expired options send nothing; LP exits go to
    the on-chain venue, not here."""
    out: list[Leg] = []
    for intent in sorted(intents, key=intent_sort_key):
        body = intent_to_json(intent)
        if isinstance(intent, OpenOption):
            i = intent.instrument
            out.append(Leg(decision_id, len(out), intent.action, i.venue, i.symbol, "buy",
                           intent.size, Decimal(repr(intent.limit_price)), body))
        elif isinstance(intent, RollOption):
            c, o = intent.close_instrument, intent.open_instrument
            out.append(Leg(decision_id, len(out), intent.action, c.venue, c.symbol, "sell",
                           intent.close_size, None, body))
            out.append(Leg(decision_id, len(out), intent.action, o.venue, o.symbol, "buy",
                           intent.open_size, Decimal(repr(intent.limit_price)), body))
        elif isinstance(intent, AdjustPerp):
            if intent.delta == 0:
                continue
            symbol = (perp_symbols or {}).get((intent.venue, intent.underlying))
            if symbol is None:
                raise InvalidInput(f"no perp symbol configured for {intent.underlying} on "
                                   f"{intent.venue}")
            out.append(Leg(decision_id, len(out), intent.action, intent.venue, symbol,
                           "buy" if intent.delta > 0 else "sell", abs(intent.delta), None,
                           body))
    return out


def _now_s() -> int:
    return int(time.time())


class Executor:
    def __init__(self, store: OrderStore, venues: Mapping[str, Venue], *,
                 budget: BookStore | None = None, send_timeout_s: float = 10.0,
                 checkpoint: Callable[[str], None] = lambda point: None,
                 now_s: Callable[[], int] = _now_s) -> None:
        self.store = store
        self.venues = venues
        self.budget = budget
        self.send_timeout_s = send_timeout_s
        self.checkpoint = checkpoint
        self.now_s = now_s

    def _venue(self, name: str) -> Venue:
        v = self.venues.get(name)
        if v is None:
            raise InvalidInput(f"no venue {name!r} configured (have: "
                               f"{', '.join(sorted(self.venues)) or 'none'})")
        return v

    async def execute(self, leg: Leg, attempt: int = 0) -> Order:
        """Carry ``leg`` out once: record, send, record the answer. A leg already recorded
        is not sent again unless its order was never sent (PENDING_SUBMIT)."""
        venue = self._venue(leg.venue)
        stored = self.store.record(leg.decision_id, leg.leg, leg.kind, leg.venue, leg.symbol,
                                   leg.side, leg.size, leg.limit_price, leg.payload, attempt)
        self.checkpoint("after_intent_row")
        order = stored.order
        if order.state is not S.PENDING_SUBMIT:
            return order  # sent before: only the venue's answer moves it (resolve)
        cid = order.client_id
        self.store.apply(cid, Sent())
        self.checkpoint("before_send")
        request = OrderRequest(cid, leg.symbol, leg.side, leg.size, leg.limit_price,
                               leg.time_in_force)
        try:
            report = await asyncio.wait_for(venue.place(request), self.send_timeout_s)
        except (TimeoutError, VenueUnavailable, ConnectionError) as err:
            self.checkpoint("after_lost_answer")
            return self.store.apply(cid, LostAnswer(type(err).__name__ + (
                f": {err}" if str(err) else "")))
        self.checkpoint("after_answer")
        after = self.store.apply(cid, report.to_event(), fee_cents=report.fee_cents,
                                 detail={"venue_order_id": report.venue_order_id})
        await self._charge(venue, after, leg.kind, report.fee_cents)
        return after

    async def run(self, legs: Iterable[Leg]) -> list[Order]:
        """Carry out a plan after a (re)start: reconcile what is in flight first, then each
        leg at its latest attempt (sent legs are not sent again); a leg whose last attempt
        never reached the venue (rejected as not found) gets a new attempt."""
        await self.reconcile()
        out = []
        for leg in legs:
            order = await self.execute(leg, self.store.latest_attempt(leg.decision_id, leg.leg))
            if order.state is S.REJECTED and order.reason == NOT_FOUND_REASON:
                order = await self.execute(leg, self.store.next_attempt(leg.decision_id,
                                                                        leg.leg))
            out.append(order)
        return out

    async def resolve(self, client_id: str) -> Order:
        """Ask the venue what became of the order and record its answer. Nothing changes
        when the venue cannot be asked (the order stays as it is, e.g. UNKNOWN)."""
        stored = self.store.get(client_id)
        if stored is None:
            raise InvalidInput(f"no order with client id {client_id}")
        order = stored.order
        if order.state not in _ASK_VENUE:
            return order
        venue = self._venue(order.venue)
        try:
            report = await asyncio.wait_for(venue.order_status(client_id, order.symbol),
                                            self.send_timeout_s)
        except (TimeoutError, VenueError, ConnectionError):
            return order  # unknown stays unknown: asked again at the next reconcile
        if report is None:
            return self.store.apply(client_id, VenueReport("not_found"))
        if (report.status, report.filled, report.fee_cents) == (
                order.state, order.filled, stored.fee_cents):
            return order  # nothing new at the venue
        after = self.store.apply(client_id, report.to_event(), fee_cents=report.fee_cents,
                                 detail={"venue_order_id": report.venue_order_id})
        await self._charge(venue, after, stored.kind, report.fee_cents)
        return after

    async def reconcile(self) -> list[Order]:
        """Resolve every order the venue may hold (at start, before any new order, and
        every few ticks). PENDING_SUBMIT orders were never sent and are left to execute."""
        return [await self.resolve(s.order.client_id) for s in self.store.active()
                if s.order.state in _ASK_VENUE]

    async def _charge(self, venue: Venue, order: Order, kind: str, fee_cents: int) -> None:
        """Premium of an option bought and every fee, once the order is terminal. Venues
        whose order answers carry no fee (Binance USD-M) have it summed from their fills
        (matched by client id or order id). If those cannot be read now the fee is NOT
        charged yet (known gap: reconciliation should charge fees of terminal orders that
        have none recorded); ``record_spend`` counts each reference once."""
        if self.budget is None or order.state not in TERMINAL_STATES or order.filled == 0:
            return
        now = self.now_s()
        if order.side == "buy" and kind in (OPEN_OPTION, ROLL_OPTION):
            self.budget.record_spend(now, cents_paid(order.notional), "premium",
                                     f"{order.client_id}:premium")
        if fee_cents == 0:
            try:
                fills = await asyncio.wait_for(venue.fills(), self.send_timeout_s)
            except (TimeoutError, VenueError, ConnectionError):
                return
            fee_cents = sum(f.fee_cents for f in fills if f.client_id == order.client_id or (
                order.venue_order_id and f.venue_order_id == order.venue_order_id))
        if fee_cents > 0:
            self.budget.record_spend(now, fee_cents, "fee", f"{order.client_id}:fee")
