"""Parsing ccxt unified structures into venue reports (adapters/venues/parsing.py): exact
decimals, our client ids mapped back, unknown things refused rather than guessed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from adapters.venues.parsing import (
    UnparsableAnswer,
    client_id_params,
    fee_cents,
    fill_report,
    order_report,
    position_report,
)
from policies.errors import InvalidInput, Transient
from policies.orders import OrderState, client_order_id, venue_client_id

D = Decimal
CID = client_order_id("0x5afe00000000000000000000000000000000cafe", "d", 0, 0)


def unified(**kw: Any) -> dict[str, Any]:
    o: dict[str, Any] = {"id": "8389765", "clientOrderId": CID, "symbol": "ETH/USDT:USDT",
                         "side": "buy", "amount": 2.0, "filled": 2.0, "average": 3000.5,
                         "status": "closed", "timestamp": 1700000000000,
                         "fee": {"cost": 2.70045, "currency": "USDT"}}
    o.update(kw)
    return o


def test_filled_order() -> None:
    r = order_report("binanceusdm", unified())
    assert (r.client_id, r.venue_order_id, r.status, r.filled, r.avg_price, r.fee_cents) == (
        CID, "8389765", OrderState.FILLED, D("2.0"), D("3000.5"), 271)


@pytest.mark.parametrize(("status", "filled", "want"), [
    ("open", 0.0, OrderState.ACCEPTED), ("open", 0.5, OrderState.PARTIALLY_FILLED),
    ("closed", 0.5, OrderState.CANCELLED), ("canceled", 0.0, OrderState.CANCELLED),
    ("expired", 0.0, OrderState.EXPIRED), ("rejected", 0.0, OrderState.REJECTED)])
def test_statuses(status: str, filled: float, want: OrderState) -> None:
    assert order_report("okx", unified(status=status, filled=filled)).status is want


@pytest.mark.parametrize(("kw", "what"), [
    ({"status": "weird"}, "status"), ({"amount": None}, "amount"),
    ({"average": None}, "average"), ({"side": "long"}, "side"),
    ({"filled": "NaN"}, "finite"), ({"fee": {"cost": 0.001, "currency": "ETH"}}, "USD price")])
def test_unreadable_answers_are_refused(kw: dict[str, Any], what: str) -> None:
    with pytest.raises(UnparsableAnswer, match=what) as err:
        order_report("bybit", unified(**kw))
    assert isinstance(err.value, Transient)  # an answer we cannot read: outcome unknown


def test_coin_fee_with_a_price_and_several_fees() -> None:
    fees = [{"cost": 0.0003, "currency": "ETH"}, {"cost": "0.10", "currency": "USDC"}]
    # 0.0003 x 3000 = 0.90 + 0.10 = 1.00 USD
    assert fee_cents("deribit", fees, {"ETH": D(3000)}) == 100
    assert fee_cents("deribit", None, {}) == 0


def test_hyperliquid_cloid_maps_back_and_foreign_ids_stay() -> None:
    r = order_report("hyperliquid", unified(clientOrderId=venue_client_id("hyperliquid", CID)))
    assert r.client_id == CID
    assert order_report("binanceusdm", unified(clientOrderId="web_abc")).client_id == "web_abc"


def test_fill_and_position() -> None:
    f = fill_report("binanceusdm", {"id": "698759", "order": "8389765", "symbol": "ETH/USDT:USDT",
                                    "side": "sell", "amount": 0.5, "price": 2999.9,
                                    "takerOrMaker": "maker", "timestamp": 5,
                                    "fee": {"cost": 0.15, "currency": "USDT"},
                                    "info": {"clientOrderId": CID}})
    assert (f.client_id, f.qty, f.price, f.liquidity, f.fee_cents) == (
        CID, D("0.5"), D("2999.9"), "maker", 15)
    p = position_report("okx", {"symbol": "ETH/USDT:USDT", "contracts": 3, "contractSize": 0.1,
                                "side": "short", "entryPrice": 3001.5})
    assert (p.size, p.avg_price) == (D("-0.3"), D("3001.5"))


def test_client_id_params_per_venue() -> None:
    assert client_id_params("deribit", CID) == {"label": CID}
    assert client_id_params("okx", CID) == {"clientOrderId": CID}
    assert client_id_params("hyperliquid", CID) == {
        "clientOrderId": venue_client_id("hyperliquid", CID)}
    with pytest.raises(InvalidInput, match="kraken"):
        client_id_params("kraken", CID)
