"""Layer rules: when a layer engages (triggers, hysteresis, unknown regime) and which
listed options it may use (eligibility, strike band, the candidate chain)."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from policies.exposure import Exposure
from policies.hedge import (
    Instrument,
    LayerEngagement,
    OptionQuote,
)
from policies.policy_file import Layer, Policy, level_of
from policies.pricing import OptionKind, black76, year_fraction
from policies.risk import (
    fee_lot_cents,
    lot_cost_cents,
)
from policies.types import HOUR, Level, Regime

_EPS = 1e-9


# ------------------------------------------------------------------------------ helpers


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _lvl(level: Level | None) -> str:
    return "unknown" if level is None else level.name.lower()


def _fmt(x: float) -> str:
    return f"{x:,.4g}" if abs(x) < 1000 else f"{x:,.0f}"


def _lots_up(amount: float, step: Decimal) -> int:
    return max(0, math.ceil(amount / float(step) - _EPS))


@dataclass(frozen=True, slots=True)
class _Cand:
    quote: OptionQuote
    ask: float
    dte: float
    lot_cost: int  # premium + worst-case fee of one size step, cents (what the budget pays)
    metric: float  # premium per unit per day held, net of the value back at the roll (M5)
    fee_lot: int = 0  # the fee part of lot_cost

    @property
    def premium_lot(self) -> int:
        return self.lot_cost - self.fee_lot

    @property
    def instrument(self) -> Instrument:
        return self.quote.instrument

    @property
    def sort_key(self) -> tuple[float, str, str]:
        return (self.metric, self.instrument.venue, self.instrument.symbol)


@dataclass(slots=True)
class _Chain:
    """Eligible instruments of one (underlying, layer, kind): the best per strike."""

    strikes: list[float]
    best: list[_Cand]
    rejected: dict[str, int]

    def nearest(self, target: float, lo: float, hi: float) -> _Cand | None:
        """The listed strike nearest ``target`` among those in [lo, hi] (ties: lower)."""
        tol = _EPS * max(1.0, abs(target))
        i = bisect_left(self.strikes, lo - tol)
        j = bisect_left(self.strikes, hi + tol)
        if i >= j:
            return None
        m = bisect_left(self.strikes, target, i, j)
        choices = [k for k in (m - 1, m) if i <= k < j]
        best = min(choices, key=lambda k: (abs(self.strikes[k] - target), self.strikes[k]))
        return self.best[best]


def eligibility(quote: OptionQuote, policy: Policy, layer: Layer, now: int,
                spot: float | None) -> str | None:
    """Why a quote cannot be used by a layer (None = eligible)."""
    inst = quote.instrument
    liq = policy.liquidity
    if inst.venue not in policy.venues.options:
        return "venue not allowed"
    if inst.expiry <= now:
        return "expired"
    dte = inst.days_to_expiry(now)
    if dte < max(layer.min_days, layer.roll.days_before_expiry) or dte > layer.max_days:
        return "outside tenor window"
    if quote.as_of > now or now - quote.as_of > liq.max_quote_age_seconds:
        return "stale quote"
    bid, ask = quote.bid, quote.ask
    if bid is None or ask is None or not math.isfinite(bid) or not math.isfinite(ask):
        return "no two-sided quote"
    if ask <= 0 or bid < 0 or bid > ask:
        return "invalid quote"
    mid = 0.5 * (bid + ask)
    if mid <= 0 or (ask - bid) / mid > liq.max_spread:
        return "spread too wide"
    oi = quote.open_interest
    if oi is None or not math.isfinite(oi) or oi < liq.min_open_interest:
        return "open interest too low or unknown"
    if spot is None or not math.isfinite(spot) or spot <= 0:
        return "no spot price for the premium limit"
    limit = premium_limit(quote, layer, now, spot)
    if limit is None:
        return "no mark IV for the premium limit"
    if ask > limit:
        return "premium above limit"
    if inst.size_step <= 0 or not math.isfinite(inst.strike) or inst.strike <= 0:
        return "invalid instrument"
    return None


def premium_limit(quote: OptionQuote, layer: Layer, now: int, spot: float) -> float | None:
    """The most the layer pays per unit for this instrument (None: unknown, not usable).

    ``max_vol_units x spot x IV x sqrt(T)`` with the quote's mark IV (issue 13, D2: the
    limit rises with vol and tenor as protection itself does) and/or a fixed
    ``max_pct_of_spot x spot``; the lower of those set."""
    prem = layer.premium
    limits: list[float] = []
    if prem.max_pct_of_spot is not None:
        limits.append(prem.max_pct_of_spot * spot)
    if prem.max_vol_units is not None:
        iv = quote.mark_iv
        if iv is None or not math.isfinite(iv) or iv <= 0:
            return None
        limits.append(prem.max_vol_units * spot * iv
                      * math.sqrt(year_fraction(now, quote.instrument.expiry)))
    return min(limits)


def cost_per_day_held(quote: OptionQuote, layer: Layer, now: int) -> float:
    """Premium per unit and day the layer actually holds the option, net of what it
    expects back when it sells it at the roll (issue 13, M5).

    The layer holds it until ``roll.days_before_expiry`` days are left, then sells it:
    (ask - value back) / (days to expiry - roll days). The value back is the Black-76
    value with roll-days left at today's forward and mark IV (no forward or IV known:
    nothing back, the whole ask is cost). Ask / days to expiry, the old measure, made a
    30-day option with a 10-day roll look cheaper than it is and ignored its resale."""
    assert quote.ask is not None
    dte = quote.instrument.days_to_expiry(now)
    roll_days = layer.roll.days_before_expiry
    held = max(dte - roll_days, 1.0 / 24.0)
    back = 0.0
    f, iv = quote.forward, quote.mark_iv
    if roll_days > 0 and f is not None and iv is not None and math.isfinite(f + iv) \
            and f > 0 and iv > 0:
        back = black76(quote.instrument.kind, f, quote.instrument.strike,
                       roll_days / 365.0, iv).price
    return max(quote.ask - back, 0.0) / held


def _chain(quotes: Iterable[OptionQuote], policy: Policy, layer: Layer, now: int,
           spot: float | None) -> _Chain:
    by_strike: dict[float, _Cand] = {}
    rejected: dict[str, int] = defaultdict(int)
    for q in quotes:
        why = eligibility(q, policy, layer, now, spot)
        if why is not None:
            rejected[why] += 1
            continue
        assert q.ask is not None
        dte = q.instrument.days_to_expiry(now)
        step = q.instrument.size_step
        assert spot is not None  # eligible quotes had a spot for the premium limit
        under = max(spot, q.forward) if q.forward is not None and math.isfinite(q.forward) \
            else spot
        fee = fee_lot_cents(q.ask, under, step, policy.budget.fee_of_underlying,
                            policy.budget.fee_cap_of_premium)
        cand = _Cand(q, q.ask, dte, lot_cost_cents(q.ask, step) + fee,
                     cost_per_day_held(q, layer, now), fee)
        k = q.instrument.strike
        if k not in by_strike or cand.sort_key < by_strike[k].sort_key:
            by_strike[k] = cand
    strikes = sorted(by_strike)
    return _Chain(strikes, [by_strike[k] for k in strikes], dict(sorted(rejected.items())))


def _strike_band(kind: OptionKind, e: Exposure, layer: Layer) -> tuple[float, float, float]:
    """(target, lowest, highest) strike of the rule for one position.

    Puts are struck off ``min(spot, lower edge)`` and calls off ``max(spot, upper edge)``:
    once spot has left the range on that side, a strike off the edge is in the money
    (it fails the premium limit and buys intrinsic value, not protection), so the
    offset is taken from spot instead (issue 13, D1)."""
    tol = layer.strike.tolerance
    if kind is OptionKind.PUT:
        a, b = layer.strike.put_offset
        base = min(e.spot, e.lower) if math.isfinite(e.spot) and e.spot > 0 else e.lower
        return (base * (1 - (a + b) / 2), base * max(1 - b - tol, 0.0),
                base * (1 - max(a - tol, 0.0)))
    a, b = layer.strike.call_offset
    base = max(e.spot, e.upper) if math.isfinite(e.spot) else e.upper
    return (base * (1 + (a + b) / 2), base * (1 + max(a - tol, 0.0)), base * (1 + b + tol))


# ------------------------------------------------------------------------------ engagement


@dataclass(frozen=True, slots=True)
class _Engagement:
    engaged: bool
    state: str
    reason: str


def _fired(layer: Layer, regime: Regime, slack: int) -> list[str]:
    fired: list[str] = []
    trig = layer.trigger
    assert regime.level is not None
    if trig.min_level is not None:
        need = max(level_of(trig.min_level) - slack, 0)
        if regime.level >= need:
            fired.append(f"regime {_lvl(regime.level)} >= {Level(need).name.lower()}")
    by_name = {s.name: s for s in regime.signals}
    for name, lvl in sorted(trig.signals.items()):
        reading = by_name.get(name)
        need = max(level_of(lvl) - slack, 0)
        if reading is not None and reading.level is not None and reading.level >= need:
            fired.append(f"{name} {_lvl(reading.level)} >= {Level(need).name.lower()}"
                         f" ({reading.reason})")
    return fired


def engagement(layer_name: str, layer: Layer, regime: Regime | None,
               prev: LayerEngagement | None, now: int) -> _Engagement:
    if regime is None or regime.level is None:
        why = regime.reason if regime is not None else "no regime reading"
        return _Engagement(prev is not None, "unknown",
                           f"regime unknown ({why}): layer {layer_name} kept "
                           f"{'engaged' if prev else 'idle'}, nothing new bought")
    fired = _fired(layer, regime, 0)
    if fired:
        return _Engagement(True, "engaged", "; ".join(fired))
    known = {s.name for s in regime.signals if s.level is not None}
    unknown = sorted(n for n in layer.trigger.signals if n not in known)
    quiet = (f"not triggered (regime {_lvl(regime.level)}"
             + (f"; unknown: {', '.join(unknown)}" if unknown else "") + ")")
    if prev is None:
        return _Engagement(False, "idle", quiet)
    if unknown:  # unknown is never calm: a trigger we cannot read cannot release the layer
        return _Engagement(True, "engaged", f"{quiet}, kept engaged: trigger signal(s) "
                           f"{', '.join(unknown)} unknown, an unknown trigger never releases")
    held_h = (now - prev.since) / HOUR
    if held_h < layer.hysteresis.min_engaged_hours:
        return _Engagement(True, "engaged", f"{quiet}, kept engaged: cooldown {held_h:.1f}h of "
                           f"{layer.hysteresis.min_engaged_hours:g}h since {_iso(prev.since)}")
    if layer.hysteresis.levels:
        held = _fired(layer, regime, layer.hysteresis.levels)
        if held:
            return _Engagement(True, "engaged", f"{quiet}, kept engaged by hysteresis "
                               f"({layer.hysteresis.levels} level(s)): " + "; ".join(held))
    return _Engagement(False, "released", f"{quiet}; released after {held_h:.1f}h engaged")


