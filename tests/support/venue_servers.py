"""Loopback aiohttp servers speaking each venue's public REST wire format.

Only the endpoints the market adapters use, with payloads shaped as in the venues'
public API docs (Binance USD-M futures, Bybit v5, OKX v5, Hyperliquid info, Deribit
v2 JSON-RPC over HTTP GET, DefiLlama). ccxt is pointed at a server by rewriting
its ``urls['api']``, so ccxt's own request building and parsing run for real.

Each server has a ``fault`` switch for error shapes: "429" (rate limit, the
venue's own 429 body), "maintenance" (the venue's maintenance answer),
"malformed" (truncated JSON), "timeout" (never answers in time), "missing"
(a required field dropped). ``fault_paths`` limits a fault to some paths.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[Any]]

HOUR_MS = 3_600_000


@dataclass
class VenueServer:
    venue: str
    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    fault: str | None = None
    fault_paths: tuple[str, ...] = ()
    hits: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0
    now_ms: int = 0  # the venue's clock (tests set it)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> VenueServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, shutdown_timeout=0.2)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.text() if request.can_read_body else ""
        key = request.path
        if request.method == "POST" and body:  # Hyperliquid: POST /info {"type": ...}
            key = f"{request.path}#{json.loads(body).get('type')}"
        self.hits.append((request.method, key, dict(request.query)))
        if self.fault and (not self.fault_paths or any(p in key for p in self.fault_paths)):
            faulted = await self._faulted(self.fault)
            if faulted is not None:
                return faulted
        handler = self.routes.get((request.method, key)) or self.routes.get(("*", key))
        if handler is None:
            return web.json_response({"error": f"no route {request.method} {key}"}, status=404)
        payload = await handler(request)
        if isinstance(payload, web.StreamResponse):
            return payload
        return web.Response(text=json.dumps(payload), content_type="application/json")

    async def _faulted(self, fault: str) -> web.StreamResponse | None:
        if fault == "timeout":  # never answers: the client's timeout is the only clock
            await asyncio.Event().wait()
        if fault == "malformed":
            return web.Response(text='{"result": [{"timestamp": 17', content_type="application/json")
        if fault == "429":
            return RATE_LIMITED[self.venue]()
        if fault == "maintenance":
            return MAINTENANCE[self.venue]()
        return None


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(payload), status=status, content_type="application/json")


# Rate-limit and maintenance answers as each venue documents them.
RATE_LIMITED: dict[str, Callable[[], web.Response]] = {
    "binanceusdm": lambda: _json({"code": -1003, "msg": "Too many requests; current limit of IP "
                                  "is 2400 requests per minute."}, 429),
    "binance": lambda: _json({"code": -1003, "msg": "Too many requests."}, 429),
    "bybit": lambda: _json({"retCode": 10006, "retMsg": "Too many visits!", "result": {},
                            "retExtInfo": {}, "time": 1700000000000}),
    "okx": lambda: _json({"code": "50011", "msg": "Too Many Requests", "data": []}, 429),
    "hyperliquid": lambda: _json(None, 429),
    "deribit": lambda: _json({"jsonrpc": "2.0", "error": {"message": "too_many_requests",
                                                          "code": 10028}, "testnet": False}, 429),
    "defillama": lambda: _json({"message": "Too Many Requests"}, 429),
}
MAINTENANCE: dict[str, Callable[[], web.Response]] = {
    "binanceusdm": lambda: web.Response(text="<html>System maintenance</html>", status=503),
    "binance": lambda: web.Response(text="<html>System maintenance</html>", status=503),
    "bybit": lambda: _json({"retCode": 10016, "retMsg": "Server error: system maintenance",
                            "result": {}, "retExtInfo": {}, "time": 1700000000000}),
    "okx": lambda: _json({"code": "50001", "msg": "Service temporarily unavailable. Please try "
                          "again later", "data": []}, 503),
    "hyperliquid": lambda: web.Response(text="Service Unavailable", status=503),
    "deribit": lambda: _json({"jsonrpc": "2.0", "error": {"message": "system_maintenance",
                                                          "code": 11051}, "testnet": False}),
    "defillama": lambda: web.Response(text="Service Unavailable", status=503),
}


def _q(request: web.Request, name: str, default: str | None = None) -> str | None:
    return request.query.get(name, default)


def _num(s: float) -> str:
    return repr(float(s))


# ----------------------------------------------------------------------------- funding data
@dataclass
class FundingTape:
    """Settled funding of one perp: rates per interval at interval-aligned times."""

    start_ms: int
    interval_h: int
    rates: list[float]

    def rows(self) -> list[tuple[int, float]]:
        step = self.interval_h * HOUR_MS
        return [(self.start_ms + i * step, r) for i, r in enumerate(self.rates)]

    def between(self, start: int | None, end: int | None) -> list[tuple[int, float]]:
        return [(t, r) for t, r in self.rows()
                if (start is None or t >= start) and (end is None or t <= end)]


# ----------------------------------------------------------------------------- binance USD-M
def binanceusdm(now_ms: int, tape: FundingTape, current_rate: float) -> VenueServer:
    s = VenueServer("binanceusdm", now_ms=now_ms)

    async def exchange_info(_: web.Request) -> Any:
        return {"timezone": "UTC", "serverTime": s.now_ms, "futuresType": "U_MARGINED",
                "rateLimits": [], "exchangeFilters": [], "assets": [], "symbols": [{
                    "symbol": "ETHUSDT", "pair": "ETHUSDT", "contractType": "PERPETUAL",
                    "deliveryDate": 4133404800000, "onboardDate": 1569398400000,
                    "status": "TRADING", "maintMarginPercent": "2.5000",
                    "requiredMarginPercent": "5.0000", "baseAsset": "ETH", "quoteAsset": "USDT",
                    "marginAsset": "USDT", "pricePrecision": 2, "quantityPrecision": 3,
                    "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN",
                    "underlyingSubType": ["Layer-1"], "settlePlan": 0, "triggerProtect": "0.0500",
                    "liquidationFee": "0.012500", "marketTakeBound": "0.05",
                    "filters": [
                        {"filterType": "PRICE_FILTER", "minPrice": "39.86", "maxPrice": "306177",
                         "tickSize": "0.01"},
                        {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "10000",
                         "stepSize": "0.001"},
                        {"filterType": "MIN_NOTIONAL", "notional": "20"}],
                    "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC"]}]}

    async def premium_index(request: web.Request) -> Any:
        assert _q(request, "symbol") == "ETHUSDT"
        body: dict[str, Any] = {
            "symbol": "ETHUSDT", "markPrice": "3012.51000000", "indexPrice": "3013.10245455",
            "estimatedSettlePrice": "3011.87", "lastFundingRate": _num(current_rate),
            "interestRate": "0.00010000", "nextFundingTime": _next(s.now_ms, 8),
            "time": s.now_ms}
        if s.fault == "missing":
            del body["lastFundingRate"]
        return body

    async def funding_rate(request: web.Request) -> Any:
        start = _int(_q(request, "startTime"))
        end = _int(_q(request, "endTime"))
        limit = _int(_q(request, "limit")) or 100
        rows = tape.between(start, end)
        rows = rows[:limit] if start is not None else rows[-limit:]
        return [{"symbol": "ETHUSDT", "fundingTime": t, "fundingRate": f"{r:.8f}",
                 "markPrice": "3000.00000000"} for t, r in rows]

    s.routes[("GET", "/fapi/v1/exchangeInfo")] = exchange_info
    s.routes[("GET", "/fapi/v1/premiumIndex")] = premium_index
    s.routes[("GET", "/fapi/v1/fundingRate")] = funding_rate
    return s


def _int(v: str | None) -> int | None:
    return None if v is None else int(v)


def _next(now_ms: int, hours: int) -> int:
    step = hours * HOUR_MS
    return (now_ms // step + 1) * step


# ----------------------------------------------------------------------------- bybit v5
def bybit(now_ms: int, tape: FundingTape, current_rate: float) -> VenueServer:
    s = VenueServer("bybit", now_ms=now_ms)

    def envelope(result: Any) -> Any:
        return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {},
                "time": s.now_ms}

    async def instruments(request: web.Request) -> Any:
        if _q(request, "status") == "PreLaunch":
            return envelope({"category": "linear", "list": [], "nextPageCursor": ""})
        return envelope({"category": "linear", "nextPageCursor": "", "list": [{
            "symbol": "ETHUSDT", "contractType": "LinearPerpetual", "status": "Trading",
            "baseCoin": "ETH", "quoteCoin": "USDT", "launchTime": "1615766400000",
            "deliveryTime": "0", "deliveryFeeRate": "", "priceScale": "2",
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00",
                               "leverageStep": "0.01"},
            "priceFilter": {"minPrice": "0.01", "maxPrice": "199999.98", "tickSize": "0.01"},
            "lotSizeFilter": {"maxOrderQty": "7240.00", "minOrderQty": "0.01",
                              "qtyStep": "0.01", "postOnlyMaxOrderQty": "7240.00",
                              "maxMktOrderQty": "1500.00", "minNotionalValue": "5"},
            "unifiedMarginTrade": True, "fundingInterval": tape.interval_h * 60,
            "settleCoin": "USDT", "copyTrading": "both", "upperFundingRate": "0.005",
            "lowerFundingRate": "-0.005"}]})

    async def tickers(request: web.Request) -> Any:
        item = {"symbol": "ETHUSDT", "lastPrice": "3012.50", "indexPrice": "3013.10",
                "markPrice": "3012.51", "prevPrice24h": "2950.00", "price24hPcnt": "0.021186",
                "highPrice24h": "3050.00", "lowPrice24h": "2940.00", "prevPrice1h": "3010.00",
                "openInterest": "512345.12", "openInterestValue": "1543456789.12",
                "turnover24h": "4686694853.04", "volume24h": "1556123.45",
                "fundingRate": _num(current_rate), "nextFundingTime": str(_next(s.now_ms, 8)),
                "predictedDeliveryPrice": "", "basisRate": "", "deliveryFeeRate": "",
                "deliveryTime": "0", "ask1Size": "10.5", "bid1Price": "3012.50",
                "ask1Price": "3012.51", "bid1Size": "20.1"}
        if s.fault == "missing":
            del item["fundingRate"]
        return envelope({"category": "linear", "list": [item]})

    async def funding_history(request: web.Request) -> Any:
        start = _int(_q(request, "startTime"))
        end = _int(_q(request, "endTime"))
        limit = _int(_q(request, "limit")) or 200
        if start is not None and end is None:  # documented: startTime alone is an error
            return envelope({}) | {"retCode": 10001, "retMsg": "params error: endTime is "
                                   "required when startTime is passed"}
        if not 1 <= limit <= 200:
            return envelope({}) | {"retCode": 10001, "retMsg": "params error: limit [1, 200]"}
        rows = tape.between(start, end)[-limit:]  # newest first: the latest `limit` rows
        return envelope({"category": "linear", "list": [
            {"symbol": "ETHUSDT", "fundingRate": f"{r:.8f}", "fundingRateTimestamp": str(t)}
            for t, r in reversed(rows)]})  # newest first, as documented

    s.routes[("GET", "/v5/market/instruments-info")] = instruments
    s.routes[("GET", "/v5/market/tickers")] = tickers
    s.routes[("GET", "/v5/market/funding/history")] = funding_history
    return s


# ----------------------------------------------------------------------------- okx v5
def okx(now_ms: int, tape: FundingTape, current_rate: float) -> VenueServer:
    s = VenueServer("okx", now_ms=now_ms)

    def envelope(data: Any) -> Any:
        return {"code": "0", "msg": "", "data": data}

    async def instruments(request: web.Request) -> Any:
        assert _q(request, "instType") == "SWAP"
        return envelope([{
            "alias": "", "baseCcy": "", "category": "1", "ctMult": "1", "ctType": "linear",
            "ctVal": "0.1", "ctValCcy": "ETH", "expTime": "", "instFamily": "ETH-USDT",
            "instId": "ETH-USDT-SWAP", "instType": "SWAP", "lever": "100",
            "listTime": "1611916828000", "lotSz": "1", "maxIcebergSz": "100000000.0000000000",
            "maxLmtAmt": "20000000", "maxLmtSz": "100000000", "maxMktAmt": "",
            "maxMktSz": "10000", "maxStopSz": "10000", "maxTriggerSz": "100000000.0000000000",
            "maxTwapSz": "100000000.0000000000", "minSz": "1", "optType": "", "quoteCcy": "",
            "settleCcy": "USDT", "state": "live", "stk": "", "tickSz": "0.01",
            "uly": "ETH-USDT"}])

    async def funding_rate(request: web.Request) -> Any:
        assert _q(request, "instId") == "ETH-USDT-SWAP"
        nxt = _next(s.now_ms, tape.interval_h)
        item = {"formulaType": "withRate", "fundingRate": _num(current_rate),
                "fundingTime": str(nxt), "impactValue": "20000", "instId": "ETH-USDT-SWAP",
                "instType": "SWAP", "interestRate": "0.0001", "maxFundingRate": "0.015",
                "method": "current_period", "minFundingRate": "-0.015",
                "nextFundingRate": "", "nextFundingTime": str(nxt + tape.interval_h * HOUR_MS),
                "premium": "0.0001", "settFundingRate": "0.0001", "settState": "settled",
                "ts": str(s.now_ms)}
        if s.fault == "missing":
            del item["fundingRate"]
        return envelope([item])

    async def funding_history(request: web.Request) -> Any:
        # before = newer than (ms), after = older than (ms); newest first, max 100
        before = _int(_q(request, "before"))
        after = _int(_q(request, "after"))
        limit = _int(_q(request, "limit")) or 100
        rows = [(t, r) for t, r in tape.rows()
                if (before is None or t > before) and (after is None or t < after)]
        rows = rows[:limit] if before is not None and after is None else rows[-limit:]
        return envelope([{"formulaType": "withRate", "fundingRate": f"{r:.8f}",
                          "fundingTime": str(t), "instId": "ETH-USDT-SWAP", "instType": "SWAP",
                          "method": "current_period", "realizedRate": f"{r:.8f}"}
                         for t, r in reversed(rows)])

    s.routes[("GET", "/api/v5/public/instruments")] = instruments
    s.routes[("GET", "/api/v5/public/funding-rate")] = funding_rate
    s.routes[("GET", "/api/v5/public/funding-rate-history")] = funding_history
    return s


# ----------------------------------------------------------------------------- hyperliquid
def hyperliquid(now_ms: int, tape: FundingTape, current_rate: float) -> VenueServer:
    s = VenueServer("hyperliquid", now_ms=now_ms)
    universe = [{"szDecimals": 5, "name": "BTC", "maxLeverage": 40, "marginTableId": 56},
                {"szDecimals": 4, "name": "ETH", "maxLeverage": 25, "marginTableId": 55}]

    def ctx(funding: str) -> dict[str, Any]:
        return {"funding": funding, "openInterest": "123456.7", "prevDayPx": "2950.1",
                "dayNtlVlm": "1234567890.12", "premium": "0.00031", "oraclePx": "3013.1",
                "markPx": "3012.5", "midPx": "3012.55", "impactPxs": ["3012.4", "3012.7"],
                "dayBaseVlm": "409876.5"}

    async def spot_meta(_: web.Request) -> Any:
        return {"universe": [], "tokens": [
            {"name": "USDC", "szDecimals": 8, "weiDecimals": 8, "index": 0,
             "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054", "isCanonical": True,
             "evmContract": None, "fullName": None}]}

    async def meta_and_ctxs(_: web.Request) -> Any:
        eth = ctx(_num(current_rate))
        if s.fault == "missing":
            del eth["funding"]
        return [{"universe": universe}, [ctx("0.0000125"), eth]]

    async def meta(_: web.Request) -> Any:
        return {"universe": universe}

    async def funding_history(request: web.Request) -> Any:
        body = json.loads(await request.text())
        assert body["coin"] == "ETH"
        start = body.get("startTime")
        end = body.get("endTime")
        rows = tape.between(start, end)[:500]
        return [{"coin": "ETH", "fundingRate": f"{r:.10f}", "premium": "0.0001", "time": t}
                for t, r in rows]

    s.routes[("POST", "/info#spotMeta")] = spot_meta
    s.routes[("POST", "/info#meta")] = meta
    s.routes[("POST", "/info#metaAndAssetCtxs")] = meta_and_ctxs
    s.routes[("POST", "/info#fundingHistory")] = funding_history
    return s


# ----------------------------------------------------------------------------- deribit
@dataclass
class OptionQuote:
    expiry_ms: int
    strike: float
    kind: str  # "C" or "P"
    mark_iv: float  # vol points


def _deribit_expiry_code(expiry_ms: int) -> str:
    import datetime as dt
    d = dt.datetime.fromtimestamp(expiry_ms / 1000, dt.UTC)
    return f"{d.day}{d.strftime('%b').upper()}{d.strftime('%y')}"


def deribit(now_ms: int, tape: FundingTape, current_rate: float, *,
            underlying: float = 3000.0, options: list[OptionQuote] | None = None,
            dvol: list[tuple[int, float]] | None = None,
            candles: list[tuple[int, float]] | None = None) -> VenueServer:
    """Deribit: ETH-PERPETUAL funding, ETH options (book summary), DVOL, chart data.

    ``tape`` holds hourly ``interest_8h`` values (Deribit reports the 8h rate every hour).
    """
    s = VenueServer("deribit", now_ms=now_ms)
    s.data["options"] = options or []
    s.data["dvol"] = dvol or []
    s.data["candles"] = candles or []

    def rpc(result: Any) -> Any:
        us = s.now_ms * 1000
        return {"jsonrpc": "2.0", "result": result, "usIn": us, "usOut": us + 500,
                "usDiff": 500, "testnet": False}

    def option_name(q: OptionQuote) -> str:
        strike = int(q.strike) if q.strike == int(q.strike) else q.strike
        return f"ETH-{_deribit_expiry_code(q.expiry_ms)}-{strike}-{q.kind}"

    async def currencies(_: web.Request) -> Any:
        return rpc([{"withdrawal_priorities": [], "withdrawal_fee": 0.0006,
                     "min_withdrawal_fee": 0.0001, "min_confirmations": 1,
                     "fee_precision": 4, "currency_long": "Ethereum", "currency": "ETH",
                     "coin_type": "ETHER", "apr": 2.8}])

    def perp() -> dict[str, Any]:
        return {"tick_size": 0.05, "taker_commission": 0.0005, "settlement_period": "perpetual",
                "settlement_currency": "ETH", "rfq": False, "quote_currency": "USD",
                "price_index": "eth_usd", "min_trade_amount": 1,
                "max_liquidation_commission": 0.0075, "max_leverage": 50,
                "maker_commission": 0.0, "kind": "future", "is_active": True,
                "instrument_name": "ETH-PERPETUAL", "instrument_id": 210838,
                "expiration_timestamp": 32503708800000, "creation_timestamp": 1552568454000,
                "counter_currency": "USD", "contract_size": 1.0, "block_trade_tick_size": 0.01,
                "block_trade_min_trade_amount": 200000, "block_trade_commission": 0.00025,
                "base_currency": "ETH"}

    def option_instr(q: OptionQuote) -> dict[str, Any]:
        return {"tick_size": 0.0005, "taker_commission": 0.0003, "strike": q.strike,
                "settlement_period": "week", "settlement_currency": "ETH", "rfq": False,
                "quote_currency": "ETH", "price_index": "eth_usd", "option_type":
                "call" if q.kind == "C" else "put", "min_trade_amount": 1,
                "maker_commission": 0.0003, "kind": "option", "is_active": True,
                "instrument_name": option_name(q), "instrument_id": 300000 + int(q.strike),
                "expiration_timestamp": q.expiry_ms, "creation_timestamp": s.now_ms - 86400000,
                "counter_currency": "USD", "contract_size": 1.0, "block_trade_tick_size": 0.0001,
                "block_trade_min_trade_amount": 25, "block_trade_commission": 0.00015,
                "base_currency": "ETH"}

    async def instruments(_: web.Request) -> Any:
        return rpc([perp(), *[option_instr(q) for q in s.data["options"]]])

    async def funding_value(request: web.Request) -> Any:
        assert _q(request, "instrument_name") == "ETH-PERPETUAL"
        if s.fault == "missing":
            return {"jsonrpc": "2.0", "usIn": 1, "usOut": 2, "usDiff": 1, "testnet": False}
        return rpc(current_rate)

    async def funding_history(request: web.Request) -> Any:
        start = _int(_q(request, "start_timestamp"))
        end = _int(_q(request, "end_timestamp"))
        rows = tape.between(start, end)[-744:]
        return rpc([{"timestamp": t, "index_price": 3000.0, "prev_index_price": 2999.5,
                     "interest_8h": r, "interest_1h": r / 8} for t, r in rows])

    async def book_summary(request: web.Request) -> Any:
        assert _q(request, "currency") == "ETH" and _q(request, "kind") == "option"
        out = []
        for q in s.data["options"]:
            item: dict[str, Any] = {
                "volume_usd": 1000.0, "volume": 10.0, "underlying_price": underlying,
                "underlying_index": "SYN.ETH-" + _deribit_expiry_code(q.expiry_ms),
                "quote_currency": "ETH", "price_change": None, "open_interest": 100.0,
                "mid_price": 0.05, "mark_price": 0.05, "mark_iv": q.mark_iv, "low": None,
                "last": None, "interest_rate": 0.0, "instrument_name": option_name(q),
                "high": None, "estimated_delivery_price": underlying,
                "creation_timestamp": s.now_ms, "bid_price": 0.049, "base_currency": "ETH",
                "ask_price": 0.051}
            if s.fault == "missing":
                del item["mark_iv"]
            out.append(item)
        return rpc(out)

    async def vol_index(request: web.Request) -> Any:
        assert _q(request, "currency") == "ETH"
        start = _int(_q(request, "start_timestamp")) or 0
        end = _int(_q(request, "end_timestamp")) or s.now_ms
        rows = [(t, v) for t, v in s.data["dvol"] if start <= t <= end]
        size = int(s.data.get("page", 1000))
        page = rows[-size:]  # newest page; continuation points further back
        continuation = page[0][0] - 1 if len(rows) > len(page) else None
        return rpc({"data": [[t, v, v * 1.02, v * 0.98, v] for t, v in page],
                    "continuation": continuation})

    async def chart_data(request: web.Request) -> Any:
        start = _int(_q(request, "start_timestamp")) or 0
        end = _int(_q(request, "end_timestamp")) or s.now_ms
        rows = [(t, c) for t, c in s.data["candles"] if start <= t <= end][:5000]
        return rpc({"volume": [1.0] * len(rows), "ticks": [t for t, _ in rows],
                    "status": "ok" if rows else "no_data", "open": [c for _, c in rows],
                    "low": [c * 0.99 for _, c in rows], "high": [c * 1.01 for _, c in rows],
                    "cost": [1.0] * len(rows), "close": [c for _, c in rows]})

    api = "/api/v2/public/"
    s.routes[("GET", api + "get_currencies")] = currencies
    s.routes[("GET", api + "get_instruments")] = instruments
    s.routes[("GET", api + "get_funding_rate_value")] = funding_value
    s.routes[("GET", api + "get_funding_rate_history")] = funding_history
    s.routes[("GET", api + "get_book_summary_by_currency")] = book_summary
    s.routes[("GET", api + "get_volatility_index_data")] = vol_index
    s.routes[("GET", api + "get_tradingview_chart_data")] = chart_data
    return s


# ----------------------------------------------------------------------------- binance spot
def binance_spot(now_ms: int, books: dict[str, tuple[float, float]]) -> VenueServer:
    """Binance spot exchangeInfo + depth for stable pairs: books = {"USDCUSDT": (bid, ask)}."""
    s = VenueServer("binance", now_ms=now_ms)
    s.data["books"] = dict(books)

    async def exchange_info(_: web.Request) -> Any:
        symbols = []
        for sym in s.data["books"]:
            base, quote = sym[:-4], sym[-4:]
            symbols.append({
                "symbol": sym, "status": "TRADING", "baseAsset": base,
                "baseAssetPrecision": 8, "quoteAsset": quote, "quotePrecision": 8,
                "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "MARKET"],
                "icebergAllowed": True, "ocoAllowed": True, "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False, "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "0.00010000",
                     "maxPrice": "10.00000000", "tickSize": "0.00010000"},
                    {"filterType": "LOT_SIZE", "minQty": "1.00000000",
                     "maxQty": "9000000.00000000", "stepSize": "1.00000000"}],
                "permissions": [], "permissionSets": [["SPOT"]],
                "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["EXPIRE_MAKER"]})
        return {"timezone": "UTC", "serverTime": s.now_ms, "rateLimits": [],
                "exchangeFilters": [], "symbols": symbols}

    async def depth(request: web.Request) -> Any:
        bid, ask = s.data["books"][_q(request, "symbol") or ""]
        bids = [[f"{bid - i * 0.0001:.4f}", "250000.00"] for i in range(5)]
        asks = [[f"{ask + i * 0.0001:.4f}", "250000.00"] for i in range(5)]
        if s.fault == "nan":
            bids = [["NaN", "1"]]
        if s.fault == "empty":  # a halted pair: no orders on either side
            bids, asks = [], []
        return {"lastUpdateId": 1027024, "bids": bids, "asks": asks}

    async def klines(request: web.Request) -> Any:
        # [open time, open, high, low, close, volume, close time, quote volume, trades,
        #  taker buy base, taker buy quote, ignore]; oldest first; startTime inclusive
        step = {"1h": HOUR_MS, "1d": 24 * HOUR_MS}[_q(request, "interval") or "1h"]
        start = _int(_q(request, "startTime")) or 0
        end = _int(_q(request, "endTime"))
        limit = min(_int(_q(request, "limit")) or 500, 1000)
        rows = [k for k in s.data.get("klines", []) if k[0] >= start
                and (end is None or k[0] <= end)][:limit]
        return [[t, f"{o:.2f}", f"{h:.2f}", f"{lo:.2f}", f"{c:.2f}", "1234.5", t + step - 1,
                 "3703500.0", 1000, "600.0", "1800000.0", "0"] for t, o, h, lo, c in rows]

    s.routes[("GET", "/api/v3/exchangeInfo")] = exchange_info
    s.routes[("GET", "/api/v3/depth")] = depth
    s.routes[("GET", "/api/v3/klines")] = klines
    return s


# ----------------------------------------------------------------------------- defillama
def defillama(protocols: dict[str, list[tuple[int, float]]]) -> VenueServer:
    """api.llama.fi/protocol/{slug}: ``tvl`` is [{date (unix s), totalLiquidityUSD}]."""
    s = VenueServer("defillama")
    s.data["protocols"] = protocols

    async def protocol(request: web.Request) -> Any:
        slug = request.path.rsplit("/", 1)[-1]
        series = s.data["protocols"].get(slug)
        if series is None:
            return web.Response(text=f"Protocol {slug} not found", status=400)
        tvl = [{"date": t, "totalLiquidityUSD": v} for t, v in series]
        if s.fault == "nan":
            tvl[-1]["totalLiquidityUSD"] = math.nan
        return {"id": "1", "name": slug.title(), "symbol": "UNI", "category": "Dexs",
                "chains": ["Ethereum"], "slug": slug, "tvl": tvl,
                "chainTvls": {"Ethereum": {"tvl": tvl}}, "currentChainTvls": {
                    "Ethereum": series[-1][1] if series else 0}}

    for slug in protocols:
        s.routes[("GET", f"/protocol/{slug}")] = protocol
    s.routes[("GET", "/protocol/unknown-slug")] = protocol
    return s
