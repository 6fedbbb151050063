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
from policies.pricing import OptionKind
from policies.risk import (
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
    lot_cost: int
    metric: float  # premium per unit of underlying per day of protection

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
    if ask > layer.premium.max_pct_of_spot * spot:
        return "premium above limit"
    if inst.size_step <= 0 or not math.isfinite(inst.strike) or inst.strike <= 0:
        return "invalid instrument"
    return None


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
        cand = _Cand(q, q.ask, dte, lot_cost_cents(q.ask, q.instrument.size_step),
                     q.ask / max(dte, 1.0 / 24.0))
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


