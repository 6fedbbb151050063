"""The order state machine and client order ids (policies/orders.py).

The legal moves are written out below by hand, one row per (state, event), independently of
policies.orders.TABLE; every other (state, event) pair must be refused and change nothing.
Hypothesis then drives random event sequences through ``transition``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.errors import InvalidInput, LphedgeError, Refused
from policies.orders import (
    TABLE,
    TERMINAL_STATES,
    VENUE_ID_RULES,
    Accepted,
    BadOrderEvent,
    Cancelled,
    CancelRejected,
    CancelRequested,
    Expired,
    Fill,
    IllegalTransition,
    LostAnswer,
    Order,
    OrderEvent,
    OrderState,
    Rejected,
    Sent,
    VenueReport,
    client_order_id,
    from_venue_id,
    new_order,
    transition,
    venue_client_id,
)

S = OrderState
D = Decimal
SAFE = "0x5afe00000000000000000000000000000000cafe"
SIZE = D(3)
PX = D("12.5")


def order_in(state: OrderState) -> Order:
    filled = {S.PARTIALLY_FILLED: D(1), S.FILLED: SIZE}.get(state, D(0))
    return replace(new_order("lph" + "0" * 29, "deribit", "ETH-26DEC26-2600-P", "buy", SIZE, PX),
                   state=state, filled=filled, notional=filled * PX,
                   fill_ids=("t0",) if filled else ())


Make = Callable[[Order], OrderEvent]
EVENTS: dict[str, Make] = {
    "sent": lambda o: Sent(),
    "accepted": lambda o: Accepted("v-1"),
    "fill_part": lambda o: Fill("t-part", D(1), PX),
    "fill_full": lambda o: Fill("t-full", o.size - o.filled, PX),
    "rejected": lambda o: Rejected("insufficient margin"),
    "cancel_requested": lambda o: CancelRequested(),
    "cancelled": lambda o: Cancelled(),
    "cancel_rejected": lambda o: CancelRejected("already filled"),
    "expired": lambda o: Expired(),
    "lost": lambda o: LostAnswer("timeout"),
    "r_accepted": lambda o: VenueReport("accepted", o.filled, PX, "v-1"),
    "r_partial": lambda o: VenueReport("partially_filled", D(2), PX, "v-1"),
    "r_filled": lambda o: VenueReport("filled", o.size, PX, "v-1"),
    "r_cancelled": lambda o: VenueReport("cancelled", o.filled, PX, "v-1"),
    "r_rejected": lambda o: VenueReport("rejected", o.filled, PX),
    "r_expired": lambda o: VenueReport("expired", o.filled, PX, "v-1"),
    "r_not_found": lambda o: VenueReport("not_found"),
}

# (state, event) -> state after: every legal move, written by hand
LEGAL: dict[tuple[OrderState, str], OrderState] = {
    (S.PENDING_SUBMIT, "sent"): S.SUBMITTED,
    (S.PENDING_SUBMIT, "rejected"): S.REJECTED,
    (S.PENDING_SUBMIT, "lost"): S.UNKNOWN,
    (S.PENDING_SUBMIT, "r_accepted"): S.ACCEPTED,
    (S.PENDING_SUBMIT, "r_partial"): S.PARTIALLY_FILLED,
    (S.PENDING_SUBMIT, "r_filled"): S.FILLED,
    (S.PENDING_SUBMIT, "r_cancelled"): S.CANCELLED,
    (S.PENDING_SUBMIT, "r_rejected"): S.REJECTED,
    (S.PENDING_SUBMIT, "r_expired"): S.EXPIRED,
    (S.PENDING_SUBMIT, "r_not_found"): S.PENDING_SUBMIT,
    (S.SUBMITTED, "accepted"): S.ACCEPTED,
    (S.SUBMITTED, "fill_part"): S.PARTIALLY_FILLED,
    (S.SUBMITTED, "fill_full"): S.FILLED,
    (S.SUBMITTED, "rejected"): S.REJECTED,
    (S.SUBMITTED, "cancel_requested"): S.PENDING_CANCEL,
    (S.SUBMITTED, "cancelled"): S.CANCELLED,
    (S.SUBMITTED, "expired"): S.EXPIRED,
    (S.SUBMITTED, "lost"): S.UNKNOWN,
    (S.SUBMITTED, "r_accepted"): S.ACCEPTED,
    (S.SUBMITTED, "r_partial"): S.PARTIALLY_FILLED,
    (S.SUBMITTED, "r_filled"): S.FILLED,
    (S.SUBMITTED, "r_cancelled"): S.CANCELLED,
    (S.SUBMITTED, "r_rejected"): S.REJECTED,
    (S.SUBMITTED, "r_expired"): S.EXPIRED,
    (S.SUBMITTED, "r_not_found"): S.REJECTED,
    (S.ACCEPTED, "fill_part"): S.PARTIALLY_FILLED,
    (S.ACCEPTED, "fill_full"): S.FILLED,
    (S.ACCEPTED, "cancel_requested"): S.PENDING_CANCEL,
    (S.ACCEPTED, "cancelled"): S.CANCELLED,
    (S.ACCEPTED, "expired"): S.EXPIRED,
    (S.ACCEPTED, "r_accepted"): S.ACCEPTED,
    (S.ACCEPTED, "r_partial"): S.PARTIALLY_FILLED,
    (S.ACCEPTED, "r_filled"): S.FILLED,
    (S.ACCEPTED, "r_cancelled"): S.CANCELLED,
    (S.ACCEPTED, "r_expired"): S.EXPIRED,
    (S.PARTIALLY_FILLED, "fill_part"): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, "fill_full"): S.FILLED,
    (S.PARTIALLY_FILLED, "cancel_requested"): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, "cancelled"): S.CANCELLED,
    (S.PARTIALLY_FILLED, "expired"): S.EXPIRED,
    (S.PARTIALLY_FILLED, "r_accepted"): S.PARTIALLY_FILLED,  # open, 1 of 3 filled
    (S.PARTIALLY_FILLED, "r_partial"): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, "r_filled"): S.FILLED,
    (S.PARTIALLY_FILLED, "r_cancelled"): S.CANCELLED,
    (S.PARTIALLY_FILLED, "r_expired"): S.EXPIRED,
    (S.PENDING_CANCEL, "accepted"): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, "fill_part"): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, "fill_full"): S.FILLED,
    (S.PENDING_CANCEL, "cancelled"): S.CANCELLED,
    (S.PENDING_CANCEL, "cancel_rejected"): S.ACCEPTED,
    (S.PENDING_CANCEL, "expired"): S.EXPIRED,
    (S.PENDING_CANCEL, "lost"): S.UNKNOWN,
    (S.PENDING_CANCEL, "r_accepted"): S.ACCEPTED,
    (S.PENDING_CANCEL, "r_partial"): S.PARTIALLY_FILLED,
    (S.PENDING_CANCEL, "r_filled"): S.FILLED,
    (S.PENDING_CANCEL, "r_cancelled"): S.CANCELLED,
    (S.PENDING_CANCEL, "r_expired"): S.EXPIRED,
    (S.UNKNOWN, "r_accepted"): S.ACCEPTED,
    (S.UNKNOWN, "r_partial"): S.PARTIALLY_FILLED,
    (S.UNKNOWN, "r_filled"): S.FILLED,
    (S.UNKNOWN, "r_cancelled"): S.CANCELLED,
    (S.UNKNOWN, "r_rejected"): S.REJECTED,
    (S.UNKNOWN, "r_expired"): S.EXPIRED,
    (S.UNKNOWN, "r_not_found"): S.REJECTED,
}
PAIRS = [(s, e) for s in OrderState for e in EVENTS]


def test_the_hand_written_table_names_every_state() -> None:
    assert {s for s, _ in LEGAL} == set(OrderState) - TERMINAL_STATES
    assert {S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED} == TERMINAL_STATES
    assert set(TABLE) == set(OrderState)


@pytest.mark.parametrize(("state", "name"), [p for p in PAIRS if p in LEGAL])
def test_legal_transition(state: OrderState, name: str) -> None:
    before = order_in(state)
    after = transition(before, EVENTS[name](before))
    assert after.state is LEGAL[(state, name)]
    assert after.client_id == before.client_id and after.size == before.size
    assert D(0) <= after.filled <= after.size


@pytest.mark.parametrize(("state", "name"), [p for p in PAIRS if p not in LEGAL])
def test_illegal_transition_is_refused(state: OrderState, name: str) -> None:
    before = order_in(state)
    with pytest.raises(IllegalTransition) as err:
        transition(before, EVENTS[name](before))
    assert isinstance(err.value, Refused)
    assert before.client_id in str(err.value) and state.value in str(err.value)


def test_fill_quantities_and_average_price() -> None:
    o = transition(order_in(S.PENDING_SUBMIT), Sent())
    o = transition(o, Accepted("v-9"))
    o = transition(o, Fill("a", D("1.2"), D("10")))
    o = transition(o, Fill("b", D("0.8"), D("12.5")))
    assert (o.state, o.filled, o.remaining) == (S.PARTIALLY_FILLED, D(2), D(1))
    assert o.notional == D("22.0") and o.avg_price == D("11")  # (12 + 10) / 2
    assert o.venue_order_id == "v-9"
    o = transition(o, Fill("c", D(1), D(14)))
    assert (o.state, o.filled, o.avg_price) == (S.FILLED, D(3), D(12))  # 36 / 3


def test_a_fill_seen_twice_counts_once() -> None:
    o = transition(order_in(S.ACCEPTED), Fill("a", D(1), PX))
    assert transition(o, Fill("a", D(1), PX)) is o


@pytest.mark.parametrize("fill", [Fill("x", D(0), PX), Fill("x", D(-1), PX),
                                  Fill("x", D(4), PX), Fill("x", D(1), D(-1)),
                                  Fill("x", D("NaN"), PX)])
def test_impossible_fill_is_bad_input(fill: Fill) -> None:
    with pytest.raises(BadOrderEvent) as err:
        transition(order_in(S.ACCEPTED), fill)
    assert isinstance(err.value, InvalidInput)


@pytest.mark.parametrize("report", [
    VenueReport("partially_filled", D(0.5)),  # un-fills (store has 1)
    VenueReport("filled", D(4), PX),  # more than the size
    VenueReport("filled", D(2), PX),  # "filled" with 2 of 3
    VenueReport("partially_filled", D(2)),  # more filled, no average price
    VenueReport("open"),  # not a status
])
def test_impossible_report_is_bad_input(report: VenueReport) -> None:
    with pytest.raises(BadOrderEvent):
        transition(order_in(S.PARTIALLY_FILLED), report)


def test_report_takes_the_venues_average() -> None:
    o = transition(order_in(S.UNKNOWN), VenueReport("partially_filled", D(2), D(11), "v-3"))
    assert (o.state, o.filled, o.notional, o.venue_order_id) == (
        S.PARTIALLY_FILLED, D(2), D(22), "v-3")


def test_unknown_is_left_only_by_a_venue_report() -> None:
    unknown = transition(order_in(S.SUBMITTED), LostAnswer("timeout"))
    assert unknown.state is S.UNKNOWN and unknown.reason == "timeout"
    for name, make in EVENTS.items():
        if not name.startswith("r_"):
            with pytest.raises(IllegalTransition):
                transition(unknown, make(unknown))
    gone = transition(unknown, VenueReport("not_found"))
    assert gone.state is S.REJECTED and "not found" in gone.reason


@pytest.mark.parametrize(("field", "kwargs"), [
    ("client_id", {"client_id": ""}), ("side", {"side": "short"}),
    ("size", {"size": D(0)}), ("limit_price", {"limit_price": D(-1)})])
def test_new_order_refuses_bad_fields(field: str, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"client_id": "c", "venue": "paper", "symbol": "X",
                               "side": "buy", "size": D(1), "limit_price": None, **kwargs}
    with pytest.raises(BadOrderEvent, match=field):
        new_order(**args)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ hypothesis

decimals = st.decimals(min_value=D("-1"), max_value=D("5"), places=1, allow_nan=False)
prices = st.decimals(min_value=D("0"), max_value=D("100"), places=2)
statuses = st.sampled_from(["accepted", "partially_filled", "filled", "cancelled",
                            "rejected", "expired", "not_found", "bogus"])
events: st.SearchStrategy[OrderEvent] = st.one_of(
    st.just(Sent()), st.builds(Accepted, st.sampled_from(["v1", "v2"])),
    st.builds(Fill, st.sampled_from(["t1", "t2", "t3", "t4"]), decimals, prices),
    st.builds(Rejected, st.just("no")), st.just(CancelRequested()), st.just(Cancelled()),
    st.builds(CancelRejected, st.just("late")), st.just(Expired()),
    st.builds(LostAnswer, st.just("timeout")),
    st.builds(VenueReport, statuses, decimals, st.none() | prices, st.none() | st.just("v1")),
)


def _consistent(o: Order) -> None:
    assert o.state in OrderState
    assert D(0) <= o.filled <= o.size
    assert len(set(o.fill_ids)) == len(o.fill_ids)
    if o.state is S.FILLED:
        assert o.filled == o.size
    if o.state is S.PARTIALLY_FILLED:
        assert D(0) < o.filled < o.size
    if o.state in (S.ACCEPTED, S.SUBMITTED, S.PENDING_SUBMIT):
        assert o.filled == 0


@settings(max_examples=400, deadline=None)
@given(st.lists(events, max_size=25), st.decimals(min_value=D("0.1"), max_value=D(4), places=1))
def test_any_event_sequence_keeps_a_legal_state(seq: list[OrderEvent], size: Decimal) -> None:
    o = new_order("lph" + "1" * 29, "paper", "X", "sell", size, None)
    for ev in seq:
        before = o
        try:
            o = transition(o, ev)
        except LphedgeError as err:
            assert isinstance(err, IllegalTransition | BadOrderEvent)
            o = before
            continue
        _consistent(o)
        assert o.filled >= before.filled  # never un-fills
        if before.terminal:
            pytest.fail(f"{ev} moved terminal {before.state} to {o.state}")
        if before.state is S.UNKNOWN and o.state is not S.UNKNOWN:
            assert isinstance(ev, VenueReport)
        if o.state is not before.state:
            assert o.state in TABLE[before.state][ev.kind]


@given(st.sampled_from(sorted(TERMINAL_STATES)), events)
def test_terminal_states_are_absorbing(state: OrderState, ev: OrderEvent) -> None:
    with pytest.raises(IllegalTransition):
        transition(order_in(state), ev)


# ------------------------------------------------------------------------ client ids


def test_client_id_is_the_documented_digest() -> None:
    # computed here from the documented recipe, not by the code under test
    material = "".join(f"{len(p)}:{p}|" for p in (SAFE, "dec-42", "1", "0"))
    want = "lph" + hashlib.sha256(material.encode()).hexdigest()[:29]
    assert client_order_id(SAFE, "dec-42", 1, 0) == want
    assert client_order_id(SAFE.upper().replace("0X", "0x"), "dec-42", 1, 0) == want


@pytest.mark.parametrize(("safe", "decision", "leg", "attempt"), [
    ("", "d", 0, 0), (SAFE, "", 0, 0), (SAFE, "d", -1, 0), (SAFE, "d", 0, -1)])
def test_client_id_refuses_missing_parts(safe: str, decision: str, leg: int, attempt: int) -> None:
    with pytest.raises(BadOrderEvent):
        client_order_id(safe, decision, leg, attempt)


ids = st.tuples(st.sampled_from([SAFE, "0x" + "ab" * 20]), st.text(min_size=1, max_size=12),
                st.integers(0, 5), st.integers(0, 5))


@settings(max_examples=300)
@given(st.sets(ids, min_size=2, max_size=40))
def test_ids_are_deterministic_unique_and_valid_everywhere(keys: set[tuple[str, str, int, int]]) -> None:
    made = {k: client_order_id(*k) for k in keys}
    assert len(set(made.values())) == len(keys)  # distinct (safe, decision, leg, attempt)
    for k, cid in made.items():
        assert client_order_id(*k) == cid
        for venue, rule in VENUE_ID_RULES.items():
            vid = venue_client_id(venue, cid)
            assert len(vid) <= rule.max_len and re.fullmatch(rule.pattern, vid), (venue, vid)
            assert from_venue_id(venue, vid) == cid


def test_venue_fields_by_hand() -> None:
    cid = "lph" + "0123456789abcdef0123456789abc"
    assert venue_client_id("okx", cid) == cid and len(cid) == 32
    assert venue_client_id("hyperliquid", cid) == "0x0123456789abcdef0123456789abc000"
    assert int(venue_client_id("hyperliquid", cid), 16) < 2**128
    assert {VENUE_ID_RULES[v].field for v in ("deribit", "binanceusdm", "bybit", "okx",
                                              "hyperliquid", "derive")} == {
        "label", "newClientOrderId", "orderLinkId", "clOrdId", "cloid"}
    assert from_venue_id("binanceusdm", "web_1234") is None  # not ours
    assert from_venue_id("hyperliquid", "0x" + "f" * 32) is None
    with pytest.raises(BadOrderEvent):
        venue_client_id("okx", "lph-not-ours")
    with pytest.raises(BadOrderEvent):
        venue_client_id("kraken", cid)
