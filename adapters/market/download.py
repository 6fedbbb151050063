"""History download: funding, OHLCV and DVOL from the venues (ccxt) into the CSV formats
of the recorded set, so recorded and downloaded files load alike (history.load_*)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adapters.market.base import Guard, SourceError, make_exchange
from adapters.market.funding import FundingFeed, default_symbol
from adapters.market.history import write_funding, write_ohlc
from adapters.market.volatility import DeribitVol, fetch_bars

KINDS = ("funding", "ohlcv", "dvol")
TIMEFRAMES = ("1m", "5m", "15m", "1h", "4h", "1d")


@dataclass(frozen=True, slots=True)
class DownloadResult:
    kind: str
    venue: str
    symbol: str
    path: str
    rows: int
    first_ts: int | None
    last_ts: int | None


async def download_funding(venue: str, base: str, since: int, until: int, out: Path,
                           symbol: str | None = None, api_url: str | None = None,
                           timeout_s: float = 20.0) -> DownloadResult:
    feed = FundingFeed.create(venue, base, symbol, api_url, timeout_s)
    try:
        points = await feed.history(since, until_s=until)  # pages of the venue's maximum
    finally:
        await feed.close()
    points = [p for p in points if since <= p.ts <= until]
    rows = write_funding(out, points)
    return DownloadResult("funding", venue, feed.symbol, str(out), rows,
                          points[0].ts if points else None, points[-1].ts if points else None)


async def download_ohlcv(venue: str, symbol: str, timeframe: str, since: int, until: int,
                         out: Path, api_url: str | None = None, timeout_s: float = 20.0
                         ) -> DownloadResult:
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"timeframe {timeframe!r} not one of {', '.join(TIMEFRAMES)}")
    exchange = make_exchange(venue, api_url, timeout_s)
    guard = Guard(venue, timeout_s=timeout_s)
    try:
        await guard.call(exchange.load_markets)
        if symbol not in exchange.markets:
            raise SourceError(f"{venue} has no market {symbol}")
        bars = await fetch_bars(exchange, guard, symbol, timeframe, since, limit=1000,
                                until_s=until)
    finally:
        await exchange.close()
    bars = [b for b in bars if since <= b.ts <= until]
    rows = write_ohlc(out, bars)
    return DownloadResult("ohlcv", venue, symbol, str(out), rows,
                          bars[0].ts if bars else None, bars[-1].ts if bars else None)


async def download_dvol(currency: str, since: int, until: int, out: Path,
                        api_url: str | None = None, timeout_s: float = 20.0) -> DownloadResult:
    vol = DeribitVol.create(currency, api_url, timeout_s)
    try:
        bars = await vol.dvol_bars(since, until, resolution="1D")
    finally:
        await vol.close()
    bars = [b for b in bars if since <= b.ts <= until]
    rows = write_ohlc(out, bars)
    return DownloadResult("dvol", "deribit", f"{currency} DVOL", str(out), rows,
                          bars[0].ts if bars else None, bars[-1].ts if bars else None)


__all__ = ["KINDS", "DownloadResult", "default_symbol", "download_dvol", "download_funding",
           "download_ohlcv"]
