"""Reconciliation (bot/act/reconcile.py) against the paper venue: clean after the executor
did its work; a planted orphan order, a foreign order, an unknown position and a missing
fill are each found and reported, nothing adopted."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from adapters.venues.base import OrderReport, OrderRequest
from adapters.venues.paper import PaperVenue
from bot.act.executor import Executor, Leg
from bot.act.reconcile import ReconReport, diff, expected_positions, reconcile
from bot.db.engine import make_engine
from bot.db.migrate import upgrade
from bot.order_store import OrderStore
from policies.fills import Book, Level
from policies.hedge import HedgeBook, OptionHolding, PerpHolding
from policies.orders import (
    Accepted,
    OrderState,
    Sent,
    client_order_id,
    new_order,
    transition,
    venue_client_id,
)
from tests.bot.act.test_executor import BOOK, LATER, PUT, SAFE, open_leg, paper

D = Decimal


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'recon.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


def book_with(size: str) -> HedgeBook:
    return HedgeBook(options=(OptionHolding(PUT, D(size), "short"),))


async def run(engine: Engine, v: PaperVenue, expected: HedgeBook) -> ReconReport:
    orders = [s.order for s in OrderStore(engine, 1, SAFE).orders()]
    return await reconcile("deribit", v, orders, expected_positions(expected, "deribit"))


async def test_clean_after_the_executor(engine: Engine) -> None:
    v = paper()
    await Executor(OrderStore(engine, 1, SAFE), {"deribit": v}).execute(open_leg())
    report = await run(engine, v, book_with("2.5"))
    assert report.clean and report.differences == ()


async def test_planted_differences_are_each_reported(engine: Engine) -> None:
    v = paper()
    store = OrderStore(engine, 1, SAFE)
    ex = Executor(store, {"deribit": v})
    await ex.execute(open_leg())  # 2.5 of PUT, known to the store and the book
    # a resting order of ours whose answer the store never recorded
    gtc = await ex.execute(Leg("decision-9", 0, "open_option", "deribit", PUT.symbol, "buy",
                               D(5), D("10.5"), {}, "gtc"))
    # the first order left 0.5 @ 10.5 within the limit
    assert (gtc.state, gtc.filled) == (OrderState.PARTIALLY_FILLED, D("0.5"))
    v.set_book(PUT.symbol, Book((), (Level(D("10.4"), D(1)),)), D(3000))  # fills 1 more
    ghost = client_order_id(SAFE, "ghost-decision", 0, 0)  # ours, never recorded
    await v.place(OrderRequest(ghost, PUT.symbol, "buy", D(1), D(9), "gtc"))
    await v.place(OrderRequest("web123", PUT.symbol, "buy", D(2), D(8), "gtc"))  # not ours
    v.set_book(LATER.symbol, BOOK, D(3000))
    await v.place(OrderRequest("manual7", LATER.symbol, "buy", D(1)))  # a position by hand
    report = await run(engine, v, book_with("3"))  # 2.5 + the 0.5 the store knows of
    assert not report.clean
    got = {(d.kind, d.symbol, d.client_id): d.detail for d in report.differences}
    assert got == {
        ("missing_fill", PUT.symbol, gtc.client_id):
            "venue filled 1.5, store 0.5 (venue fills: paper-2-1, paper-2-2)",
        ("orphan_order", PUT.symbol, ghost): "buy 1 accepted, 0 filled",
        ("foreign_order", PUT.symbol, "web123"): "buy 2 open, venue id paper-4",
        ("position_mismatch", PUT.symbol, None): "venue holds 4.0, the book expects 3",
        ("unknown_position", LATER.symbol, None): "venue holds 1, the book expects none",
    }
    # resolving the store's order by client id removes its part of the difference
    await ex.resolve(gtc.client_id)
    after = await run(engine, v, book_with("4"))
    assert {d.kind for d in after.differences} == {"orphan_order", "foreign_order",
                                                    "unknown_position"}


def test_missing_open_order_and_hyperliquid_ids() -> None:
    cid = client_order_id(SAFE, "d", 0, 0)
    o = transition(transition(new_order(cid, "hyperliquid", "ETH", "sell", D(1)), Sent()),
                   Accepted("42"))
    assert [d.kind for d in diff("hyperliquid", [o], {}, (), (), ())] == ["missing_order"]
    listed = OrderReport(venue_client_id("hyperliquid", cid), "42", "ETH", "sell", D(1),
                         OrderState.ACCEPTED, D(0), None, 0, 0)
    assert diff("hyperliquid", [o], {}, [listed], (), ()) == ()


def test_expected_positions_from_the_book() -> None:
    book = HedgeBook(options=(OptionHolding(PUT, D(1), "short"),
                              OptionHolding(PUT, D(2), "structural"),
                              OptionHolding(LATER, D(1), "short")),
                     perps=(PerpHolding("deribit", "ETH", D("-0.5")),
                            PerpHolding("hyperliquid", "ETH", D(3))))
    assert expected_positions(book, "deribit", {("deribit", "ETH"): "ETH-PERPETUAL"}) == {
        PUT.symbol: D(3), LATER.symbol: D(1), "ETH-PERPETUAL": D("-0.5")}
