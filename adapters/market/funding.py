"""Perpetual funding rates through ccxt: current and history, per interval and annualised.

Venues: binanceusdm, bybit, okx, hyperliquid, deribit (any ccxt venue with
fetchFundingRate / fetchFundingRateHistory works). A funding rate is the fraction
paid per funding interval; the interval comes from the venue's answer when it
says so, else from the spacing of its settlements, else the venue's documented
default. Annualised = rate * 8760 / interval_hours.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from typing import Any

from adapters.market.base import Guard, Reading, SourceError, finite, make_exchange, ms_to_s, now_s
from policies.signals import FundingPoint, annualise

# Documented default intervals (hours) when the answer does not say.
DEFAULT_INTERVAL_HOURS: dict[str, float] = {
    "binanceusdm": 8.0, "bybit": 8.0, "okx": 8.0, "hyperliquid": 1.0, "deribit": 8.0,
}
DEFAULT_SYMBOLS: dict[str, str] = {
    "binanceusdm": "{base}/USDT:USDT",
    "bybit": "{base}/USDT:USDT",
    "okx": "{base}/USDT:USDT",
    "hyperliquid": "{base}/USDC:USDC",
    "deribit": "{base}/USD:{base}",
}
MAX_ABS_RATE = 0.05  # per interval; venue caps are far below, beyond is absurd


def default_symbol(venue: str, base: str) -> str:
    pattern = DEFAULT_SYMBOLS.get(venue)
    if pattern is None:
        raise ValueError(f"no default perp symbol for venue {venue}; give one")
    return pattern.format(base=base)


def _interval_hours(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    unit = text[-1]
    try:
        n = float(text[:-1])
    except ValueError:
        return None
    factor = {"m": 1 / 60, "h": 1.0, "d": 24.0}.get(unit)
    return None if factor is None or n <= 0 else n * factor


def _as_of(fr: dict[str, Any]) -> int:
    """When the venue stated the rate: ccxt's timestamp, else the venue's own stamp that
    ccxt leaves in ``info`` (OKX ``ts`` ms, Deribit ``usOut`` us), else receipt time."""
    if fr.get("timestamp"):
        return ms_to_s(fr["timestamp"])
    info = fr.get("info")
    if isinstance(info, dict):
        if info.get("ts"):
            return ms_to_s(info["ts"], "ts")
        if info.get("usOut"):
            return int(finite(info["usOut"], "usOut")) // 1_000_000
    return now_s()  # a live (predicted) rate the venue did not timestamp: time of receipt


def spacing_hours(timestamps: list[int]) -> float | None:
    """Median spacing of settlements in hours (None if fewer than two)."""
    gaps = [b - a for a, b in itertools.pairwise(timestamps) if b > a]
    return statistics.median(gaps) / 3600 if gaps else None


@dataclass
class FundingFeed:
    """Funding of one perp on one venue."""

    venue: str
    symbol: str
    exchange: Any
    guard: Guard
    max_age_s: int = 3600  # a current rate older than this is stale

    @classmethod
    def create(cls, venue: str, base: str = "ETH", symbol: str | None = None,
               api_url: str | None = None, timeout_s: float = 10.0, rate_limit: int = 5,
               max_age_s: int = 3600) -> FundingFeed:
        exchange = make_exchange(venue, api_url, timeout_s)
        return cls(venue, symbol or default_symbol(venue, base), exchange,
                   Guard(venue, rate_limit=rate_limit, timeout_s=timeout_s), max_age_s)

    @property
    def name(self) -> str:
        return f"funding:{self.venue}:{self.symbol}"

    async def close(self) -> None:
        await self.exchange.close()

    async def _markets(self) -> None:
        if not self.exchange.markets:
            await self.exchange.load_markets(reload=True)
        if not self.exchange.markets:
            raise SourceError(f"malformed response: no markets in {self.venue}'s answer")
        if self.symbol not in self.exchange.markets:
            raise SourceError(f"{self.venue} has no market {self.symbol}")

    async def current(self) -> Reading:
        """Current funding rate per interval; ``extra`` holds interval and annualised."""

        async def fetch() -> Reading:
            await self._markets()
            fr = await self.exchange.fetch_funding_rate(self.symbol)
            if not fr or not fr.get("info") or not isinstance(fr["info"], dict | list):
                raise SourceError("malformed response: empty or unparsable funding answer")
            rate = finite(fr.get("fundingRate"), "fundingRate")
            if abs(rate) > MAX_ABS_RATE:
                raise SourceError(f"absurd funding rate {rate:g} per interval")
            as_of = _as_of(fr)
            hours = (_interval_hours(fr.get("interval"))
                     or DEFAULT_INTERVAL_HOURS.get(self.venue, 8.0))
            return Reading(self.name, rate, as_of, self.venue, self.max_age_s, "ok", {
                "interval_hours": hours, "annualised": annualise(rate, hours),
                "next_funding_ts": (int(fr["fundingTimestamp"]) // 1000
                                    if fr.get("fundingTimestamp") else None)})

        return await self.guard.reading(self.name, self.max_age_s, fetch)

    async def history(self, since_s: int, limit: int | None = None,
                      until_s: int | None = None) -> list[FundingPoint]:
        """Settled funding from ``since_s`` on, paging until ``until_s`` (or no more).

        Raises on outside failures (the caller decides); invalid rows raise SourceError.
        """
        await self.guard.call(self._markets)
        out: dict[int, tuple[float, float | None]] = {}
        cursor = since_s * 1000
        end_ms = None if until_s is None else until_s * 1000
        for _ in range(10_000):
            params: dict[str, Any] = {}
            if end_ms is not None:
                params["until"] = end_ms

            async def page(cursor: int = cursor, params: dict[str, Any] = params) -> Any:
                return await self.exchange.fetch_funding_rate_history(
                    self.symbol, since=cursor, limit=limit, params=params)

            rows = await self.guard.call(page)
            fresh = 0
            last_ms = cursor
            for row in rows:
                ts_ms = int(finite(row.get("timestamp"), "timestamp"))
                if end_ms is not None and ts_ms > end_ms:
                    continue
                rate = finite(row.get("fundingRate"), "fundingRate")
                if abs(rate) > MAX_ABS_RATE:
                    raise SourceError(f"absurd funding rate {rate:g} at {ts_ms}")
                info = row.get("info") or {}
                hours = _interval_hours(row.get("interval")) or _interval_hours(
                    info.get("interval") if isinstance(info, dict) else None)
                if ts_ms // 1000 not in out:
                    fresh += 1
                out[ts_ms // 1000] = (rate, hours)
                last_ms = max(last_ms, ts_ms)
            if fresh == 0 or (end_ms is not None and last_ms >= end_ms) or limit is None:
                break
            cursor = last_ms + 1
        times = sorted(out)
        spacing = spacing_hours(times)
        default = spacing or DEFAULT_INTERVAL_HOURS.get(self.venue, 8.0)
        return [FundingPoint(ts, out[ts][0], out[ts][1] or default) for ts in times]
