"""Repository of the act step: intents, their orders and every order transition.

The rule it exists for: an intent's row and its order's row, in PENDING_SUBMIT with its
deterministic client order id, are committed in one transaction BEFORE anything is sent
(``record``). After that the order changes only through ``apply``, which loads the row,
asks policies/orders.py for the transition (refused moves change nothing), writes the new
state with an optimistic version check (two writers never both move one order: the second
gets ``OrderConflict`` and re-reads) and appends the transition to ``exec_order_event``,
all in one transaction.

The client order id is unique in the database: recording the same (Safe, decision, leg,
attempt) twice returns the row already there (a planner that restarts re-records its
decision without doubling it), and a different leg can never take an id already used. A
new attempt at a leg (``next_attempt``) is refused while an earlier attempt is not
terminal: an UNKNOWN order is resolved by asking the venue, never by sending again.

Tables in bot/db/models.py (revision 0003); every unit of work goes through
bot.db.session_scope.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from bot.db import session_scope
from bot.db.models import ExecIntent, ExecOrder, ExecOrderEvent
from bot.db.types import utcnow
from policies.errors import Refused, Transient
from policies.orders import (
    ACTIVE_STATES,
    Order,
    OrderEvent,
    OrderState,
    Side,
    client_order_id,
    new_order,
    transition,
)
from policies.vocab import INTENT_KINDS

__all__ = ["OrderConflict", "OrderStore", "StoredOrder", "UnresolvedAttempt"]


class OrderConflict(Transient):
    """Another writer changed the order between our read and our write: re-read, retry."""


class UnresolvedAttempt(Refused):
    """A new attempt while an earlier attempt's order is not terminal (never doubled)."""


@dataclass(frozen=True, slots=True)
class StoredOrder:
    order: Order
    row_id: int
    intent_id: int
    decision_id: str
    leg: int
    attempt: int
    fee_cents: int
    kind: str  # the intent's kind (policies.vocab)


def _canonical(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def _dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _to_order(row: ExecOrder) -> Order:
    side: Side = "buy" if row.side == "buy" else "sell"
    return Order(client_id=row.client_order_id, venue=row.venue, symbol=row.symbol, side=side,
                 size=Decimal(row.size), limit_price=_dec(row.limit_price),
                 state=OrderState(row.state), filled=Decimal(row.filled),
                 notional=Decimal(row.notional), venue_order_id=row.venue_order_id,
                 fill_ids=tuple(json.loads(row.fill_ids)), reason=row.reason)


class OrderStore:
    def __init__(self, engine: Engine, chain_id: int, safe: str) -> None:
        self.engine = engine
        self.chain_id = chain_id
        self.safe = safe

    # ------------------------------------------------------------------ before the send

    def record(self, decision_id: str, leg: int, kind: str, venue: str, symbol: str,
               side: Side, size: Decimal, limit_price: Decimal | None,
               payload: Mapping[str, Any], attempt: int = 0) -> StoredOrder:
        """Commit the intent's leg and its order (PENDING_SUBMIT) before anything is sent;
        the same (decision, leg, attempt) again returns what is there (never a second
        order; a different leg content under the same key is refused)."""
        if kind not in INTENT_KINDS:
            raise Refused(f"intent kind {kind!r} is not one of {', '.join(INTENT_KINDS)}")
        cid = client_order_id(self.safe, decision_id, leg, attempt)
        order = new_order(cid, venue, symbol, side, size, limit_price)
        body = _canonical({"kind": kind, "venue": venue, "symbol": symbol, "side": side,
                           "size": str(size), "limit_price": None if limit_price is None
                           else str(limit_price), "intent": dict(payload)})
        try:
            with session_scope(self.engine) as s:
                intent = self._intent(s, decision_id, leg)
                if intent is None:
                    intent = ExecIntent(chain_id=self.chain_id, safe=self.safe,
                                        decision_id=decision_id, leg=leg, kind=kind,
                                        venue=venue, payload=body)
                    s.add(intent)
                    s.flush()
                elif intent.payload != body:
                    raise Refused(f"decision {decision_id} leg {leg} is already recorded with "
                                  "other content: a leg is recorded once")
                existing = self._row(s, cid)
                if existing is not None:
                    return self._stored(existing, intent)
                if attempt > 0:
                    self._check_resolved(s, intent, attempt)
                assert intent.id is not None
                row = ExecOrder(intent_id=intent.id, attempt=attempt, client_order_id=cid,
                                venue=venue, symbol=symbol, side=side, size=str(size),
                                limit_price=None if limit_price is None else str(limit_price),
                                state=order.state.value)
                s.add(row)
                s.flush()
                assert row.id is not None
                s.add(ExecOrderEvent(order_id=row.id, seq=0, event="created", from_state="",
                                     to_state=order.state.value))
                return self._stored(row, intent)
        except IntegrityError:
            # another process recorded the same key at the same instant: read theirs
            found = self.get(cid)
            if found is None:
                raise
            return found

    def latest_attempt(self, decision_id: str, leg: int) -> int:
        """The highest attempt recorded for this leg (0 when none)."""
        with session_scope(self.engine) as s:
            intent = self._intent(s, decision_id, leg)
            if intent is None:
                return 0
            last = s.exec(select(func.max(ExecOrder.attempt)).where(
                col(ExecOrder.intent_id) == intent.id)).one()
            return 0 if last is None else int(last)

    def next_attempt(self, decision_id: str, leg: int) -> int:
        """The attempt number a new order for this leg would take; refused while the last
        attempt is not terminal."""
        with session_scope(self.engine) as s:
            intent = self._intent(s, decision_id, leg)
            if intent is None:
                return 0
            last = s.exec(select(func.max(ExecOrder.attempt)).where(
                col(ExecOrder.intent_id) == intent.id)).one()
            nxt = 0 if last is None else int(last) + 1
            self._check_resolved(s, intent, nxt)
            return nxt

    # ------------------------------------------------------------------- transitions

    def apply(self, client_id: str, event: OrderEvent, *, fee_cents: int | None = None,
              detail: Mapping[str, Any] | None = None) -> Order:
        """The order after ``event`` (policies.orders.transition), persisted with its
        transition row in one transaction. ``fee_cents``: the venue's cumulative fee on
        the order, when the answer carried it (never lowered)."""
        with session_scope(self.engine) as s:
            row = self._row(s, client_id)
            if row is None:
                raise Refused(f"no order with client id {client_id} in the store")
            before = _to_order(row)
            after = transition(before, event)  # raises: nothing written
            fee = row.fee_cents if fee_cents is None else max(row.fee_cents, fee_cents)
            if after == before and fee == row.fee_cents:
                return before  # a fill seen twice: nothing to write
            done = s.execute(
                update(ExecOrder)
                .where(col(ExecOrder.id) == row.id, col(ExecOrder.version) == row.version)
                .values(state=after.state.value, filled=str(after.filled),
                        notional=str(after.notional), venue_order_id=after.venue_order_id,
                        fill_ids=json.dumps(list(after.fill_ids)), reason=after.reason,
                        fee_cents=fee, version=row.version + 1, updated_at=utcnow()))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise OrderConflict(f"order {client_id} changed while being updated; re-read")
            seq = s.exec(select(func.max(ExecOrderEvent.seq)).where(
                col(ExecOrderEvent.order_id) == row.id)).one()
            assert row.id is not None
            s.add(ExecOrderEvent(order_id=row.id, seq=int(seq or 0) + 1,
                                 event=event.kind.value, from_state=before.state.value,
                                 to_state=after.state.value,
                                 detail=_canonical({"event": repr(event), **(detail or {})})))
            return after

    # ------------------------------------------------------------------------ reading

    def get(self, client_id: str) -> StoredOrder | None:
        with session_scope(self.engine) as s:
            row = self._row(s, client_id)
            if row is None:
                return None
            intent = s.get(ExecIntent, row.intent_id)
            assert intent is not None
            return self._stored(row, intent)

    def orders(self, states: frozenset[OrderState] | None = None) -> list[StoredOrder]:
        """This Safe's orders (in ``states`` if given), oldest first."""
        with session_scope(self.engine) as s:
            q = (select(ExecOrder, ExecIntent)
                 .join(ExecIntent, col(ExecIntent.id) == col(ExecOrder.intent_id))
                 .where(col(ExecIntent.chain_id) == self.chain_id,
                        col(ExecIntent.safe) == self.safe)
                 .order_by(col(ExecOrder.id)))
            if states is not None:
                q = q.where(col(ExecOrder.state).in_([st.value for st in states]))
            return [self._stored(o, i) for o, i in s.exec(q)]

    def active(self) -> list[StoredOrder]:
        """Orders not yet terminal: what reconciliation resolves before any new risk."""
        return self.orders(ACTIVE_STATES)

    def history(self, client_id: str) -> list[tuple[str, str, str]]:
        """(event, from state, to state) of every transition of the order, in order."""
        with session_scope(self.engine) as s:
            row = self._row(s, client_id)
            if row is None:
                return []
            return [(e.event, e.from_state, e.to_state) for e in s.exec(
                select(ExecOrderEvent).where(col(ExecOrderEvent.order_id) == row.id)
                .order_by(col(ExecOrderEvent.seq)))]

    # ---------------------------------------------------------------------- internals

    def _intent(self, s: Session, decision_id: str, leg: int) -> ExecIntent | None:
        return s.exec(select(ExecIntent).where(
            col(ExecIntent.chain_id) == self.chain_id, col(ExecIntent.safe) == self.safe,
            col(ExecIntent.decision_id) == decision_id, col(ExecIntent.leg) == leg)).first()

    @staticmethod
    def _row(s: Session, client_id: str) -> ExecOrder | None:
        return s.exec(select(ExecOrder).where(
            col(ExecOrder.client_order_id) == client_id)).first()

    @staticmethod
    def _check_resolved(s: Session, intent: ExecIntent, attempt: int) -> None:
        open_ = s.exec(select(ExecOrder).where(
            col(ExecOrder.intent_id) == intent.id, col(ExecOrder.attempt) < attempt,
            col(ExecOrder.state).in_([st.value for st in ACTIVE_STATES]))).first()
        if open_ is not None:
            raise UnresolvedAttempt(
                f"decision {intent.decision_id} leg {intent.leg}: attempt {open_.attempt} "
                f"({open_.client_order_id}) is {open_.state}; resolve it at the venue before "
                "another attempt")

    @staticmethod
    def _stored(row: ExecOrder, intent: ExecIntent) -> StoredOrder:
        assert row.id is not None and intent.id is not None
        return StoredOrder(_to_order(row), row.id, intent.id, intent.decision_id, intent.leg,
                           row.attempt, row.fee_cents, intent.kind)
