"""Market history files: the CSV formats of the recorded set (shared/data/history) and
the writer used by ``lphedge history download``, so recorded and downloaded files load
alike.

Formats (timestamps are ISO 8601 UTC, the start of the bar or the settlement time):
- OHLC (spot klines, DVOL): ``ts_utc,open,high,low,close``
- funding: ``ts_utc,rate,interval_hours`` (rate = fraction paid per interval)
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from policies.errors import InvalidInput
from policies.signals import FundingPoint, Point

OHLC_HEADER = ("ts_utc", "open", "high", "low", "close")
FUNDING_HEADER = ("ts_utc", "rate", "interval_hours")


class HistoryFormatError(InvalidInput):
    """A history file that does not have the expected format."""


@dataclass(frozen=True, slots=True)
class Bar:
    ts: int  # unix seconds, bar start
    open: float
    high: float
    low: float
    close: float


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> int:
    try:
        dt = datetime.strptime(text.strip(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise HistoryFormatError(f"bad timestamp {text!r}: expected YYYY-MM-DDTHH:MM:SSZ") from exc
    return int(dt.timestamp())


def _rows(path: Path, header: Sequence[str]) -> Iterable[tuple[int, list[str]]]:
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        first = next(reader, None)
        if first is None or tuple(c.strip() for c in first) != tuple(header):
            raise HistoryFormatError(f"{path.name}: header {first} is not {','.join(header)}")
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise HistoryFormatError(f"{path.name}:{lineno}: {len(row)} columns, "
                                         f"expected {len(header)}")
            yield lineno, row


def _num(path: Path, lineno: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise HistoryFormatError(f"{path.name}:{lineno}: not a number: {text!r}") from exc
    if not math.isfinite(value):
        raise HistoryFormatError(f"{path.name}:{lineno}: not finite: {text!r}")
    return value


def load_ohlc(path: str | Path) -> list[Bar]:
    p = Path(path)
    bars: list[Bar] = []
    for lineno, row in _rows(p, OHLC_HEADER):
        ts = parse_iso(row[0])
        if bars and ts <= bars[-1].ts:
            raise HistoryFormatError(f"{p.name}:{lineno}: timestamps not ascending")
        o, h, lo, c = (_num(p, lineno, x) for x in row[1:])
        bars.append(Bar(ts, o, h, lo, c))
    return bars


def load_funding(path: str | Path) -> list[FundingPoint]:
    p = Path(path)
    out: list[FundingPoint] = []
    for lineno, row in _rows(p, FUNDING_HEADER):
        ts = parse_iso(row[0])
        if out and ts <= out[-1].ts:
            raise HistoryFormatError(f"{p.name}:{lineno}: timestamps not ascending")
        out.append(FundingPoint(ts, _num(p, lineno, row[1]), _num(p, lineno, row[2])))
    return out


def closes(bars: Sequence[Bar], bar_seconds: int) -> list[Point]:
    """Close prices stamped at the time they became known: the bar's end (start +
    ``bar_seconds``), not its start (that was a one-bar look-ahead)."""
    if bar_seconds <= 0:
        raise ValueError(f"bar_seconds: must be > 0, got {bar_seconds}")
    return [(b.ts + bar_seconds, b.close) for b in bars]


def _fmt(value: float) -> str:
    return repr(float(value)) if value != int(value) or abs(value) > 1e15 else f"{value:.1f}"


def write_ohlc(path: str | Path, bars: Iterable[Bar]) -> int:
    """Write bars (deduplicated by ts, ascending); returns the number of rows."""
    unique = {b.ts: b for b in bars}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(OHLC_HEADER)
        for ts in sorted(unique):
            b = unique[ts]
            w.writerow([iso(ts), _fmt(b.open), _fmt(b.high), _fmt(b.low), _fmt(b.close)])
    return len(unique)


def write_funding(path: str | Path, points: Iterable[FundingPoint]) -> int:
    unique = {pt.ts: pt for pt in points}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(FUNDING_HEADER)
        for ts in sorted(unique):
            pt = unique[ts]
            hours = pt.interval_hours
            w.writerow([iso(ts), f"{pt.rate:.10f}",
                        str(int(hours)) if hours == int(hours) else repr(hours)])
    return len(unique)
