"""bot/book_store.py on SQLite and PostgreSQL: the hedge book round-trips exactly (decimal
sizes, engaged-since), budget spent sums in integer cents per session (UTC day) and period
(UTC month), a fill is counted once, an unknown income is an error, never 0."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.book_store import BookStore, period_key, session_key
from bot.db import open_engine
from policies.hedge import (
    HedgeBook,
    Instrument,
    LayerEngagement,
    OptionHolding,
    OptionKind,
    PerpHolding,
)
from policies.risk import BudgetState

SAFE = "0x5afe00000000000000000000000000000000cafe"


def ts(y: int, m: int, d: int, h: int = 0) -> int:
    return int(datetime(y, m, d, h, tzinfo=UTC).timestamp())


BOOK = HedgeBook(  # in the store's order (by venue, symbol, layer)
    options=(OptionHolding(Instrument("deribit", "ETH-25DEC26-2250-C", "ETH", OptionKind.CALL, 2250.5,
                                      ts(2026, 12, 25, 8), Decimal("1")), Decimal("12"), "structural"),
             OptionHolding(Instrument("deribit", "ETH-27NOV26-2400-P", "ETH", OptionKind.PUT, 2400.0,
                                      ts(2026, 11, 27, 8), Decimal("0.1")), Decimal("4.3"), "short")),
    perps=(PerpHolding("hyperliquid", "ETH", Decimal("-1.234567890123456789")),),
    engaged=(LayerEngagement("ETH", "short", ts(2026, 11, 1)),
             LayerEngagement("ETH", "structural", ts(2026, 10, 1))),
    exits_pending=(7, 2**255),
)


def test_book_round_trip_and_replace(db_url: str) -> None:
    engine = open_engine(db_url)
    store = BookStore(engine, 1, SAFE)
    assert store.load_book() == HedgeBook()
    store.save_book(BOOK)
    assert store.load_book() == BOOK
    assert BookStore(engine, 2, SAFE).load_book() == HedgeBook()  # per chain
    smaller = HedgeBook(engaged=(LayerEngagement("ETH", "intermediate", 5),))
    store.save_book(smaller)
    assert store.load_book() == smaller
    engine.dispose()


def test_budget_spent_per_session_and_period(db_url: str) -> None:
    engine = open_engine(db_url)
    store = BookStore(engine, 1, SAFE)
    now = ts(2026, 12, 3, 12)
    with pytest.raises(LookupError, match="budget period 2026-12 is unknown"):
        store.budget_state(now)
    store.set_expected_income("2026-12", 6_000_000_00)
    store.set_expected_income("2026-12", 6_000_000_01)  # updated, not duplicated
    assert store.record_spend(ts(2026, 11, 30, 23), 999, "premium", "o-nov")  # other period
    assert store.record_spend(ts(2026, 12, 1, 1), 10_000_000_000_07, "premium", "o1")  # > 2**32
    assert store.record_spend(ts(2026, 12, 3, 0), 250, "fee", "o2")
    assert store.record_spend(ts(2026, 12, 3, 11), 1_05, "premium", "o3")
    assert not store.record_spend(ts(2026, 12, 3, 11), 1_05, "premium", "o3")  # counted once
    assert store.spent(now) == (10_000_000_000_07 + 250 + 1_05, 250 + 1_05)
    assert store.budget_state(now) == BudgetState(6_000_000_01, 10_000_000_000_07 + 355, 355)
    assert store.budget_state(now, 42).expected_fee_income_cents == 42
    assert BookStore(engine, 1, "0x" + "0" * 40).spent(now) == (0, 0)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="cents must be a positive integer"):
            store.record_spend(now, bad, "premium", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="what must be one of premium, fee"):
        store.record_spend(now, 1, "gift", "y")
    engine.dispose()


def test_keys_are_utc() -> None:
    assert session_key(ts(2026, 12, 31, 23)) == "2026-12-31"
    assert period_key(ts(2026, 12, 31, 23)) == "2026-12"
    assert session_key(ts(2027, 1, 1)) == "2027-01-01" and period_key(ts(2027, 1, 1)) == "2027-01"
