"""A synthetic Deribit ETH option chain rebuilt at each step from what was known then.

Expiry calendar (dailies, Friday weeklies, last-Friday monthlies, quarterlies, 08:00 UTC),
a strike grid, implied vol from the last known DVOL close with a term structure and a put
skew that steepen/invert in stress, and a bid/ask spread widening with vol. Every number
comes from params.toml (with its source)."""

from __future__ import annotations

import calendar
import math
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from policies.hedge import Instrument, OptionQuote
from policies.pricing import OptionKind, black76_price
from policies.vocab import DERIBIT

PARAMS_PATH = Path(__file__).with_name("params.toml")
DAY = 86400
VENUE = DERIBIT
_MON = ("", "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


@dataclass(frozen=True)
class Params:
    raw: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path = PARAMS_PATH) -> Params:
        with Path(path).open("rb") as fh:
            return cls(tomllib.load(fh))

    def __getitem__(self, key: str) -> Any:
        section, name = key.split(".", 1)
        return self.raw[section][name]


def _last_friday(year: int, month: int) -> int:
    last = calendar.monthrange(year, month)[1]
    d = datetime(year, month, last, tzinfo=UTC)
    return last - (d.weekday() - 4) % 7


_LISTED: dict[tuple[int, ...], list[int]] = {}


def expiries(now: int, p: Params) -> list[int]:
    """Listed expiries after ``now`` (unix seconds, 08:00 UTC). They depend on ``now`` only
    through the next 08:00 after it (every expiry is at 08:00), so they are computed once
    per day."""
    hour = int(p["deribit.expiry_hour_utc"])
    base = datetime.fromtimestamp(now, UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    if base.timestamp() <= now:
        base += timedelta(days=1)
    counts = (int(p["deribit.dailies"]), int(p["deribit.weeklies"]),
              int(p["deribit.monthlies"]), int(p["deribit.quarterlies"]))
    key = (int(base.timestamp()), hour, *counts)
    got = _LISTED.get(key)
    if got is None:
        got = _LISTED[key] = _listed(base, hour, *counts)
    return got


def _listed(base: datetime, hour: int, dailies: int, weeklies: int, monthlies: int,
            quarterlies: int) -> list[int]:
    first = int(base.timestamp())
    out: set[int] = set()
    for i in range(dailies):
        out.add(int((base + timedelta(days=i)).timestamp()))
    fri = base + timedelta(days=(4 - base.weekday()) % 7)
    for i in range(weeklies):
        out.add(int((fri + timedelta(weeks=i)).timestamp()))
    y, m = base.year, base.month
    months: list[int] = []
    quarters: list[int] = []
    for _ in range(15):
        ts = int(datetime(y, m, _last_friday(y, m), hour, tzinfo=UTC).timestamp())
        if ts >= first:
            if len(months) < monthlies:
                months.append(ts)
            if m % 3 == 0 and len(quarters) < quarterlies:
                quarters.append(ts)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    out.update(months)
    out.update(quarters)
    return sorted(out)


def symbol(expiry: int, strike: float, kind: OptionKind) -> str:
    d = datetime.fromtimestamp(expiry, UTC)
    return f"ETH-{d.day}{_MON[d.month]}{d.year % 100:02d}-{strike:g}-{'P' if kind is OptionKind.PUT else 'C'}"


_INSTRUMENTS: dict[tuple[int, float, OptionKind], Instrument] = {}


def instrument(expiry: int, strike: float, kind: OptionKind, step: Decimal) -> Instrument:
    """The listed instrument (one object per expiry/strike/kind: cheap equality)."""
    key = (expiry, strike, kind)
    inst = _INSTRUMENTS.get(key)
    if inst is None:
        inst = Instrument(VENUE, symbol(expiry, strike, kind), "ETH", kind, strike, expiry, step)
        _INSTRUMENTS[key] = inst
    return inst


class Chain:
    """Quotes at one time from one DVOL close; also prices held instruments."""

    def __init__(self, p: Params, now: int, spot: float, dvol_points: float) -> None:
        self.p, self.now, self.spot, self.dvol = p, now, spot, dvol_points
        calm, stress = float(p["vol.calm_dvol"]), float(p["vol.stress_dvol"])
        w = min(max((dvol_points - calm) / (stress - calm), 0.0), 1.0)
        self.w = w
        self.min_vol = float(p["vol.min_vol"])
        self.atm30 = max((dvol_points - float(p["vol.atm_haircut_points"])) / 100.0,
                         self.min_vol)
        self.slope = float(p["vol.term_slope_calm"]) + w * (
            float(p["vol.term_slope_stress"]) - float(p["vol.term_slope_calm"]))
        self.skew = (float(p["vol.skew_25d_calm_points"]) + w * (
            float(p["vol.skew_25d_stress_points"]) - float(p["vol.skew_25d_calm_points"]))) / 100.0
        self.sp_base = float(p["spread.base_of_mid"])
        self.sp_vol = float(p["spread.per_vol_of_mid"])
        self.sp_min = float(p["spread.min_usd"])
        self.size_step = Decimal(str(p["deribit.size_step"]))
        self.oi = float(p["deribit.open_interest"])
        self._iv: dict[tuple[float, int], float] = {}

    def iv(self, strike: float, expiry: int) -> float:
        key = (strike, expiry)
        got = self._iv.get(key)
        if got is None:
            got = self._iv[key] = self._iv_calc(strike, expiry)
        return got

    def _iv_calc(self, strike: float, expiry: int) -> float:
        t_days = max((expiry - self.now) / DAY, 1.0 / 24)
        atm = self.atm30 * float((t_days / 30.0) ** self.slope)
        t = t_days / 365.0
        # moneyness in units of the 25-delta put's distance (ln K/F ~ -0.675 sigma sqrt T)
        m = -math.log(strike / self.spot) / (0.675 * atm * math.sqrt(t))
        m = min(max(m, -1.0), 3.0)
        return max(atm + self.skew * m, self.min_vol)

    def mid(self, kind: OptionKind, strike: float, expiry: int) -> float:
        t = max(expiry - self.now, 0) / (365.0 * DAY)
        if t <= 0:
            return (max(strike - self.spot, 0.0) if kind is OptionKind.PUT
                    else max(self.spot - strike, 0.0))
        return black76_price(kind, self.spot, strike, t, self.iv(strike, expiry))

    def bid_ask(self, kind: OptionKind, strike: float, expiry: int) -> tuple[float, float, float]:
        mid = self.mid(kind, strike, expiry)
        iv = self.iv(strike, expiry)
        half = 0.5 * max(mid * (self.sp_base + self.sp_vol * iv), self.sp_min)
        return max(mid - half, 0.0), mid + half, iv

    def strikes(self, lo_usd: float | None = None, hi_usd: float | None = None) -> list[float]:
        step = float(self.p["deribit.strike_step_below_2000"] if self.spot < 2000
                     else self.p["deribit.strike_step_above_2000"])
        lo_usd = max(lo_usd or 0.0, self.spot * float(self.p["deribit.strike_min_of_spot"]))
        hi_usd = min(hi_usd or math.inf, self.spot * float(self.p["deribit.strike_max_of_spot"]))
        lo, hi = math.ceil(lo_usd / step), math.floor(hi_usd / step)
        return [k * step for k in range(lo, hi + 1)]

    def quote(self, inst: Instrument) -> OptionQuote:
        """Quote of one listed instrument now (held instruments: marks, greeks, rolls)."""
        bid, ask, iv = self.bid_ask(inst.kind, inst.strike, inst.expiry)
        return OptionQuote(inst, bid, ask, iv, self.oi, self.spot, self.now)

    def quotes(self, min_days: float, max_days: float, lo_usd: float | None = None,
               hi_usd: float | None = None, *, calls: bool = False,
               call_ref: float | None = None) -> tuple[OptionQuote, ...]:
        """Puts with min_days <= tenor <= max_days and strikes in [lo_usd, hi_usd]; with
        ``calls``, calls struck from ``call_ref`` (max(spot, upper edge)) up to 25% above."""
        out: list[OptionQuote] = []
        strikes = self.strikes(lo_usd, hi_usd)
        call_strikes: list[float] = []
        if calls and call_ref is not None:
            call_strikes = self.strikes(call_ref * 0.99, call_ref * 1.25)
        for exp in expiries(self.now, self.p):
            dte = (exp - self.now) / DAY
            if dte > max_days or dte < min_days:
                continue
            for kind, ks in ((OptionKind.PUT, strikes), (OptionKind.CALL, call_strikes)):
                for k in ks:
                    out.append(self.quote(instrument(exp, k, kind, self.size_step)))
        return tuple(out)
