"""The ccxt venue (adapters/venues/ccxt_venue.py) on Binance USD-M: ccxt itself, keyed and
signing, against a loopback server speaking Binance's private futures API with the HMAC
signature checked (tests/adapters/venues/binance_private.py). Orders by our client id
(newClientOrderId), status by client id, a duplicate id never a second order, a timeout
after the venue accepted resolved through the executor to exactly one order."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.venues.base import OrderRequest, Venue, VenueRefused, VenueUnavailable
from adapters.venues.ccxt_venue import CcxtVenue, make_ccxt_venue
from bot.act.executor import Executor, Leg
from bot.act.reconcile import expected_positions, reconcile
from bot.book_store import BookStore
from bot.db.engine import make_engine
from bot.db.migrate import upgrade
from bot.order_store import OrderStore
from policies.fills import Book, Level
from policies.hedge import HedgeBook, PerpHolding
from policies.orders import OrderState, client_order_id
from tests.adapters.venues.binance_private import KEY, SECRET, BinancePrivate

D = Decimal
S = OrderState
SAFE = "0x5afe00000000000000000000000000000000cafe"
ETH = "ETH/USDT:USDT"  # ccxt's symbol for Binance's ETHUSDT perpetual


def cid(leg: int) -> str:
    return client_order_id(SAFE, "decision-b", leg, 0)


@pytest.fixture
async def server() -> AsyncIterator[BinancePrivate]:
    srv = BinancePrivate(int(time.time() * 1000))  # Binance checks recvWindow on real time
    await srv.start()
    srv.paper.set_book("ETHUSDT", Book((Level(D(2999), D(3)),),
                                       (Level(D(3000), D(1)), Level(D(3001), D(5)))), D(3000))
    yield srv
    await srv.stop()


@pytest.fixture
async def venue(server: BinancePrivate) -> AsyncIterator[CcxtVenue]:
    v = make_ccxt_venue("binanceusdm", (ETH,), KEY, SECRET, api_url=server.server.url,
                        timeout_s=1.0)
    yield v
    await v.close()


async def test_is_a_venue(venue: CcxtVenue) -> None:
    assert isinstance(venue, Venue)
    [inst] = await venue.instruments()
    assert (inst.symbol, inst.kind, inst.size_step) == (ETH, "perp", D("0.001"))


async def test_place_and_status_by_client_id(server: BinancePrivate, venue: CcxtVenue) -> None:
    r = await venue.place(OrderRequest(cid(0), ETH, "buy", D(2), D(3001)))
    assert (r.client_id, r.status, r.filled, r.avg_price) == (cid(0), S.FILLED, D(2),
                                                               D("3000.5"))
    at_venue = await server.paper.order_status(cid(0), "ETHUSDT")  # newClientOrderId = ours
    assert at_venue is not None and at_venue.filled == D(2)
    assert await venue.order_status(cid(0), ETH) == r
    assert await venue.order_status(cid(1), ETH) is None  # -2013 Order does not exist
    fills = await venue.fills()
    # Binance USD-M taker 0.05%: 3000 x 0.0005 = 1.50, 3001 x 0.0005 = 1.5005 -> 1.51
    assert [(f.price, f.qty, f.fee_cents) for f in fills] == [(D(3000), D(1), 150),
                                                               (D(3001), D(1), 151)]
    [pos] = await venue.positions()
    assert (pos.symbol, pos.size, pos.avg_price) == (ETH, D(2), D("3000.5"))


async def test_a_duplicate_client_id_is_not_a_second_order(server: BinancePrivate,
                                                           venue: CcxtVenue) -> None:
    first = await venue.place(OrderRequest(cid(0), ETH, "buy", D(1), D(3001)))
    again = await venue.place(OrderRequest(cid(0), ETH, "buy", D(1), D(3001)))
    assert again == first and server.placed == 1


async def test_bad_signature_is_refused_and_places_nothing(server: BinancePrivate) -> None:
    v = make_ccxt_venue("binanceusdm", (ETH,), KEY, "x" * 64, api_url=server.server.url)
    try:
        with pytest.raises(VenueRefused, match="authentication"):
            await v.place(OrderRequest(cid(0), ETH, "buy", D(1), D(3001)))
    finally:
        await v.close()
    assert server.placed == 0


async def test_timeout_after_accept_resolves_to_one_order(server: BinancePrivate,
                                                          venue: CcxtVenue,
                                                          tmp_path: Path) -> None:
    server.fault_after_accept = True
    with pytest.raises(VenueUnavailable):  # ccxt's RequestTimeout: outcome unknown
        await venue.place(OrderRequest(cid(5), ETH, "buy", D(1), D(3001)))
    assert server.placed == 1
    engine = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    upgrade(engine)
    ex = Executor(OrderStore(engine, 1, SAFE), {"binanceusdm": venue}, send_timeout_s=30,
                  budget=BookStore(engine, 1, SAFE), now_s=lambda: 1_796_000_000)
    leg = Leg("decision-b", 0, "adjust_perp", "binanceusdm", ETH, "buy", D(2), D(3001), {})
    lost = await ex.execute(leg)
    assert lost.state is S.UNKNOWN and server.placed == 2
    server.fault_after_accept = False
    assert (await ex.execute(leg)).state is S.UNKNOWN and server.placed == 2  # not resent
    [done] = await ex.reconcile()
    assert (done.state, done.filled, done.venue_order_id) == (S.FILLED, D(2), "2")
    assert server.placed == 2 and len(ex.store.orders()) == 1
    # Binance's order answer has no fee: summed from its trades (matched by order id): one
    # trade of 2 @ 3001 (the 3000 level went to cid 5): 2 x 3001 x 0.05% = 3.001 -> 301
    assert BookStore(engine, 1, SAFE).spent(1_796_000_000)[1] == 301
    # the book knows the executor's 2; the first, direct order's 1 is ours by client id but
    # unknown to the store, and Binance's trade list carries no client id: it shows up as a
    # position difference, never adopted; the executor's own fills match by order id
    report = await reconcile("binanceusdm", venue, [s.order for s in ex.store.orders()],
                             expected_positions(HedgeBook(perps=(PerpHolding(
                                 "binanceusdm", "ETH", D(2)),)), "binanceusdm",
                                 {("binanceusdm", "ETH"): ETH}))
    assert [(d.kind, d.detail) for d in report.differences] == [
        ("position_mismatch", "venue holds 3.00, the book expects 2")]
    engine.dispose()


async def test_a_429_storm_neither_loses_nor_doubles(server: BinancePrivate, venue: CcxtVenue,
                                                     tmp_path: Path) -> None:
    await venue.instruments()  # markets loaded before the storm
    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    upgrade(engine)
    ex = Executor(OrderStore(engine, 1, SAFE), {"binanceusdm": venue})
    legs = [Leg("decision-s", i, "adjust_perp", "binanceusdm", ETH, "buy", D(1), D(3001), {})
            for i in range(2)]
    server.server.storm = 3  # place leg 0, place leg 1, the next status query: all 429
    first = await ex.run(legs)
    assert [o.state for o in first] == [S.UNKNOWN, S.UNKNOWN] and server.placed == 0
    # leg 0's status query still hits the storm: it stays unknown and is not resent; leg 1
    # is found never to have reached the venue and goes out once, with a new client id
    second = await ex.run(legs)
    assert [o.state for o in second] == [S.UNKNOWN, S.FILLED] and server.placed == 1
    third = await ex.run(legs)
    assert [o.state for o in third] == [S.FILLED, S.FILLED]
    assert server.placed == 2 == server.paper.order_count()
    assert [(s.leg, s.attempt, s.order.state) for s in ex.store.orders()] == [
        (0, 0, S.REJECTED), (1, 0, S.REJECTED), (1, 1, S.FILLED), (0, 1, S.FILLED)]
    engine.dispose()
