"""adapters/market/options.parse_chain on ccxt-shaped chains: coin-quoted premiums times the
forward, USD-quoted ones as they are, unknown values None (never 0), unusable rows skipped."""

from __future__ import annotations

from decimal import Decimal

from adapters.market.options import parse_chain, size_step
from policies.hedge import OptionKind

EXP_MS = 1_800_000_000_000


def market(symbol: str, *, strike: object = 2500.0, kind: str = "put", settle: str = "ETH",
           min_amount: object = 1.0) -> dict[str, object]:
    return {"id": symbol.split(":")[-1], "symbol": symbol, "option": True, "strike": strike,
            "expiry": EXP_MS, "optionType": kind, "settle": settle,
            "limits": {"amount": {"min": min_amount}}, "precision": {"amount": 0.1}}


def row(bid: object = 0.02, ask: object = 0.03, iv: object = 65.0, quote: str = "ETH",
        forward: object = 3000.0) -> dict[str, object]:
    return {"bidPrice": bid, "askPrice": ask, "openInterest": 12.5, "underlyingPrice": forward,
            "timestamp": None, "info": {"mark_iv": iv, "quote_currency": quote,
                                        "creation_timestamp": EXP_MS - 86_400_000}}


def test_coin_quoted_premium_is_scaled_by_the_forward() -> None:
    m = market("ETH/USD:ETH-A-2500-P")
    (q,) = parse_chain("deribit", "ETH", {m["symbol"]: row()}, {m["symbol"]: m})  # type: ignore[dict-item]
    assert q.bid == 0.02 * 3000.0 and q.ask == 0.03 * 3000.0 and q.mark_iv == 0.65
    assert q.instrument.symbol == "ETH-A-2500-P" and q.instrument.kind is OptionKind.PUT
    assert q.instrument.expiry == EXP_MS // 1000 and q.instrument.size_step == Decimal("1.0")
    assert q.as_of == (EXP_MS - 86_400_000) // 1000 and q.open_interest == 12.5


def test_usd_quoted_premium_is_kept() -> None:
    m = market("ETH/USDC:USDC-B-2500-C", kind="call", settle="USDC")
    (q,) = parse_chain("okx", "ETH", {m["symbol"]: row(bid=55.0, ask=57.5, quote="USDC")},  # type: ignore[dict-item]
                       {m["symbol"]: m})
    assert (q.bid, q.ask, q.instrument.kind) == (55.0, 57.5, OptionKind.CALL)


def test_unknown_values_stay_unknown_and_bad_rows_are_skipped() -> None:
    good = market("ETH/USD:ETH-C-2500-P")
    no_strike = market("ETH/USD:ETH-D-0-P", strike=None)
    no_kind = market("ETH/USD:ETH-E-2500-X", kind="straddle")
    rows = {good["symbol"]: row(bid=None, ask=float("nan"), iv="x", forward=3000.0),
            no_strike["symbol"]: row(), no_kind["symbol"]: row(), "NOT/LISTED": row()}
    markets = {m["symbol"]: m for m in (good, no_strike, no_kind)}
    (q,) = parse_chain("deribit", "ETH", rows, markets)  # type: ignore[arg-type]
    assert (q.bid, q.ask, q.mark_iv) == (None, None, None)
    (no_fwd,) = parse_chain("deribit", "ETH", {good["symbol"]: row(forward=None)},  # type: ignore[dict-item]
                            {good["symbol"]: good})
    assert no_fwd.bid is None and no_fwd.forward is None  # a coin price without a forward


def test_size_step_prefers_the_minimum_amount() -> None:
    assert size_step(market("x", min_amount=0.5)) == Decimal("0.5")
    assert size_step(market("x", min_amount=None)) == Decimal("0.1")
    assert size_step({"limits": {}, "precision": {}}) is None
