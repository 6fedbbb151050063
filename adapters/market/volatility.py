"""Implied and realised volatility through ccxt's deribit.

- Option chain (public/get_book_summary_by_currency, kind=option) to the ATM
  implied vol per expiry: the term structure.
- DVOL (public/get_volatility_index_data through ccxt's implicit API) history,
  paged with ``continuation``, for the 90-day percentile.
- Realised vol from OHLCV closes (annualised stdev of log returns).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from adapters.market.base import (
    Guard,
    Reading,
    SourceError,
    answered_json,
    finite,
    make_exchange,
    ms_to_s,
    now_s,
    unknown,
)
from adapters.market.history import Bar

MAX_IV_POINTS = 500.0  # above 500% is absurd


@dataclass(frozen=True, slots=True)
class TermPoint:
    expiry: int  # unix seconds
    atm_iv: float  # fraction (0.65 = 65%)
    strikes: int  # strikes with a mark IV at this expiry
    underlying: float


@dataclass(frozen=True, slots=True)
class TermStructure:
    as_of: int
    points: tuple[TermPoint, ...]

    def pairs(self) -> list[tuple[int, float]]:
        return [(p.expiry, p.atm_iv) for p in self.points]


def atm_iv_by_expiry(quotes: list[tuple[int, float, float, float]]) -> list[TermPoint]:
    """ATM IV per expiry from (expiry_s, strike, mark_iv_fraction, underlying) quotes.

    Calls and puts at one strike are averaged; the ATM IV is interpolated linearly
    in strike between the strikes bracketing that expiry's underlying (futures)
    price, or the nearest strike when the price is outside the listed strikes.
    """
    by_expiry: dict[int, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    underlying: dict[int, list[float]] = defaultdict(list)
    for expiry, strike, iv, und in quotes:
        by_expiry[expiry][strike].append(iv)
        underlying[expiry].append(und)
    out: list[TermPoint] = []
    for expiry in sorted(by_expiry):
        strikes = sorted((k, sum(v) / len(v)) for k, v in by_expiry[expiry].items())
        f = sorted(underlying[expiry])[len(underlying[expiry]) // 2]
        below = [s for s in strikes if s[0] <= f]
        above = [s for s in strikes if s[0] >= f]
        if below and above:
            (k0, v0), (k1, v1) = below[-1], above[0]
            iv = v0 if k1 == k0 else v0 + (v1 - v0) * (f - k0) / (k1 - k0)
        else:
            iv = min(strikes, key=lambda s: abs(s[0] - f))[1]
        out.append(TermPoint(expiry, iv, len(strikes), f))
    return out


@dataclass
class DeribitVol:
    """Deribit option chain, DVOL and OHLCV for one currency."""

    currency: str
    exchange: Any
    guard: Guard
    chain_max_age_s: int = 15 * 60
    dvol_max_age_s: int = 2 * 86400

    @classmethod
    def create(cls, currency: str = "ETH", api_url: str | None = None,
               timeout_s: float = 10.0, rate_limit: int = 5) -> DeribitVol:
        return cls(currency, make_exchange("deribit", api_url, timeout_s),
                   Guard("deribit", rate_limit=rate_limit, timeout_s=timeout_s))

    async def close(self) -> None:
        await self.exchange.close()

    async def _markets(self) -> None:
        if not self.exchange.markets:
            await self.exchange.load_markets()

    async def option_chain(self) -> dict[str, Any]:
        """The option chain now (ccxt fetch_option_chain, by symbol); raises on outside
        failures. One fetch serves both the term structure and the option quotes."""
        await self.guard.call(self._markets)

        async def chain() -> Any:
            return await self.exchange.fetch_option_chain(self.currency)

        options = await self.guard.call(chain)
        if not options:
            answered_json(self.exchange, "deribit option chain")
        return dict(options or {})

    async def term_structure(self) -> TermStructure:
        """ATM IV per expiry now; raises on outside failures and bad payloads."""
        return self.term_structure_of(await self.option_chain())

    def term_structure_of(self, options: dict[str, Any]) -> TermStructure:
        """ATM IV per expiry of a fetched chain; SourceError on a bad payload."""
        quotes: list[tuple[int, float, float, float]] = []
        stamps: list[int] = []
        for symbol, opt in options.items():
            market = self.exchange.markets.get(symbol)
            if market is None or not market.get("option"):
                continue
            info = opt.get("info") or {}
            iv_points = finite(info.get("mark_iv"), f"{symbol} mark_iv", positive=True)
            if iv_points > MAX_IV_POINTS:
                raise SourceError(f"{symbol}: absurd mark_iv {iv_points:g}")
            und = finite(opt.get("underlyingPrice"), f"{symbol} underlying_price", positive=True)
            strike = finite(market.get("strike"), f"{symbol} strike", positive=True)
            expiry = ms_to_s(market.get("expiry"), f"{symbol} expiry")
            quotes.append((expiry, strike, iv_points / 100.0, und))
            ts = opt.get("timestamp") or info.get("creation_timestamp")
            if ts:
                stamps.append(ms_to_s(ts))
        if not quotes:
            raise SourceError(f"no {self.currency} option quotes in the chain")
        as_of = min(stamps) if stamps else now_s()
        return TermStructure(as_of, tuple(atm_iv_by_expiry(quotes)))

    async def dvol_bars(self, start_s: int, end_s: int, resolution: str = "1D") -> list[Bar]:
        """DVOL candles from start to end, following ``continuation`` backwards."""
        bars: dict[int, Bar] = {}
        end_ms = end_s * 1000
        for _ in range(1000):

            async def page(end_ms: int = end_ms) -> Any:
                return await self.exchange.public_get_get_volatility_index_data({
                    "currency": self.currency, "start_timestamp": start_s * 1000,
                    "end_timestamp": end_ms, "resolution": resolution})

            response = await self.guard.call(page)
            result = response.get("result") if isinstance(response, dict) else None
            if not isinstance(result, dict) or not isinstance(result.get("data"), list):
                raise SourceError("malformed response: no result.data in DVOL answer")
            for row in result["data"]:
                if not isinstance(row, list) or len(row) < 5:
                    raise SourceError(f"malformed DVOL candle: {row!r}")
                ts = ms_to_s(row[0])
                o, h, lo, c = (finite(x, "DVOL value", positive=True) for x in row[1:5])
                if max(o, h, lo, c) > MAX_IV_POINTS:
                    raise SourceError(f"absurd DVOL value {max(o, h, lo, c):g}")
                bars[ts] = Bar(ts, o, h, lo, c)
            cont = result.get("continuation")
            if not cont or int(cont) < start_s * 1000 or int(cont) >= end_ms:
                break
            end_ms = int(cont)
        return [bars[t] for t in sorted(bars)]

    async def dvol_history(self, now: int, days: int = 95) -> list[tuple[int, float]]:
        return [(b.ts, b.close) for b in await self.dvol_bars(now - days * 86400, now)]

    async def latest_dvol(self, now: int) -> Reading:
        name = f"dvol:{self.currency}"
        try:
            bars = await self.dvol_bars(now - 3 * 86400, now)
        except Exception as exc:  # outside failure -> unknown with reason
            from adapters.market.base import describe_error
            return unknown(name, "deribit", self.dvol_max_age_s,
                           describe_error(exc, self.guard.timeout_s))
        if not bars:
            return unknown(name, "deribit", self.dvol_max_age_s, "no DVOL data")
        last = bars[-1]
        return Reading(name, last.close, last.ts, "deribit", self.dvol_max_age_s,
                       "ok").checked(now)

    async def ohlcv(self, symbol: str, timeframe: str, since_s: int,
                    limit: int | None = None) -> list[Bar]:
        await self.guard.call(self._markets)
        return await fetch_bars(self.exchange, self.guard, symbol, timeframe, since_s, limit)


async def fetch_bars(exchange: Any, guard: Guard, symbol: str, timeframe: str, since_s: int,
                     limit: int | None = None, until_s: int | None = None) -> list[Bar]:
    """OHLCV through ccxt, paging forward from ``since_s``; validated bars."""
    bars: dict[int, Bar] = {}
    cursor = since_s * 1000
    for _ in range(10_000):

        async def page(cursor: int = cursor) -> Any:
            return await exchange.fetch_ohlcv(symbol, timeframe, since=cursor, limit=limit)

        rows = await guard.call(page)
        if not rows:
            answered_json(exchange, f"{symbol} OHLCV")
        fresh = 0
        for row in rows:
            ts = ms_to_s(row[0])
            if until_s is not None and ts > until_s:
                continue
            o, h, lo, c = (finite(x, f"{symbol} ohlc", positive=True) for x in row[1:5])
            if ts not in bars:
                fresh += 1
            bars[ts] = Bar(ts, o, h, lo, c)
        if not fresh or limit is None or (until_s is not None and max(bars) >= until_s):
            break
        cursor = (max(bars) + 1) * 1000
    return [bars[t] for t in sorted(bars)]


def realised_vol(closes: list[float], periods_per_year: float) -> float:
    """Annualised standard deviation of log returns (sample stdev)."""
    if len(closes) < 3:
        raise ValueError("need at least 3 closes")
    if any(not math.isfinite(c) or c <= 0 for c in closes):
        raise ValueError("closes must be finite and positive")
    rets = [math.log(b / a) for a, b in itertools.pairwise(closes)]
    mean = sum(rets) / len(rets)
    var = sum((r - mean) ** 2 for r in rets) / (len(rets) - 1)
    return math.sqrt(var * periods_per_year)


async def realised_vol_reading(source: DeribitVol, symbol: str, now: int, days: int = 30
                               ) -> Reading:
    """Realised vol over ``days`` of daily closes as a reading."""
    name = f"realised_vol:{symbol}:{days}d"

    async def fetch() -> Reading:
        bars = await source.ohlcv(symbol, "1d", now - (days + 1) * 86400)
        closes = [b.close for b in bars]
        if len(closes) < days // 2:
            raise SourceError(f"only {len(closes)} daily closes for {days}d realised vol")
        return Reading(name, realised_vol(closes, 365.0), bars[-1].ts, "deribit", 2 * 86400,
                       "ok", {"closes": len(closes)})

    return await source.guard.reading(name, 2 * 86400, fetch)
