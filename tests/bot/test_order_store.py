"""The order store (bot/order_store.py, revision 0003) on SQLite and PostgreSQL: the intent
and its PENDING_SUBMIT order committed before any send, one row per client id, transitions
only through policies/orders.py (refused moves write nothing), an UNKNOWN attempt blocks a
new one, a concurrent writer is detected, and the store round-trips the pure order exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from bot.db import session_scope
from bot.db.engine import make_engine
from bot.db.migrate import downgrade, upgrade
from bot.db.models import ExecOrder
from bot.order_store import OrderConflict, OrderStore, StoredOrder, UnresolvedAttempt
from policies.errors import LphedgeError, Refused
from policies.orders import (
    Accepted,
    Cancelled,
    Fill,
    IllegalTransition,
    LostAnswer,
    Order,
    OrderEvent,
    OrderState,
    Sent,
    VenueReport,
    client_order_id,
    new_order,
    transition,
)

D = Decimal
S = OrderState
SAFE = "0x5afe00000000000000000000000000000000cafe"
OTHER = "0x0000000000000000000000000000000000000b0b"
SYMBOL = "ETH-26DEC26-2600-P"
EXEC_TABLES = {"exec_intent", "exec_order", "exec_order_event"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.cli)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = (f"sqlite:///{tmp_path / 'orders.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    eng = make_engine(url)
    upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()


def record(store: OrderStore, leg: int = 0, attempt: int = 0, size: str = "2.5") -> StoredOrder:
    return store.record("decision-7", leg, "open_option", "deribit", SYMBOL, "buy", D(size),
                        D("10.5"), {"layer": "short", "premium_cents": 2625}, attempt)


def test_migration_0003_adds_and_drops_exactly_the_exec_tables(engine: Engine) -> None:
    assert set(inspect(engine).get_table_names()) >= EXEC_TABLES
    downgrade(engine, "0002")
    assert not EXEC_TABLES & set(inspect(engine).get_table_names())
    assert "budget_spend" in inspect(engine).get_table_names()
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= EXEC_TABLES


def test_record_commits_pending_submit_before_any_send(engine: Engine) -> None:
    stored = record(OrderStore(engine, 1, SAFE))
    assert stored.order.state is S.PENDING_SUBMIT
    assert stored.order.client_id == client_order_id(SAFE, "decision-7", 0, 0)
    # visible to another connection: committed, not just flushed
    other = make_engine(engine.url)
    try:
        with other.connect() as conn:
            rows = conn.execute(text("SELECT client_order_id, state, size, limit_price "
                                     "FROM exec_order")).all()
    finally:
        other.dispose()
    assert [tuple(r) for r in rows] == [(stored.order.client_id, "pending_submit", "2.5", "10.5")]
    assert OrderStore(engine, 1, SAFE).history(stored.order.client_id) == [
        ("created", "", "pending_submit")]


def test_recording_the_same_leg_twice_is_one_order(engine: Engine) -> None:
    store = OrderStore(engine, 1, SAFE)
    a, b = record(store), record(store)
    assert (a.row_id, a.order) == (b.row_id, b.order) and len(store.orders()) == 1
    with pytest.raises(Refused, match="other content"):
        record(store, size="3")


def test_client_order_id_is_unique_in_the_database(engine: Engine) -> None:
    stored = record(OrderStore(engine, 1, SAFE))
    leg2 = record(OrderStore(engine, 1, SAFE), leg=1)
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        row = s.get(ExecOrder, leg2.row_id)
        assert row is not None
        row.client_order_id = stored.order.client_id


def test_lifecycle_is_persisted_exactly(engine: Engine) -> None:
    store = OrderStore(engine, 1, SAFE)
    cid = record(store).order.client_id
    store.apply(cid, Sent())
    store.apply(cid, Accepted("v-77"))
    store.apply(cid, Fill("t1", D("1.2"), D("10.25")), fee_cents=108)
    store.apply(cid, Fill("t1", D("1.2"), D("10.25")), fee_cents=108)  # seen twice
    store.apply(cid, Fill("t2", D("1.3"), D("10.5")), fee_cents=225)
    got = store.get(cid)
    assert got is not None
    o = got.order
    assert (o.state, o.filled, o.notional, o.venue_order_id, o.fill_ids) == (
        S.FILLED, D("2.5"), D("25.95"), "v-77", ("t1", "t2"))  # 12.30 + 13.65
    assert got.fee_cents == 225
    assert [h[1:] for h in store.history(cid)] == [
        ("", "pending_submit"), ("pending_submit", "submitted"), ("submitted", "accepted"),
        ("accepted", "partially_filled"), ("partially_filled", "filled")]
    assert store.active() == []


def test_an_illegal_move_writes_nothing(engine: Engine) -> None:
    store = OrderStore(engine, 1, SAFE)
    cid = record(store).order.client_id
    with pytest.raises(IllegalTransition):
        store.apply(cid, Cancelled())
    got = store.get(cid)
    assert got is not None and got.order.state is S.PENDING_SUBMIT
    assert len(store.history(cid)) == 1
    with pytest.raises(Refused, match="no order"):
        store.apply("lph" + "f" * 29, Sent())


def test_unknown_blocks_a_new_attempt_until_the_venue_answers(engine: Engine) -> None:
    store = OrderStore(engine, 1, SAFE)
    first = record(store).order.client_id
    store.apply(first, Sent())
    store.apply(first, LostAnswer("timeout"))
    with pytest.raises(UnresolvedAttempt, match="unknown"):
        store.next_attempt("decision-7", 0)
    with pytest.raises(UnresolvedAttempt):
        record(store, attempt=1)
    assert len(store.active()) == 1
    store.apply(first, VenueReport("not_found"))
    assert store.next_attempt("decision-7", 0) == 1
    second = record(store, attempt=1)
    assert second.order.client_id == client_order_id(SAFE, "decision-7", 0, 1) != first
    assert [o.attempt for o in store.orders()] == [0, 1]


def test_orders_are_per_safe(engine: Engine) -> None:
    record(OrderStore(engine, 1, SAFE))
    record(OrderStore(engine, 1, OTHER))
    assert [o.order.client_id for o in OrderStore(engine, 1, OTHER).orders()] == [
        client_order_id(OTHER, "decision-7", 0, 0)]
    assert OrderStore(engine, 2, SAFE).orders() == []


def test_a_concurrent_writer_is_detected(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    store = OrderStore(engine, 1, SAFE)
    cid = record(store).order.client_id
    import bot.order_store as mod

    def racing(order: Order, event: OrderEvent) -> Order:
        with engine.begin() as conn:  # another writer commits between our read and write
            conn.execute(text("UPDATE exec_order SET version = version + 1"))
        return transition(order, event)

    monkeypatch.setattr(mod, "transition", racing)
    with pytest.raises(OrderConflict):
        store.apply(cid, Sent())
    monkeypatch.undo()
    got = store.get(cid)
    assert got is not None and got.order.state is S.PENDING_SUBMIT
    assert store.apply(cid, Sent()).state is S.SUBMITTED


events = st.one_of(
    st.just(Sent()), st.just(Accepted("v1")), st.just(LostAnswer("timeout")),
    st.builds(Fill, st.sampled_from(["a", "b", "c"]),
              st.decimals(min_value=D("0.1"), max_value=D(2), places=1),
              st.decimals(min_value=D(1), max_value=D(20), places=2)),
    st.builds(VenueReport, st.sampled_from(["accepted", "partially_filled", "cancelled"]),
              st.decimals(min_value=D(0), max_value=D(3), places=1),
              st.just(D("10.5")), st.just("v1")),
)


@settings(max_examples=25, deadline=None)
@given(seq=st.lists(events, max_size=8))
def test_store_round_trips_the_pure_order(seq: list[OrderEvent]) -> None:
    eng = make_engine("sqlite://")
    upgrade(eng)
    store = OrderStore(eng, 1, SAFE)
    cid = record(store, size="3").order.client_id
    pure = new_order(cid, "deribit", SYMBOL, "buy", D(3), D("10.5"))
    changes = 0
    for ev in seq:
        try:
            before, pure = pure, transition(pure, ev)
            changes += pure != before
        except LphedgeError as err:  # the store must refuse the same, writing nothing
            with pytest.raises(type(err)):
                store.apply(cid, ev)
            continue
        assert store.apply(cid, ev) == pure
    got = store.get(cid)
    assert got is not None and got.order == pure
    assert len(store.history(cid)) == 1 + changes  # one transition row per change
    eng.dispose()
