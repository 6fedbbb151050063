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

from adapters.market.base import (
    Guard,
    Reading,
    SourceError,
    answered_json,
    finite,
    make_exchange,
    ms_to_s,
    now_s,
)
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
# Most rows one answer of the venue's funding history holds (its documented maximum).
PAGE_LIMIT: dict[str, int] = {
    "binanceusdm": 1000, "bybit": 200, "okx": 100, "hyperliquid": 500, "deribit": 744,
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
        """Settled funding in [``since_s``, ``until_s``] (no ``until_s``: up to the venue's now).

        Each answer is capped at a page (``limit``, at most the venue's PAGE_LIMIT), and
        venues differ in which end of a range a capped answer keeps: Binance, Hyperliquid
        and OKX the oldest rows, Bybit and Deribit the newest. So a full page is followed
        on both sides: the part of the range before its oldest row and after its newest
        row are asked for again (unless narrower than the settlement spacing), until every
        part of the range has been answered. Raises on outside failures (the caller
        decides); invalid rows raise SourceError.
        """
        await self.guard.call(self._markets)
        cap = PAGE_LIMIT.get(self.venue, 100)
        page_size = min(limit, cap) if limit else cap
        out: dict[int, tuple[float, float | None]] = {}
        todo: list[tuple[int, int | None]] = [(since_s * 1000, None if until_s is None
                                                else until_s * 1000)]
        for _ in range(10_000):
            if not todo:
                break
            lo, hi = todo.pop()

            async def page(lo: int = lo, hi: int | None = hi) -> Any:
                params = {} if hi is None else {"until": hi}
                return await self.exchange.fetch_funding_rate_history(
                    self.symbol, since=lo, limit=page_size, params=params)

            rows = await self.guard.call(page)
            if not rows:
                answered_json(self.exchange, f"{self.venue} funding history")
            stamps: list[int] = []
            for row in rows:
                ts_ms = int(finite(row.get("timestamp"), "timestamp"))
                if ts_ms < lo or (hi is not None and ts_ms > hi):
                    continue
                rate = finite(row.get("fundingRate"), "fundingRate")
                if abs(rate) > MAX_ABS_RATE:
                    raise SourceError(f"absurd funding rate {rate:g} at {ts_ms}")
                info = row.get("info") or {}
                hours = _interval_hours(row.get("interval")) or _interval_hours(
                    info.get("interval") if isinstance(info, dict) else None)
                out[ts_ms // 1000] = (rate, hours)
                stamps.append(ts_ms)
            if not stamps:
                continue  # nothing (more) in this part of the range
            first, last = min(stamps), max(stamps)
            full = len(rows) >= page_size
            gaps = [b - a for a, b in itertools.pairwise(sorted(set(stamps))) if b > a]
            spacing = min(gaps) if gaps else 1
            if full and first - lo >= spacing:  # the venue kept the newest rows
                todo.append((lo, first - 1))
            if hi is None or (full and hi - last >= spacing):  # ... or the oldest
                todo.append((last + 1, hi))
        else:
            raise SourceError(f"{self.venue}: funding history needs over 10000 pages")
        times = sorted(out)
        spacing_h = spacing_hours(times)
        default = spacing_h or DEFAULT_INTERVAL_HOURS.get(self.venue, 8.0)
        return [FundingPoint(ts, out[ts][0], out[ts][1] or default) for ts in times]
