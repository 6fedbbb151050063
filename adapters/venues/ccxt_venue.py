"""One ``Venue`` over ccxt for every exchange venue; per-venue quirks as data only.

ccxt builds and signs each venue's requests and parses its answers into unified dicts;
adapters/venues/parsing.py turns those into typed reports. Our client id travels in the
venue's own field (``parsing.client_id_params``) and orders are looked up by it, never by
the venue's id alone, so an order whose answer was lost can be found.

ccxt's exceptions are sorted by what they mean for the order:

- the venue refused the order (``InvalidOrder``, ``InsufficientFunds``, ``BadSymbol``):
  a REJECTED report with ccxt's message (nothing was placed);
- anything else on ``place`` (network errors, timeouts, 429s, 5xx, an exchange error we do
  not recognise): ``VenueUnavailable``, i.e. the outcome is unknown, and the executor marks
  the order UNKNOWN and asks by client id; it never retries a send;
- ``OrderNotFound`` on a status query: ``None`` (the venue has no such order);
- ``DuplicateOrderId`` on ``place``: the order is already there; its status is returned.

Keys come from the caller (env or key files, bot/ settings); never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt

from adapters.market.base import make_exchange
from adapters.venues.base import (
    BookQuote,
    FeeInfo,
    FillReport,
    InstrumentInfo,
    OrderReport,
    OrderRequest,
    PositionReport,
    ProductKind,
    VenueRefused,
    VenueUnavailable,
)
from adapters.venues.parsing import (
    client_id_params,
    fill_report,
    order_report,
    position_report,
)
from policies.fills import Book, Level, Liquidity
from policies.orders import OrderState, venue_client_id

__all__ = ["CCXT_ORDER_OPTIONS", "CcxtVenue", "make_ccxt_venue"]

# Per-venue ccxt options for trading (quirks as data). Binance: ccxt loads currencies from
# the spot wallet API (sapi) when keys are set; a futures-only key has no use for it.
CCXT_ORDER_OPTIONS: Mapping[str, Mapping[str, Any]] = {
    "binanceusdm": {"fetchCurrencies": False},
}
# Error codes meaning "this client order id is already taken", where ccxt does not raise
# DuplicateOrderId for them (Binance USD-M -4116 DUPLICATED_CLIENT_ORDER_ID is an
# ExchangeError in ccxt 4.5's linear exceptions).
DUPLICATE_ID_CODES: Mapping[str, tuple[str, ...]] = {
    "binanceusdm": ("-4116",),
}

_REFUSES_ORDER = (ccxt.InvalidOrder, ccxt.InsufficientFunds, ccxt.BadSymbol)


def make_ccxt_venue(venue: str, symbols: tuple[str, ...], api_key: str, secret: str, *,
                    api_url: str | None = None, timeout_s: float = 10.0,
                    **kwargs: Any) -> CcxtVenue:
    """A keyed ccxt exchange for ``venue`` wrapped as a ``Venue`` (``api_url``: tests point
    it at a loopback server)."""
    exchange = make_exchange(venue, api_url, timeout_s, dict(CCXT_ORDER_OPTIONS.get(venue, {})))
    exchange.apiKey, exchange.secret = api_key, secret
    return CcxtVenue(venue, exchange, symbols, **kwargs)


def _d(x: Any) -> Decimal:
    return Decimal(str(x))


class CcxtVenue:
    """A ``Venue`` over one ccxt exchange (``exchange`` built and keyed by the caller).
    ``symbols``: the instruments this venue trades for us (open orders, fills and positions
    are asked per symbol, as Binance and Bybit want)."""

    def __init__(self, venue: str, exchange: Any, symbols: tuple[str, ...], *,
                 fee_venue: Mapping[ProductKind, str] | None = None,
                 liquidity: Liquidity = "taker",
                 usd_prices: Mapping[str, Decimal] | None = None) -> None:
        self.name = venue
        self.exchange = exchange
        self.symbols = symbols
        self._fee_venue: dict[ProductKind, str] = dict(
            fee_venue or {"option": venue, "perp": venue})
        self._liquidity: Liquidity = liquidity
        self.usd_prices = dict(usd_prices or {})

    async def close(self) -> None:
        await self.exchange.close()

    async def _call(self, what: str, coro: Any) -> Any:
        try:
            return await coro
        except ccxt.AuthenticationError as err:
            raise VenueRefused(f"{self.name}: {what}: authentication refused") from err
        except ccxt.BaseError as err:
            raise VenueUnavailable(f"{self.name}: {what}: {type(err).__name__}") from err

    async def instruments(self) -> tuple[InstrumentInfo, ...]:
        markets = await self._call("load_markets", self.exchange.load_markets())
        out = []
        for m in markets.values():
            kind: ProductKind | None = ("option" if m.get("option") else
                                        "perp" if m.get("swap") else None)
            if kind is None or not m.get("active", True):
                continue
            prec = m.get("precision") or {}
            out.append(InstrumentInfo(
                m["symbol"], kind, str(m.get("base") or ""),
                _d(prec.get("amount") or 1), _d(prec.get("price") or 0),
                m.get("optionType") if kind == "option" else None,
                _d(m["strike"]) if m.get("strike") is not None else None,
                m.get("expiry")))
        return tuple(out)

    async def quote(self, symbol: str, depth: int = 10) -> BookQuote:
        ob = await self._call("order book", self.exchange.fetch_order_book(symbol, depth))
        book = Book(tuple(Level(_d(p), _d(q)) for p, q, *_ in ob["bids"]),
                    tuple(Level(_d(p), _d(q)) for p, q, *_ in ob["asks"]))
        return BookQuote(symbol, book, None, int(ob.get("timestamp") or 0))

    async def place(self, request: OrderRequest) -> OrderReport:
        params: dict[str, Any] = client_id_params(self.name, request.client_id)
        params["timeInForce"] = "IOC" if request.time_in_force == "ioc" else "GTC"
        if request.reduce_only:
            params["reduceOnly"] = True
        kind = "market" if request.limit_price is None else "limit"
        price = None if request.limit_price is None else float(request.limit_price)
        try:
            o = await self.exchange.create_order(request.symbol, kind, request.side,
                                                 float(request.qty), price, params)
        except ccxt.BaseError as err:
            if not self._is_duplicate(err):
                return self._place_failed(request, err)
            found = await self.order_status(request.client_id, request.symbol)
            if found is None:
                raise VenueUnavailable(f"{self.name}: duplicate client id "
                                       f"{request.client_id}, yet no such order") from None
            return found
        return order_report(self.name, o, self.usd_prices)

    def _is_duplicate(self, err: Exception) -> bool:
        if isinstance(err, ccxt.DuplicateOrderId):
            return True
        body = str(err).replace(" ", "")  # ccxt's message carries the venue's JSON answer
        return any(f'"code":{code}' in body for code in DUPLICATE_ID_CODES.get(self.name, ()))

    def _place_failed(self, request: OrderRequest, err: Exception) -> OrderReport:
        """A place that raised: refused (nothing placed: a REJECTED report, or
        ``VenueRefused`` for bad credentials) or an unknown outcome (``VenueUnavailable``)."""
        if isinstance(err, ccxt.AuthenticationError):
            raise VenueRefused(f"{self.name}: place {request.client_id}: authentication "
                               "refused") from err
        if isinstance(err, _REFUSES_ORDER):
            return OrderReport(request.client_id, "", request.symbol, request.side, request.qty,
                               OrderState.REJECTED, Decimal(0), None, 0, 0,
                               f"{type(err).__name__}: {err}"[:300])
        raise VenueUnavailable(f"{self.name}: place {request.client_id}: "
                               f"{type(err).__name__}") from err

    def _by_client_id(self, client_id: str) -> dict[str, Any]:
        return client_id_params(self.name, client_id)

    async def cancel(self, client_id: str, symbol: str) -> OrderReport:
        try:
            o = await self.exchange.cancel_order(None, symbol, self._by_client_id(client_id))
        except ccxt.OrderNotFound as err:
            raise VenueRefused(f"{self.name}: no open order {client_id}") from err
        except ccxt.BaseError as err:
            raise VenueUnavailable(f"{self.name}: cancel {client_id}: "
                                   f"{type(err).__name__}") from err
        return order_report(self.name, o, self.usd_prices)

    async def order_status(self, client_id: str, symbol: str) -> OrderReport | None:
        try:
            o = await self.exchange.fetch_order(None, symbol, self._by_client_id(client_id))
        except ccxt.OrderNotFound:
            return None
        except ccxt.BaseError as err:
            raise VenueUnavailable(f"{self.name}: status of {client_id}: "
                                   f"{type(err).__name__}") from err
        return order_report(self.name, o, self.usd_prices)

    async def open_orders(self) -> tuple[OrderReport, ...]:
        out: list[OrderReport] = []
        for s in self.symbols:
            rows = await self._call("open orders", self.exchange.fetch_open_orders(s))
            out.extend(order_report(self.name, o, self.usd_prices) for o in rows)
        return tuple(out)

    async def positions(self) -> tuple[PositionReport, ...]:
        rows = await self._call("positions", self.exchange.fetch_positions(list(self.symbols)))
        return tuple(p for p in (position_report(self.name, r) for r in rows) if p.size != 0)

    async def fills(self, client_id: str | None = None) -> tuple[FillReport, ...]:
        out: list[FillReport] = []
        for s in self.symbols:
            rows = await self._call("fills", self.exchange.fetch_my_trades(s))
            out.extend(fill_report(self.name, t, self.usd_prices) for t in rows)
        if client_id is not None:
            wanted = {client_id, venue_client_id(self.name, client_id)}
            out = [f for f in out if f.client_id in wanted]
        return tuple(out)

    def fees(self, kind: ProductKind) -> FeeInfo:
        return FeeInfo(self._fee_venue[kind], self._liquidity)
