"""The one fill model (policies/fills.py): hand-computed walks, fees and settlements, then
hypothesis properties over random books."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.errors import InvalidInput
from policies.fills import (
    OPTION_FEES,
    PERP_FEES,
    Book,
    BookError,
    Level,
    UnknownFeeSchedule,
    cents_paid,
    cents_received,
    option_fee_cents,
    perp_fee_cents,
    settle_option,
    walk,
)

D = Decimal


def book(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> Book:
    return Book(tuple(Level(D(p), D(s)) for p, s in bids),
                tuple(Level(D(p), D(s)) for p, s in asks))


BOOK = book(bids=[("9.5", "1.5"), ("9", "3")], asks=[("10", "1"), ("10.5", "2"), ("12", "5")])


def test_buy_walks_the_asks() -> None:
    f = walk(BOOK, "buy", D("2.5"))
    assert [(lf.price, lf.qty) for lf in f.levels] == [(D(10), D(1)), (D("10.5"), D("1.5"))]
    assert (f.filled, f.remaining, f.complete) == (D("2.5"), D(0), True)
    assert f.notional == D("25.75")  # 10 + 15.75
    assert f.avg_price == D("10.3") and f.slippage == D("0.3") and f.best == D(10)


def test_buy_beyond_depth_is_partial() -> None:
    f = walk(BOOK, "buy", D(10))
    assert (f.filled, f.remaining, f.complete) == (D(8), D(2), False)
    assert f.notional == D(91)  # 10 + 21 + 60
    assert f.worst == D(12)


def test_limit_stops_the_walk() -> None:
    f = walk(BOOK, "buy", D(5), limit=D("10.5"))
    assert (f.filled, f.notional) == (D(3), D(31))
    s = walk(BOOK, "sell", D(4), limit=D("9.25"))
    assert (s.filled, s.notional) == (D("1.5"), D("14.25"))
    assert walk(BOOK, "buy", D(1), limit=D("9.99")).levels == ()


def test_sell_walks_the_bids() -> None:
    f = walk(BOOK, "sell", D(2))
    assert f.notional == D("18.75")  # 1.5 x 9.5 + 0.5 x 9
    assert f.avg_price == D("9.375") and f.slippage == D("0.125")


def test_empty_side_fills_nothing() -> None:
    f = walk(book([], [("1", "1")]), "sell", D(1))
    assert (f.filled, f.avg_price, f.best, f.slippage) == (D(0), None, None, D(0))


@pytest.mark.parametrize(("bids", "asks", "what"), [
    ([("9", "1"), ("9.5", "1")], [], "not worse"),  # bids must descend
    ([], [("10", "1"), ("10", "1")], "not worse"),  # no equal levels
    ([("9", "0")], [], "size"),
    ([("-1", "1")], [], "price"),
    ([("10", "1")], [("10", "1")], "crossed"),
])
def test_bad_books_are_refused(bids: list[tuple[str, str]], asks: list[tuple[str, str]],
                               what: str) -> None:
    with pytest.raises(BookError, match=what) as err:
        book(bids, asks)
    assert isinstance(err.value, InvalidInput)


@pytest.mark.parametrize(("side", "qty", "limit"), [("buy", "0", None), ("buy", "-1", None),
                                                    ("hold", "1", None), ("sell", "1", "-1")])
def test_bad_orders_are_refused(side: str, qty: str, limit: str | None) -> None:
    with pytest.raises(BookError):
        walk(BOOK, side, D(qty), None if limit is None else D(limit))  # type: ignore[arg-type]


def test_money_rounding() -> None:
    assert (cents_paid(D("1.001")), cents_received(D("1.009"))) == (101, 100)
    assert (cents_paid(D("2")), cents_received(D("2"))) == (200, 200)


# ------------------------------------------------------------------------------ fees


def test_deribit_option_fee_uncapped() -> None:
    # 0.03% x 3000 = 0.90 per contract < 12.5% x 10 = 1.25: 2.5 x 0.90 = 2.25 USD
    assert option_fee_cents("deribit", walk(BOOK, "buy", D("2.5")), D(3000)) == 225


def test_deribit_option_fee_capped_per_level() -> None:
    b = book([], [("4", "1"), ("8", "1")])
    # level 1: min(0.90, 12.5% x 4 = 0.50) = 0.50; level 2: min(0.90, 1.00) = 0.90
    assert option_fee_cents("deribit", walk(b, "buy", D(2)), D(3000)) == 140


def test_fee_rounds_up_to_the_cent() -> None:
    b = book([], [("3.33", "1")])
    # 0.1 x min(0.09, 0.41625) = 0.009 USD -> 1 cent
    assert option_fee_cents("deribit", walk(b, "buy", D("0.1")), D(300)) == 1


def test_perp_fees() -> None:
    b = book([], [("3000", "1"), ("3001", "5")])
    f = walk(b, "buy", D(2))  # notional 6001
    assert perp_fee_cents("hyperliquid", f) == 271  # 0.045% -> 2.70045
    assert perp_fee_cents("hyperliquid", f, "maker") == 91  # 0.015% -> 0.90015
    assert perp_fee_cents("binanceusdm", f) == 301  # 0.05% -> 3.0005
    assert perp_fee_cents("bybit", f) == 331  # 0.055% -> 3.30055
    assert perp_fee_cents("deribit", f, "maker") == 0


def test_unknown_fee_schedule_is_refused_not_free() -> None:
    f = walk(BOOK, "buy", D(1))
    with pytest.raises(UnknownFeeSchedule, match="derive"):
        option_fee_cents("derive", f, D(3000))
    with pytest.raises(UnknownFeeSchedule, match="paper"):
        perp_fee_cents("paper", f)
    assert all(s.source for s in OPTION_FEES.values())
    assert all(p.source for p in PERP_FEES.values())


# ------------------------------------------------------------------------ settlement


def test_settlement_in_the_money_put() -> None:
    s = settle_option("put", D(2600), D(2400), D(3))
    # value 200 x 3 = 600 USD; fee min(0.015% x 2400 = 0.36, 25) x 3 = 1.08
    assert (s.gross_cents, s.fee_cents, s.net_cents) == (60000, 108, 59892)


def test_settlement_out_of_the_money_is_zero() -> None:
    assert settle_option("put", D(2600), D(2700), D(3)) == settle_option(
        "call", D(2600), D(2500), D(1))
    s = settle_option("put", D(2600), D(2700), D(3))
    assert (s.gross_cents, s.fee_cents, s.net_cents) == (0, 0, 0)


def test_settlement_fee_capped_by_value() -> None:
    s = settle_option("call", D(2600), D("2600.5"), D(1))
    # value 0.5; fee min(0.39, 12.5% x 0.5 = 0.0625) -> 7 cents up; gross 50
    assert (s.gross_cents, s.fee_cents, s.net_cents) == (50, 7, 43)


@pytest.mark.parametrize("args", [("put", "0", "1", "1"), ("call", "1", "0", "1"),
                                  ("put", "1", "1", "-1"), ("straddle", "1", "1", "1")])
def test_settlement_refuses_bad_input(args: tuple[str, str, str, str]) -> None:
    kind, k, s, q = args
    with pytest.raises(BookError):
        settle_option(kind, D(k), D(s), D(q))  # type: ignore[arg-type]


# ------------------------------------------------------------------------ properties

prices = st.decimals(min_value=D("0.01"), max_value=D(5000), places=2)
sizes = st.decimals(min_value=D("0.1"), max_value=D(50), places=1)


@st.composite
def books(draw: st.DrawFn) -> Book:
    ps = sorted(draw(st.sets(prices, min_size=0, max_size=12)))
    cut = draw(st.integers(0, len(ps)))
    bids, asks = ps[:cut], ps[cut:]
    return Book(tuple(Level(p, draw(sizes)) for p in reversed(bids)),
                tuple(Level(p, draw(sizes)) for p in asks))


@settings(max_examples=400, deadline=None)
@given(books(), st.sampled_from(["buy", "sell"]), sizes, st.none() | prices,
       st.decimals(min_value=D(1), max_value=D(100000), places=2))
def test_walk_properties(b: Book, side: str, qty: Decimal, limit: Decimal | None,
                         spot: Decimal) -> None:
    f = walk(b, side, qty, limit)  # type: ignore[arg-type]
    levels = b.side_for(side)  # type: ignore[arg-type]
    depth = sum((lv.size for lv in levels), D(0))
    assert D(0) <= f.filled <= qty and f.filled <= depth
    assert f.filled + f.remaining == qty
    if limit is None:
        assert f.filled == min(qty, depth)
    for lf in f.levels:  # never beyond the limit, never more than a level holds
        assert lf.qty > 0 and lf.qty <= next(lv.size for lv in levels if lv.price == lf.price)
        if limit is not None:
            assert lf.price <= limit if side == "buy" else lf.price >= limit
    if f.levels:
        avg = f.avg_price
        assert avg is not None and f.best is not None and f.worst is not None
        lo, hi = sorted((f.best, f.worst))
        assert lo <= avg <= hi
        assert f.slippage >= 0
    fee = option_fee_cents("deribit", f, spot)
    cap = (D("0.125") * f.notional * 100).to_integral_value(rounding=ROUND_CEILING)
    per_contract = (D("0.0003") * spot * f.filled * 100).to_integral_value(
        rounding=ROUND_CEILING)
    assert 0 <= fee <= min(cap, per_contract)


@given(st.sampled_from(["put", "call"]), prices, prices, sizes)
def test_settlement_properties(kind: str, k: Decimal, s: Decimal, q: Decimal) -> None:
    r = settle_option(kind, k, s, q)  # type: ignore[arg-type]
    assert r.gross_cents >= 0 and r.fee_cents >= 0
    assert r.net_cents == r.gross_cents - r.fee_cents
    assert r.net_cents >= -1  # the fee is capped at 12.5% of the value; a cent of rounding
    if r.gross_cents == 0:
        assert r.fee_cents <= 1
