"""The executor (bot/act/executor.py) on the paper venue and a real SQLite order store:
every leg executed once, an answer lost after the venue accepted resolved by client id to
exactly one order at the venue, a crash at each instrumented point followed by a restart
never doubles and never forgets an order, fills charged to the budget once.

Faults come from ``Faulty``, which wraps the real paper venue: the venue does (or does
not) see the request, and only the answer is lost."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from adapters.venues.base import (
    BookQuote,
    FeeInfo,
    FillReport,
    InstrumentInfo,
    OrderReport,
    OrderRequest,
    PositionReport,
    ProductKind,
    Venue,
    VenueUnavailable,
)
from adapters.venues.paper import PaperVenue
from bot.act.executor import Executor, Leg, legs_of
from bot.book_store import BookStore
from bot.db.engine import make_engine
from bot.db.migrate import upgrade
from bot.order_store import OrderStore, UnresolvedAttempt
from policies.errors import InvalidInput
from policies.fills import Book, Level
from policies.hedge import (
    AdjustPerp,
    EngageLayer,
    Instrument,
    Intent,
    OpenOption,
    OptionKind,
    RollOption,
)
from policies.orders import OrderState, client_order_id

D = Decimal
S = OrderState
SAFE = "0x5afe00000000000000000000000000000000cafe"
NOW = 1_796_000_000  # 2026-11-29
EXPIRY = 1_798_272_000
PUT = Instrument("deribit", "ETH-26DEC26-2600-P", "ETH", OptionKind.PUT, 2600.0, EXPIRY,
                 D("0.1"))
LATER = Instrument("deribit", "ETH-29JAN27-2500-P", "ETH", OptionKind.PUT, 2500.0,
                   EXPIRY + 33 * 86400, D("0.1"))
BOOK = Book((Level(D("9.5"), D("1.5")),), (Level(D(10), D(1)), Level(D("10.5"), D(2)),
                                            Level(D(12), D(5))))


class Crash(Exception):
    """Stands for the process dying at a checkpoint."""


def crash_at(point: str) -> Callable[[str], None]:
    def checkpoint(name: str) -> None:
        if name == point:
            raise Crash(name)
    return checkpoint


class Faulty:
    """The paper venue, with answers that get lost: ``place_fault`` "before" (the request
    never reaches the venue) or "after" (the venue takes the order, the answer is lost);
    ``status_fault``: status queries fail."""

    def __init__(self, inner: PaperVenue) -> None:
        self.inner = inner
        self.name = inner.name
        self.place_fault: str | None = None
        self.status_fault = False

    async def instruments(self) -> tuple[InstrumentInfo, ...]:
        return await self.inner.instruments()

    async def quote(self, symbol: str, depth: int = 10) -> BookQuote:
        return await self.inner.quote(symbol, depth)

    async def place(self, request: OrderRequest) -> OrderReport:
        if self.place_fault == "before":
            raise TimeoutError
        report = await self.inner.place(request)
        if self.place_fault == "after":
            raise TimeoutError
        return report

    async def cancel(self, client_id: str, symbol: str) -> OrderReport:
        return await self.inner.cancel(client_id, symbol)

    async def order_status(self, client_id: str, symbol: str) -> OrderReport | None:
        if self.status_fault:
            raise VenueUnavailable("503 from the venue")
        return await self.inner.order_status(client_id, symbol)

    async def open_orders(self) -> tuple[OrderReport, ...]:
        return await self.inner.open_orders()

    async def positions(self) -> tuple[PositionReport, ...]:
        return await self.inner.positions()

    async def fills(self, client_id: str | None = None) -> tuple[FillReport, ...]:
        return await self.inner.fills(client_id)

    def fees(self, kind: ProductKind) -> FeeInfo:
        return self.inner.fees(kind)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'act.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


def paper() -> PaperVenue:
    ticks = iter(range(10**6))
    v = PaperVenue(clock_ms=lambda: next(ticks))
    for inst in (PUT, LATER):
        v.list_instrument(InstrumentInfo(inst.symbol, "option", "ETH", D("0.1"), D("0.05"),
                                         "put", D(str(inst.strike)), inst.expiry * 1000))
        v.set_book(inst.symbol, BOOK, D(3000))
    return v


def open_leg(size: str = "2.5") -> Leg:
    intent = OpenOption("ETH", "short", PUT, D(size), 10.5, 2625, "iv stress")
    [leg] = legs_of("decision-1", [intent])
    return leg


def executor(engine: Engine, venue: Venue,
             checkpoint: Callable[[str], None] = lambda point: None) -> Executor:
    return Executor(OrderStore(engine, 1, SAFE), {"deribit": venue},
                    budget=BookStore(engine, 1, SAFE), now_s=lambda: NOW, checkpoint=checkpoint)


def spent(engine: Engine) -> int:
    return BookStore(engine, 1, SAFE).spent(NOW)[1]


async def test_a_leg_fills_once_and_is_charged_once(engine: Engine) -> None:
    v = paper()
    ex = executor(engine, v)
    o = await ex.execute(open_leg())
    assert (o.state, o.filled, o.avg_price) == (S.FILLED, D("2.5"), D("10.3"))
    assert o.client_id == client_order_id(SAFE, "decision-1", 0, 0)
    # premium 25.75 USD + Deribit fee 0.90 x 1 + 0.90 x 1.5 = 2.25 USD
    assert spent(engine) == 2575 + 225
    again = await ex.execute(open_leg())
    assert again == o and v.order_count() == 1 and spent(engine) == 2800
    assert [h[2] for h in ex.store.history(o.client_id)] == [
        "pending_submit", "submitted", "filled"]


async def test_timeout_after_the_venue_accepted_is_one_order_after_resolution(
        engine: Engine) -> None:
    v = Faulty(paper())
    v.place_fault = "after"
    ex = executor(engine, v)
    lost = await ex.execute(open_leg())
    assert lost.state is S.UNKNOWN and "TimeoutError" in lost.reason
    assert v.inner.order_count() == 1  # the venue has it
    v.place_fault = None
    assert (await ex.execute(open_leg())).state is S.UNKNOWN  # never resubmitted
    with pytest.raises(UnresolvedAttempt):
        ex.store.next_attempt("decision-1", 0)
    v.status_fault = True
    assert [o.state for o in await ex.reconcile()] == [S.UNKNOWN]  # still unknown
    v.status_fault = False
    [resolved] = await ex.reconcile()
    assert (resolved.state, resolved.filled, resolved.avg_price) == (
        S.FILLED, D("2.5"), D("10.3"))
    assert v.inner.order_count() == 1 == len(ex.store.orders())
    assert spent(engine) == 2800
    assert await ex.reconcile() == [] and spent(engine) == 2800


async def test_an_order_lost_before_the_venue_is_retried_with_a_new_id(engine: Engine) -> None:
    v = Faulty(paper())
    v.place_fault = "before"
    ex = executor(engine, v)
    assert (await ex.execute(open_leg())).state is S.UNKNOWN
    v.place_fault = None
    [gone] = await ex.reconcile()
    assert gone.state is S.REJECTED and "not found" in gone.reason
    attempt = ex.store.next_attempt("decision-1", 0)
    assert attempt == 1
    o = await ex.execute(open_leg(), attempt)
    assert o.state is S.FILLED and o.client_id == client_order_id(SAFE, "decision-1", 0, 1)
    assert v.inner.order_count() == 1 and len(ex.store.orders()) == 2


@pytest.mark.parametrize(("point", "state_after_crash", "at_venue"), [
    ("after_intent_row", S.PENDING_SUBMIT, 0),
    ("before_send", S.SUBMITTED, 0),
    ("after_answer", S.SUBMITTED, 1),
])
async def test_a_crash_then_restart_never_doubles_nor_forgets(
        engine: Engine, point: str, state_after_crash: OrderState, at_venue: int) -> None:
    v = paper()
    with pytest.raises(Crash):
        await executor(engine, v, checkpoint=crash_at(point)).execute(open_leg())
    [row] = OrderStore(engine, 1, SAFE).orders()
    assert row.order.state is state_after_crash and v.order_count() == at_venue
    # restart: reconcile first, then carry the plan out again
    ex = executor(engine, v)
    await ex.reconcile()
    o = await ex.execute(open_leg())
    if o.state is S.REJECTED:  # sent never: the venue did not have it, a new attempt
        o = await ex.execute(open_leg(), ex.store.next_attempt("decision-1", 0))
    assert o.state is S.FILLED and v.order_count() == 1
    assert spent(engine) == 2800


async def test_partial_ioc_is_charged_for_what_filled(engine: Engine) -> None:
    ex = executor(engine, paper())
    o = await ex.execute(Leg("decision-2", 0, "open_option", "deribit", PUT.symbol, "buy",
                             D(10), D(12), {}))
    # 1 x 10 + 2 x 10.5 + 5 x 12 = 91 USD; fee 0.90 per contract x 8 = 7.20
    assert (o.state, o.filled) == (S.CANCELLED, D(8))
    assert spent(engine) == 9100 + 720


async def test_a_venue_rejection_is_recorded_and_charges_nothing(engine: Engine) -> None:
    ex = executor(engine, paper())
    o = await ex.execute(Leg("decision-3", 0, "open_option", "deribit", "ETH-NOPE", "buy",
                             D(1), None, {}))
    assert o.state is S.REJECTED and "not listed" in o.reason and spent(engine) == 0
    with pytest.raises(InvalidInput, match="okx"):
        await ex.execute(Leg("decision-3", 1, "open_option", "okx", PUT.symbol, "buy", D(1),
                             None, {}))


def test_legs_of_a_decision() -> None:
    intents: list[Intent] = [
        AdjustPerp("ETH", "hyperliquid", D("-0.5"), D("-0.5"), "delta"),
        OpenOption("ETH", "short", PUT, D(1), 10.5, 1050, "iv"),
        EngageLayer("ETH", "short", NOW, "iv"),
        RollOption("ETH", "intermediate", PUT, D(2), LATER, D(2), 8.0, 1600, "roll"),
    ]
    legs = legs_of("d", intents, {("hyperliquid", "ETH"): "ETH/USDC:USDC"})
    assert [(lg.leg, lg.kind, lg.symbol, lg.side, lg.size) for lg in legs] == [
        (0, "roll_option", PUT.symbol, "sell", D(2)),
        (1, "roll_option", LATER.symbol, "buy", D(2)),
        (2, "open_option", PUT.symbol, "buy", D(1)),
        (3, "adjust_perp", "ETH/USDC:USDC", "sell", D("0.5")),
    ]
    assert legs == legs_of("d", list(reversed(intents)), {("hyperliquid", "ETH"): "ETH/USDC:USDC"})
    with pytest.raises(InvalidInput, match="perp symbol"):
        legs_of("d", intents)
