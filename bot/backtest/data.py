"""History files for the backtest, stamped with the time each value became known.

- an OHLC bar (ts = bar start) is known at ts + bar length (its close): hourly spot at
  ts + 1 h, a daily DVOL bar at the end of its day, a 15-minute USDC bar at ts + 15 min;
- a funding rate at its settlement time (its ts).
A decision at time t sees only points with known-time <= t (``idx``/``upto``)."""

from __future__ import annotations

import bisect
import csv
from dataclasses import dataclass, field
from pathlib import Path

from adapters.market.history import (
    FUNDING_HEADER,
    OHLC_HEADER,
    HistoryFormatError,
    closes,
    iso,
    load_funding,
    load_ohlc,
)
from bot.errors import UserError
from policies.signals import FundingPoint, Point

HOUR = 3600
DAY = 86400
MAX_GAP_HOURS = 24  # Binance has real 2-9 h outages; a longer hole is a broken file

SPOT_FILE = "eth_usdt_1h.csv"
DVOL_FILE = "eth_dvol_1d.csv"
USDC_FILE = "usdc_usd_15m.csv"  # optional, may have gaps (depeg signal)
FUNDING_PREFIX = "eth_funding_"


class BacktestError(UserError):
    """Bad history or arguments: one line naming the file/field."""


def _check_header(path: Path, header: tuple[str, ...]) -> None:
    with path.open(newline="") as fh:
        first = next(csv.reader(fh), None)
    if first is None:
        raise BacktestError(f"{path.name}: empty file (no header, no rows)")
    cols = [c.strip() for c in first]
    missing = [c for c in header if c not in cols]
    if missing:
        raise BacktestError(f"{path.name}: missing column {missing[0]!r} (header: {','.join(cols)})")


@dataclass
class History:
    spot: list[Point]  # (known at, close)
    dvol: list[Point]
    funding: dict[str, list[FundingPoint]]  # file venue -> points (known at settlement)
    spot_start: int  # first bar start
    usdc: list[Point] | None = None  # (known at, close), 15-minute bars, optional
    _ts: dict[str, list[int]] = field(default_factory=dict, repr=False)
    _day_last: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._ts["spot"] = [p[0] for p in self.spot]
        self._ts["dvol"] = [p[0] for p in self.dvol]
        if self.usdc is not None:
            self._ts["usdc"] = [p[0] for p in self.usdc]
        for v, pts in self.funding.items():
            self._ts["f:" + v] = [p.ts for p in pts]
        # indices of spot points that are the last known point of their UTC day (by the
        # known-at stamp, the bucket policies.indicators.resample_closes uses)
        ts = self._ts["spot"]
        self._day_last = [i for i in range(len(ts))
                          if i + 1 == len(ts) or ts[i + 1] // DAY != ts[i] // DAY]

    def idx(self, series: str, now: int) -> int:
        """Number of points of ``series`` known at ``now``."""
        return bisect.bisect_right(self._ts[series], now)

    def funding_upto(self, venue: str, now: int, days: float = 31) -> list[FundingPoint]:
        """Settlements known at ``now`` within the trailing ``days`` (the signal's
        30-day baseline plus a day, what the daemon fetches)."""
        ts = self._ts["f:" + venue]
        i = bisect.bisect_right(ts, now)
        j = bisect.bisect_left(ts, now - int(days * DAY))
        return self.funding[venue][j:i]

    def daily_closes(self, now: int, days: int) -> list[Point]:
        """Spot closes known at ``now`` over the trailing ``days``, compacted to the last
        point of each past day plus every point of the current day. Resampling to daily
        bars (what rsi_macd does) gives exactly what the full hourly list gives; this only
        saves the signal from scanning ~24x as many points."""
        j = self.idx("spot", now)
        if j == 0:
            return []
        ts = self._ts["spot"]
        first = bisect.bisect_left(ts, now - days * DAY)
        today = bisect.bisect_left(ts, ts[j - 1] - ts[j - 1] % DAY)
        a = bisect.bisect_left(self._day_last, first)
        b = bisect.bisect_left(self._day_last, today)
        out = [self.spot[k] for k in self._day_last[a:b]]
        out.extend(self.spot[max(today, first):j])
        return out

    def check_gaps(self, start: int, end: int) -> None:
        """One-line error for a spot hole longer than MAX_GAP_HOURS inside [start, end]."""
        ts = self._ts["spot"]
        i = max(self.idx("spot", start) - 1, 0)
        j = min(self.idx("spot", end) + 1, len(ts))
        for a, b in zip(ts[i:j], ts[i + 1:j], strict=False):
            if b - a > MAX_GAP_HOURS * HOUR:
                raise BacktestError(f"{SPOT_FILE}: gap of {(b - a) // HOUR} h in the spot history "
                                    f"before {iso(b)} (max {MAX_GAP_HOURS} h)")

    def end(self, series: str) -> int | None:
        ts = self._ts.get(series)
        return ts[-1] if ts else None


def _ohlc(path: Path, bar_seconds: int) -> tuple[list[Point], int]:
    if not path.exists():
        raise BacktestError(f"{path}: missing history file")
    _check_header(path, OHLC_HEADER)
    try:
        bars = load_ohlc(path)
    except HistoryFormatError as exc:
        raise BacktestError(str(exc).splitlines()[0]) from None
    if not bars:
        raise BacktestError(f"{path.name}: empty file (header only)")
    return closes(bars, bar_seconds), bars[0].ts


def load_history(directory: str | Path) -> History:
    d = Path(directory)
    if not d.is_dir():
        raise BacktestError(f"--history: {d} is not a directory")
    spot, start = _ohlc(d / SPOT_FILE, HOUR)
    dvol, _ = _ohlc(d / DVOL_FILE, DAY)
    usdc = _ohlc(d / USDC_FILE, 15 * 60)[0] if (d / USDC_FILE).exists() else None
    funding: dict[str, list[FundingPoint]] = {}
    for f in sorted(d.glob(FUNDING_PREFIX + "*.csv")):
        _check_header(f, FUNDING_HEADER)
        try:
            pts = load_funding(f)
        except HistoryFormatError as exc:
            raise BacktestError(str(exc).splitlines()[0]) from None
        if not pts:
            raise BacktestError(f"{f.name}: empty file (header only)")
        funding[f.stem[len(FUNDING_PREFIX):]] = pts
    return History(spot, dvol, funding, start, usdc)
