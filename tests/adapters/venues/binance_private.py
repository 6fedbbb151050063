"""A loopback Binance USD-M futures server for the private order API, as Binance's public
docs describe it (developers.binance.com, USDⓈ-M Futures: New Order, Query Order, Cancel
Order, Current All Open Orders, Account Trade List, Position Information), with the
matching done by the paper venue (policies/fills.py) behind the wire format.

Authentication is checked as Binance does: the ``X-MBX-APIKEY`` header, and ``signature``
= hex HMAC-SHA256(secret, total params) where total params are the query string followed by
the request body, without the signature itself. A bad key or signature gets Binance's
-2014/-1022 answers. ``newClientOrderId`` is unique among the account's orders: a second
order with an id in use gets -4116 "ClientOrderId is duplicated." (mapped by ccxt to
DuplicateOrderId). Faults: ``fault_after_accept`` accepts the order and then never answers
(the client times out after the venue took it).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from adapters.venues.base import InstrumentInfo, OrderReport, OrderRequest, TimeInForce
from adapters.venues.paper import PaperVenue
from policies.orders import OrderState, Side
from tests.support.venue_servers import RATE_LIMITED, FundingTape, VenueServer, binanceusdm

SYMBOL = "ETHUSDT"
KEY = "k" * 64
SECRET = "s" * 64
_STATUS = {OrderState.ACCEPTED: "NEW", OrderState.PARTIALLY_FILLED: "PARTIALLY_FILLED",
           OrderState.FILLED: "FILLED", OrderState.CANCELLED: "CANCELED",
           OrderState.EXPIRED: "EXPIRED", OrderState.REJECTED: "REJECTED"}


class _FormServer(VenueServer):
    """VenueServer for form-encoded POST bodies (its own dispatch reads JSON bodies).
    ``storm``: that many private requests get Binance's 429 answer first (not processed)."""

    storm: int = 0

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.hits.append((request.method, request.path, dict(request.query)))
        if self.storm > 0 and "exchangeInfo" not in request.path:
            self.storm -= 1
            return RATE_LIMITED["binanceusdm"]()
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            return web.json_response({"error": f"no route {request.method} {request.path}"},
                                     status=404)
        payload = await handler(request)
        if isinstance(payload, web.StreamResponse):
            return payload
        return web.json_response(payload)


def _err(code: int, msg: str, status: int = 400) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


class BinancePrivate:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.paper = PaperVenue({SYMBOL: InstrumentInfo(SYMBOL, "perp", "ETH", Decimal("0.001"),
                                                         Decimal("0.01"))},
                                fee_venues={"perp": "binanceusdm", "option": "deribit"},
                                clock_ms=lambda: self.now_ms)
        public = binanceusdm(now_ms, FundingTape(now_ms, 8, [0.0001]), 0.0001)
        self.server = _FormServer("binanceusdm", routes=dict(public.routes), now_ms=now_ms)
        self.fault_after_accept = False
        self.placed = 0  # orders the matching engine took
        self.by_venue_id: dict[str, str] = {}  # orderId -> client id
        r = self.server.routes
        r[("POST", "/fapi/v1/order")] = self._new_order
        r[("GET", "/fapi/v1/order")] = self._query_order
        r[("DELETE", "/fapi/v1/order")] = self._cancel_order
        r[("GET", "/fapi/v1/openOrders")] = self._open_orders
        r[("GET", "/fapi/v1/userTrades")] = self._user_trades
        r[("GET", "/fapi/v2/positionRisk")] = self._positions
        r[("GET", "/fapi/v3/positionRisk")] = self._positions
        r[("GET", "/fapi/v1/leverageBracket")] = self._brackets

    async def start(self) -> str:
        await self.server.start()
        return self.server.url

    async def stop(self) -> None:
        await self.server.stop()

    # ------------------------------------------------------------------- auth
    async def _auth(self, request: web.Request) -> dict[str, str] | web.Response:
        if request.headers.get("X-MBX-APIKEY") != KEY:
            return _err(-2014, "API-key format invalid.", 401)
        query = request.rel_url.raw_query_string
        body = await request.text() if request.can_read_body else ""
        total = "&".join(p for p in (query, body) if p)
        unsigned, _, signature = total.rpartition("&signature=")
        want = hmac.new(SECRET.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, want):
            return _err(-1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(unsigned, keep_blank_values=True))
        if "timestamp" not in params:
            return _err(-1102, "Mandatory parameter 'timestamp' was not sent.")
        return params

    # ----------------------------------------------------------------- answers
    def _order_json(self, r: OrderReport, tif: str = "IOC") -> dict[str, Any]:
        return {"orderId": int(r.venue_order_id.split("-")[1]), "symbol": SYMBOL,
                "status": _STATUS[r.status], "clientOrderId": r.client_id,
                "price": "0", "avgPrice": str(r.avg_price or 0), "origQty": str(r.qty),
                "executedQty": str(r.filled),
                "cumQuote": str((r.avg_price or 0) * r.filled), "timeInForce": tif,
                "type": "LIMIT", "reduceOnly": False, "closePosition": False,
                "side": r.side.upper(), "positionSide": "BOTH", "stopPrice": "0",
                "workingType": "CONTRACT_PRICE", "priceProtect": False,
                "origType": "LIMIT", "updateTime": self.now_ms, "time": self.now_ms}

    async def _new_order(self, request: web.Request) -> Any:
        p = await self._auth(request)
        if isinstance(p, web.Response):
            return p
        cid = p.get("newClientOrderId", "")
        if await self.paper.order_status(cid, SYMBOL) is not None:
            return _err(-4116, "ClientOrderId is duplicated.")
        price = Decimal(p["price"]) if "price" in p else None
        tif: TimeInForce = "ioc" if p.get("timeInForce", "GTC") == "IOC" else "gtc"
        side: Side = "buy" if p["side"] == "BUY" else "sell"
        report = await self.paper.place(OrderRequest(cid, SYMBOL, side, Decimal(p["quantity"]),
                                                     price, tif))
        self.placed += 1
        self.by_venue_id[report.venue_order_id] = cid
        if report.status is OrderState.REJECTED:
            return _err(-2010, f"Order would immediately trigger. {report.reason}")
        if self.fault_after_accept:
            await asyncio.Event().wait()  # accepted; the answer never comes
        return self._order_json(report, p.get("timeInForce", "GTC"))

    async def _query_order(self, request: web.Request) -> Any:
        p = await self._auth(request)
        if isinstance(p, web.Response):
            return p
        cid = p.get("origClientOrderId") or self.by_venue_id.get(f"paper-{p.get('orderId')}", "")
        r = await self.paper.order_status(cid, SYMBOL)
        if r is None:
            return _err(-2013, "Order does not exist.")
        return self._order_json(r)

    async def _cancel_order(self, request: web.Request) -> Any:
        p = await self._auth(request)
        if isinstance(p, web.Response):
            return p
        cid = p.get("origClientOrderId", "")
        if await self.paper.order_status(cid, SYMBOL) is None:
            return _err(-2011, "Unknown order sent.")
        try:
            r = await self.paper.cancel(cid, SYMBOL)
        except Exception:
            return _err(-2011, "Unknown order sent.")
        return self._order_json(r)

    async def _open_orders(self, request: web.Request) -> Any:
        p = await self._auth(request)
        if isinstance(p, web.Response):
            return p
        return [self._order_json(r, "GTC") for r in await self.paper.open_orders()]

    async def _user_trades(self, request: web.Request) -> Any:
        p = await self._auth(request)
        if isinstance(p, web.Response):
            return p
        out = []
        for i, f in enumerate(await self.paper.fills()):
            out.append({"buyer": f.side == "buy", "commission": str(Decimal(f.fee_cents) / 100),
                        "commissionAsset": "USDT", "id": 1000 + i,
                        "maker": f.liquidity == "maker",
                        "orderId": int(f.venue_order_id.split("-")[1]), "price": str(f.price),
                        "qty": str(f.qty), "quoteQty": str(f.qty * f.price),
                        "realizedPnl": "0", "side": f.side.upper(), "positionSide": "BOTH",
                        "symbol": SYMBOL, "time": self.now_ms})
        return out

    async def _brackets(self, request: web.Request) -> Any:
        p = await self._auth(request)
        if isinstance(p, web.Response):
            return p
        return [{"symbol": SYMBOL, "brackets": [
            {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0,
             "maintMarginRatio": 0.004, "cum": 0.0}]}]

    async def _positions(self, request: web.Request) -> Any:
        p = await self._auth(request)
        if isinstance(p, web.Response):
            return p
        out = []
        for pos in await self.paper.positions():
            out.append({"symbol": SYMBOL, "positionAmt": str(pos.size),
                        "entryPrice": str(pos.avg_price), "breakEvenPrice": "0",
                        "markPrice": str(pos.avg_price), "unRealizedProfit": "0",
                        "liquidationPrice": "0", "leverage": "10", "maxNotionalValue": "1000000",
                        "marginType": "cross", "isolatedMargin": "0", "isAutoAddMargin": "false",
                        "positionSide": "BOTH", "notional": "0", "isolatedWallet": "0",
                        "updateTime": self.now_ms})
        return out
