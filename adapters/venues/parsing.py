"""Pure parsing of ccxt's unified structures into the venue reports (adapters/venues/base.py),
and how our client id travels in each venue's ccxt request.

ccxt has already parsed the venue's own wire format into its unified order/trade/position
dicts; these functions turn those into exact, typed reports (Decimal through ``str``, never
through float arithmetic) and refuse what they cannot read rather than guess: a missing
amount, an unknown status, a fee in a currency without a USD price are ``UnparsableAnswer``
(the executor treats an answer it cannot read as a lost answer: UNKNOWN).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.venues.base import FillReport, OrderReport, PositionReport, VenueUnavailable
from policies.errors import InvalidInput
from policies.fills import cents_paid
from policies.orders import OrderState, Side, from_venue_id, venue_client_id

__all__ = ["CCXT_CLIENT_ID_PARAM", "UnparsableAnswer", "client_id_params", "fee_cents",
           "fill_report", "order_report", "position_report"]

S = OrderState

# The ccxt ``params`` key that carries our client id into each venue's field
# (policies/orders.py VENUE_ID_RULES names the field): ccxt maps the unified
# ``clientOrderId`` to newClientOrderId (Binance), orderLinkId (Bybit), clOrdId (OKX), cloid
# (Hyperliquid) and label (Derive); its Deribit createOrder passes ``label`` through as is.
CCXT_CLIENT_ID_PARAM: Mapping[str, str] = {
    "binanceusdm": "clientOrderId", "bybit": "clientOrderId", "okx": "clientOrderId",
    "hyperliquid": "clientOrderId", "derive": "clientOrderId", "deribit": "label",
}
# Currencies counted as US dollars for fees (stablecoin fees at par, as the budget does).
USD_LIKE = frozenset({"USD", "USDT", "USDC"})


class UnparsableAnswer(VenueUnavailable):
    """A venue answer that cannot be read: its outcome is unknown, like a timeout."""


def client_id_params(venue: str, client_id: str) -> dict[str, str]:
    """The ccxt params that send our client id to ``venue``."""
    key = CCXT_CLIENT_ID_PARAM.get(venue)
    if key is None:
        raise InvalidInput(f"venue {venue!r} has no ccxt client id mapping (known: "
                           f"{', '.join(sorted(CCXT_CLIENT_ID_PARAM))})")
    return {key: venue_client_id(venue, client_id)}


def _dec(venue: str, what: str, value: Any, *, required: bool = True) -> Decimal | None:
    if value is None:
        if required:
            raise UnparsableAnswer(f"{venue}: answer without {what}")
        return None
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError) as err:
        raise UnparsableAnswer(f"{venue}: {what} {value!r} is not a number") from err
    if not d.is_finite():
        raise UnparsableAnswer(f"{venue}: {what} {value!r} is not finite")
    return d


def _req(venue: str, what: str, value: Any) -> Decimal:
    d = _dec(venue, what, value)
    assert d is not None
    return d


def _side(venue: str, value: Any) -> Side:
    if value == "buy":
        return "buy"
    if value == "sell":
        return "sell"
    raise UnparsableAnswer(f"{venue}: side {value!r}")


def fee_cents(venue: str, fees: Any, usd_prices: Mapping[str, Decimal]) -> int:
    """Fees of a unified order or trade (``fee`` or ``fees``) in cents, rounded up; a fee
    in a coin is converted at ``usd_prices[coin]``, and refused without one."""
    items = fees if isinstance(fees, list) else [fees] if fees else []
    usd = Decimal(0)
    for f in items:
        if not isinstance(f, Mapping) or f.get("cost") is None:
            continue
        cost = _req(venue, "fee cost", f["cost"])
        cur = str(f.get("currency") or "").upper()
        if cur in USD_LIKE:
            usd += cost
        elif cur in usd_prices:
            usd += cost * usd_prices[cur]
        else:
            raise UnparsableAnswer(f"{venue}: fee of {cost} {cur or '(no currency)'} without a "
                                   "USD price")
    return cents_paid(usd)


def _status(venue: str, status: Any, amount: Decimal, filled: Decimal) -> OrderState:
    if status == "open":
        return S.ACCEPTED if filled == 0 else S.PARTIALLY_FILLED
    if status == "closed":  # ccxt: done; a closed order short of its amount was cancelled
        return S.FILLED if filled == amount else S.CANCELLED
    known = {"canceled": S.CANCELLED, "cancelled": S.CANCELLED, "expired": S.EXPIRED,
             "rejected": S.REJECTED}
    if status in known:
        return known[status]
    raise UnparsableAnswer(f"{venue}: order status {status!r}")


def order_report(venue: str, o: Mapping[str, Any],
                 usd_prices: Mapping[str, Decimal] | None = None) -> OrderReport:
    """A unified ccxt order as an ``OrderReport`` (client id mapped back to ours when it is
    one of ours, else the venue's value as is)."""
    amount = _req(venue, "amount", o.get("amount"))
    filled = _req(venue, "filled", o.get("filled"))
    raw_cid = str(o.get("clientOrderId") or "")
    avg = _dec(venue, "average", o.get("average"), required=False) if filled else None
    if filled and avg is None:
        raise UnparsableAnswer(f"{venue}: {filled} filled without an average price")
    return OrderReport(
        client_id=from_venue_id(venue, raw_cid) or raw_cid,
        venue_order_id=str(o.get("id") or ""),
        symbol=str(o.get("symbol") or ""),
        side=_side(venue, o.get("side")),
        qty=amount,
        status=_status(venue, o.get("status"), amount, filled),
        filled=filled,
        avg_price=avg,
        fee_cents=fee_cents(venue, o.get("fees") or o.get("fee"), usd_prices or {}),
        ts_ms=int(o.get("lastUpdateTimestamp") or o.get("timestamp") or 0),
        reason=str((o.get("info") or {}).get("reject_reason") or "")
        if isinstance(o.get("info"), Mapping) else "",
    )


def fill_report(venue: str, t: Mapping[str, Any],
                usd_prices: Mapping[str, Decimal] | None = None) -> FillReport:
    raw_cid = str(t.get("clientOrderId") or (t.get("info") or {}).get("clientOrderId") or "")
    taker = t.get("takerOrMaker")
    return FillReport(
        fill_id=str(t.get("id") or ""),
        client_id=from_venue_id(venue, raw_cid) or raw_cid,
        venue_order_id=str(t.get("order") or ""),
        symbol=str(t.get("symbol") or ""),
        side=_side(venue, t.get("side")),
        qty=_req(venue, "amount", t.get("amount")),
        price=_req(venue, "price", t.get("price")),
        fee_cents=fee_cents(venue, t.get("fees") or t.get("fee"), usd_prices or {}),
        liquidity="maker" if taker == "maker" else "taker",
        ts_ms=int(t.get("timestamp") or 0),
    )


def position_report(venue: str, p: Mapping[str, Any]) -> PositionReport:
    """A unified position: size = contracts x contractSize, negative when short."""
    contracts = _req(venue, "contracts", p.get("contracts"))
    size = contracts * (_dec(venue, "contractSize", p.get("contractSize"), required=False)
                        or Decimal(1))
    side = p.get("side")
    if side == "short":
        size = -abs(size)
    elif side not in ("long", None):
        raise UnparsableAnswer(f"{venue}: position side {side!r}")
    return PositionReport(str(p.get("symbol") or ""), size,
                          _dec(venue, "entryPrice", p.get("entryPrice"), required=False))
