"""The paper venue (adapters/venues/paper.py): fills against the book it is given, through
policies/fills.py, idempotent on our client id, partial fills, status by client id.
Expected numbers are computed by hand in the comments."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.venues.base import InstrumentInfo, OrderRequest, Venue, VenueRefused
from adapters.venues.paper import PaperVenue
from policies.fills import Book, Level
from policies.orders import OrderState, Sent, client_order_id, new_order, transition

D = Decimal
S = OrderState
SAFE = "0x5afe00000000000000000000000000000000cafe"
PUT = InstrumentInfo("ETH-26DEC26-2600-P", "option", "ETH", D("0.1"), D("0.05"), "put",
                     D(2600), 1798272000000)
PERP = InstrumentInfo("ETH-PERP", "perp", "ETH", D("0.001"), D("0.1"))


def book(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> Book:
    return Book(tuple(Level(D(p), D(s)) for p, s in bids),
                tuple(Level(D(p), D(s)) for p, s in asks))


BOOK = book(bids=[("9.5", "1.5"), ("9", "3")], asks=[("10", "1"), ("10.5", "2"), ("12", "5")])


def cid(leg: int, attempt: int = 0) -> str:
    return client_order_id(SAFE, "decision-1", leg, attempt)


def venue() -> PaperVenue:
    ticks = itertools.count(1_000)
    v = PaperVenue({PUT.symbol: PUT, PERP.symbol: PERP}, clock_ms=lambda: next(ticks))
    v.set_book(PUT.symbol, BOOK, D(3000))
    return v


def req(leg: int, qty: str, side: str = "buy", limit: str | None = None, tif: str = "ioc",
        symbol: str = PUT.symbol) -> OrderRequest:
    return OrderRequest(cid(leg), symbol, side, D(qty),  # type: ignore[arg-type]
                        None if limit is None else D(limit), tif)  # type: ignore[arg-type]


def test_is_a_venue() -> None:
    assert isinstance(venue(), Venue)


async def test_buy_walks_the_book_and_charges_deribit_fees_per_fill() -> None:
    v = venue()
    r = await v.place(req(0, "2.5"))
    assert (r.status, r.filled, r.avg_price) == (S.FILLED, D("2.5"), D("10.3"))
    fills = await v.fills(cid(0))
    assert [(f.price, f.qty, f.fee_cents) for f in fills] == [
        # min(0.03% x 3000 = 0.90, 12.5% x price) per contract: 0.90 x 1, 0.90 x 1.5
        (D(10), D(1), 90), (D("10.5"), D("1.5"), 135)]
    assert r.fee_cents == 225
    assert r.client_id == cid(0) and r.venue_order_id == "paper-1"


async def test_placing_the_same_client_id_twice_is_one_order() -> None:
    v = venue()
    first = await v.place(req(0, "2.5"))
    again = await v.place(req(0, "7"))  # same id, even with another size
    assert again == first and v.order_count() == 1
    assert len(await v.fills()) == 2
    assert (await v.positions())[0].size == D("2.5")


async def test_depth_taken_stays_taken() -> None:
    v = venue()
    await v.place(req(0, "2.5"))
    r = await v.place(req(1, "1"))
    # left: 0.5 @ 10.5, then 12: 0.5 x 10.5 + 0.5 x 12 = 11.25
    assert (r.filled, r.avg_price) == (D(1), D("11.25"))


async def test_ioc_beyond_depth_is_a_partial_fill_then_cancelled() -> None:
    v = venue()
    r = await v.place(req(0, "10"))
    assert (r.status, r.filled, r.avg_price) == (S.CANCELLED, D(8), D("91") / 8)
    assert "remainder" in r.reason
    nothing = await v.place(req(1, "1", limit="9.9"))
    assert (nothing.status, nothing.filled) == (S.CANCELLED, D(0))


async def test_gtc_rests_and_fills_on_later_books() -> None:
    v = venue()
    r = await v.place(req(0, "10", limit="10.5", tif="gtc"))
    assert (r.status, r.filled) == (S.PARTIALLY_FILLED, D(3))
    assert [o.client_id for o in await v.open_orders()] == [cid(0)]
    new = v.set_book(PUT.symbol, book([("9", "1")], [("10.4", "5"), ("11", "9")]), D(3000))
    assert [(f.price, f.qty) for f in new] == [(D("10.4"), D(5))]
    mid = await v.order_status(cid(0), PUT.symbol)
    assert mid is not None and (mid.status, mid.filled) == (S.PARTIALLY_FILLED, D(8))
    v.set_book(PUT.symbol, book([], [("10.5", "4")]), D(3000))
    done = await v.order_status(cid(0), PUT.symbol)
    assert done is not None and (done.status, done.filled) == (S.FILLED, D(10))
    # 1 x 10 + 2 x 10.5 + 5 x 10.4 + 2 x 10.5 = 104
    assert done.avg_price == D("10.4")
    assert await v.open_orders() == ()


async def test_resting_option_order_waits_without_an_underlying_price() -> None:
    v = venue()
    await v.place(req(0, "5", limit="9", tif="gtc"))
    assert v.set_book(PUT.symbol, book([], [("8", "9")]), None) == ()
    assert v.set_book(PUT.symbol, book([], [("8", "9")]), D(3000))[0].qty == D(5)


async def test_cancel() -> None:
    v = venue()
    await v.place(req(0, "1", limit="9", tif="gtc"))
    c = await v.cancel(cid(0), PUT.symbol)
    assert (c.status, c.filled) == (S.CANCELLED, D(0))
    with pytest.raises(VenueRefused, match="not open"):
        await v.cancel(cid(0), PUT.symbol)
    with pytest.raises(VenueRefused, match="no order"):
        await v.cancel(cid(9), PUT.symbol)
    assert await v.order_status(cid(9), PUT.symbol) is None


@pytest.mark.parametrize(("request_", "reason"), [
    (OrderRequest(cid(0), "BTC-PERP", "buy", D(1)), "not listed"),
    (OrderRequest(cid(0), PERP.symbol, "buy", D(1)), "no book"),
    (OrderRequest(cid(0), PUT.symbol, "buy", D("0.05")), "multiple of 0.1"),
    (OrderRequest("has-a-dash", PUT.symbol, "buy", D(1)), "client id"),
    (OrderRequest(cid(0), PUT.symbol, "buy", D(1), D(-1)), "limit price"),
])
async def test_rejections_are_reports(request_: OrderRequest, reason: str) -> None:
    v = venue()
    r = await v.place(request_)
    assert r.status is S.REJECTED and reason in r.reason and r.filled == 0
    assert await v.order_status(request_.client_id, request_.symbol) == r


async def test_option_without_underlying_price_is_rejected() -> None:
    v = venue()
    v.set_book(PUT.symbol, BOOK, None)
    r = await v.place(req(0, "1"))
    assert r.status is S.REJECTED and "underlying price" in r.reason


async def test_perp_fills_pay_the_perp_schedule() -> None:
    v = venue()
    v.set_book(PERP.symbol, book([("2999", "3")], [("3000", "1"), ("3001", "5")]), D(3000))
    r = await v.place(req(0, "2", symbol=PERP.symbol))
    # hyperliquid taker 0.045%: 3000 x 0.00045 = 1.35 -> 135; 3001 x 0.00045 = 1.35045 -> 136
    assert (r.filled, r.fee_cents) == (D(2), 271)
    s = await v.place(req(1, "0.5", side="sell", symbol=PERP.symbol))
    assert (s.filled, s.avg_price) == (D("0.5"), D(2999))
    pos = {p.symbol: p for p in await v.positions()}
    assert pos[PERP.symbol].size == D("1.5") and pos[PERP.symbol].avg_price == D("3000.5")
    assert v.fees("perp").venue == "hyperliquid" and v.fees("option").venue == "deribit"


async def test_report_drives_the_state_machine() -> None:
    v = venue()
    order = transition(new_order(cid(0), "paper", PUT.symbol, "buy", D("2.5"), None), Sent())
    r = await v.place(req(0, "2.5"))
    after = transition(order, r.to_event())
    assert (after.state, after.filled, after.avg_price, after.venue_order_id) == (
        S.FILLED, D("2.5"), D("10.3"), "paper-1")


async def test_quote_truncates_depth() -> None:
    q = await venue().quote(PUT.symbol, depth=1)
    assert q.book.asks == (Level(D(10), D(1)),) and q.underlying_price == D(3000)
    with pytest.raises(VenueRefused):
        await venue().quote(PERP.symbol)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["buy", "sell"]),
                          st.integers(1, 40)), max_size=20))
async def test_random_orders_never_double_or_overfill(
        orders: list[tuple[int, str, int]]) -> None:
    v = venue()
    for leg, side, tenths in orders:
        r = await v.place(req(leg, str(D(tenths) / 10), side=side))
        assert r.filled <= r.qty
    assert v.order_count() == len({leg for leg, _, _ in orders})
    fills = await v.fills()
    bought = sum((f.qty for f in fills if f.side == "buy"), D(0))
    sold = sum((f.qty for f in fills if f.side == "sell"), D(0))
    assert bought <= D(8) and sold <= D("4.5")  # the book's ask and bid depth
