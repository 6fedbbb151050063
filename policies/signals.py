"""Regime signals: pure functions from time series to levelled readings.

No I/O, no clock, no randomness. ``now`` (unix seconds) and every series are
inputs; hysteresis state is the previous level, passed in and returned inside
the reading, never hidden in this module.

Every signal turns its inputs into one *severity score* (bigger = worse) and
maps the score to a level with ascending entry thresholds (elevated, stress,
crisis) and a hysteresis band: a level, once reached, is kept until the score
falls below its entry threshold minus the band. Unknown, stale, NaN, negative
or absurd inputs give ``level=None`` with the reason, never a default.

Signal names (used by the policy as trigger names): ``iv_percentile``,
``term_structure``, ``tvl_drop``, ``funding``, ``depeg``, ``rsi_macd``.
The methodology's trigger thresholds are the ELEVATED entry thresholds.

The levelling core (thresholds, hysteresis, input checks) is policies/signal_levels.py;
the numeric indicators (percentile, z-score, RSI, MACD) are policies/indicators.py.
Both stay importable from here.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from policies.indicators import (
    Point,
    macd_histogram,
    mean_std,
    percentile_rank,
    resample_closes,
    rsi,
    zscore,
)
from policies.signal_levels import EPS, Thresholds, bad_value, check_series, classify, levelled
from policies.signal_levels import unknown as _unknown
from policies.signal_levels import window as _window
from policies.types import DAY, HOUR, Level, Regime, SignalReading
from policies.vocab import (  # the signal names, re-exported for callers
    DEPEG,
    FUNDING,
    IV_PERCENTILE,
    PRIMARY_SIGNALS,
    RSI_MACD,
    SECONDARY_SIGNALS,
    TERM_STRUCTURE,
    TVL_DROP,
)

__all__ = [  # the levelling core and the indicators stay importable from here
    "DEPEG", "EPS", "FUNDING", "IV_PERCENTILE", "PRIMARY_SIGNALS", "RSI_MACD",
    "SECONDARY_SIGNALS", "TERM_STRUCTURE", "TVL_DROP", "DepegConfig", "FundingConfig",
    "FundingPoint", "IvPercentileConfig", "Level", "PegQuote", "Point", "Regime",
    "RsiMacdConfig", "SignalReading", "TermStructureConfig", "Thresholds", "TvlDropConfig",
    "aggregate", "annualise", "classify", "constant_maturity_iv", "depeg", "funding",
    "iv_percentile",
    "resample_closes", "rsi", "rsi_macd", "term_structure", "tvl_drop",
    "tvl_drop_at_fixed_prices",
]


YEAR_HOURS = 24 * 365


# --- implied vol percentile -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class IvPercentileConfig:
    window_days: int = 90
    min_points: int = 60
    max_age: int = 2 * DAY
    max_vol: float = 500.0  # vol points; beyond is absurd
    thresholds: Thresholds = field(
        default_factory=lambda: Thresholds(elevated=70.0, stress=90.0, crisis=98.0, band=5.0))


def iv_percentile(dvol: Sequence[Point], now: int, previous: Level | None = None,
                  config: IvPercentileConfig | None = None) -> SignalReading:
    """Percentile (0-100) of the latest implied-vol index value within the trailing window.

    Percentile = share of window values <= latest (the latest included), so a
    new 90-day high is 100.
    """
    cfg = config or IvPercentileConfig()
    bad = check_series(IV_PERCENTILE, dvol, now, cfg.max_age, positive=True, upper=cfg.max_vol)
    if bad is not None:
        return bad
    window = _window(dvol, now - cfg.window_days * DAY, now)
    if len(window) < cfg.min_points:
        return _unknown(IV_PERCENTILE, f"only {len(window)} points in {cfg.window_days}d window, "
                        f"need {cfg.min_points}", points=len(window))
    latest_ts, latest = window[-1]
    pct = percentile_rank([v for _, v in window], latest)
    lo = min(v for _, v in window)
    hi = max(v for _, v in window)
    return levelled(IV_PERCENTILE, pct, cfg.thresholds, previous,
                     f"IV {latest:g} at {pct:.0f}th percentile of {cfg.window_days}d",
                     {"latest": latest, "latest_ts": latest_ts, "percentile": pct,
                      "window_min": lo, "window_max": hi, "points": len(window)})


# --- IV term structure ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TermStructureConfig:
    """Constant-maturity term structure (issue 13, Q2): the ATM IV interpolated at
    ``short_days`` against the one at ``long_days`` (30 days, the DVOL horizon).

    Comparing the nearest listed expiry with the farthest one (the old rule) mixed
    tenors that move with the calendar and, at threshold 0, read a flat curve as
    elevated; a constant-maturity ratio with a 5% entry does neither."""

    min_front_days: float = 2.0  # skip expiries closer than this (expiry-day noise)
    short_days: float = 7.0
    long_days: float = 30.0
    # flat-vol extrapolation beyond the listed expiries, at most this many days
    max_extrapolation_days: float = 3.0
    max_age: int = 15 * 60
    max_iv: float = 5.0  # 500% as a fraction
    thresholds: Thresholds = field(
        default_factory=lambda: Thresholds(elevated=0.05, stress=0.10, crisis=0.25, band=0.03))


def constant_maturity_iv(points: Sequence[tuple[float, float]], days: float,
                         max_extrapolation_days: float) -> float | None:
    """ATM IV at ``days`` from (days to expiry, IV) points sorted by days: total variance
    (IV^2 x days) linear in days between the bracketing expiries; flat vol up to
    ``max_extrapolation_days`` outside them; None beyond (unknown, not guessed)."""
    if not points:
        return None
    first, last = points[0], points[-1]
    if days <= first[0]:
        return first[1] if first[0] - days <= max_extrapolation_days else None
    if days >= last[0]:
        return last[1] if days - last[0] <= max_extrapolation_days else None
    for (d0, v0), (d1, v1) in pairwise(points):
        if d0 <= days <= d1:
            w0, w1 = v0 * v0 * d0, v1 * v1 * d1
            w = w0 + (w1 - w0) * (days - d0) / (d1 - d0)
            return math.sqrt(w / days) if w > 0 else None
    return None


def term_structure(atm_iv: Sequence[tuple[int, float]], as_of: int, now: int,
                   previous: Level | None = None,
                   config: TermStructureConfig | None = None) -> SignalReading:
    """Backwardation of the ATM IV curve: score = IV(short_days) / IV(long_days) - 1,
    both at constant maturity (see TermStructureConfig).

    ``atm_iv`` is (expiry unix seconds, ATM IV as a fraction) per expiry, taken at
    ``as_of``. Contango gives a negative score (calm); backwardation of at least the
    elevated threshold (5%) is elevated.
    """
    cfg = config or TermStructureConfig()
    if as_of > now:
        return _unknown(TERM_STRUCTURE, f"as_of {as_of} is after now {now}")
    if now - as_of > cfg.max_age:
        return _unknown(TERM_STRUCTURE, f"stale: chain is {now - as_of}s old, bound {cfg.max_age}s",
                        as_of=as_of, age_s=now - as_of)
    usable: list[tuple[float, float]] = []
    for expiry, iv in sorted(atm_iv):
        bad = bad_value(iv, positive=True, upper=cfg.max_iv)
        if bad is not None:
            return _unknown(TERM_STRUCTURE, f"invalid ATM IV for expiry {expiry}: {bad}")
        if expiry - as_of >= cfg.min_front_days * DAY:
            usable.append(((expiry - as_of) / DAY, iv))
    if len(usable) < 2:
        return _unknown(TERM_STRUCTURE, f"need 2 expiries at least {cfg.min_front_days:g}d out, "
                        f"have {len(usable)}")
    short = constant_maturity_iv(usable, cfg.short_days, cfg.max_extrapolation_days)
    long = constant_maturity_iv(usable, cfg.long_days, cfg.max_extrapolation_days)
    if short is None or long is None:
        return _unknown(TERM_STRUCTURE, f"listed expiries {usable[0][0]:.1f}-{usable[-1][0]:.1f}d "
                        f"do not reach {cfg.short_days:g}d and {cfg.long_days:g}d (within "
                        f"{cfg.max_extrapolation_days:g}d)", expiries=len(usable))
    score = short / long - 1.0
    shape = "backwardation" if score > 0 else "contango" if score < 0 else "flat"
    return levelled(TERM_STRUCTURE, score, cfg.thresholds, previous,
                     f"{shape}: {cfg.short_days:g}d / {cfg.long_days:g}d ATM IV - 1 = "
                     f"{score:+.3f}",
                     {"short_iv": short, "long_iv": long, "short_days": cfg.short_days,
                      "long_days": cfg.long_days, "as_of": as_of, "expiries": len(usable),
                      "front_iv": usable[0][1], "front_days": usable[0][0],
                      "back_iv": usable[-1][1], "back_days": usable[-1][0]})


# --- TVL drop -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TvlDropConfig:
    window_hours: int = 48
    min_coverage_hours: int = 24  # the series must reach this far back into the window
    max_age: int = 2 * HOUR
    max_tvl: float = 1e13
    thresholds: Thresholds = field(
        default_factory=lambda: Thresholds(elevated=0.08, stress=0.15, crisis=0.30, band=0.02))


def tvl_drop(tvl: Sequence[Point], now: int, previous: Level | None = None,
             config: TvlDropConfig | None = None) -> SignalReading:
    """Drawdown of TVL from its peak within the trailing window: 1 - latest / peak."""
    cfg = config or TvlDropConfig()
    bad = check_series(TVL_DROP, tvl, now, cfg.max_age, positive=False, upper=cfg.max_tvl)
    if bad is not None:
        return bad
    if any(v < 0 for _, v in tvl):
        return _unknown(TVL_DROP, "invalid input: negative TVL")
    start = now - cfg.window_hours * HOUR
    window = _window(tvl, start, now)
    earlier = _window(tvl, 0, start)
    covered = now - (earlier[-1][0] if earlier else window[0][0])
    if covered < cfg.min_coverage_hours * HOUR:
        return _unknown(TVL_DROP, f"history covers {covered / HOUR:.1f}h, need "
                        f"{cfg.min_coverage_hours}h", covered_s=covered)
    if earlier:  # the value in force at the window start counts too
        window = [(start, earlier[-1][1]), *window]
    peak_ts, peak = max(window, key=lambda p: p[1])
    latest_ts, latest = window[-1]
    if peak <= 0:
        return _unknown(TVL_DROP, "TVL is zero over the whole window")
    drop = (peak - latest) / peak
    return levelled(TVL_DROP, drop, cfg.thresholds, previous,
                     f"TVL down {100 * drop:.1f}% from {cfg.window_hours}h peak",
                     {"latest": latest, "latest_ts": latest_ts, "peak": peak,
                      "peak_ts": peak_ts, "drop": drop})


def tvl_drop_at_fixed_prices(balances: Sequence[tuple[int, float, float]],
                             prices: tuple[float, float], now: int,
                             previous: Level | None = None,
                             config: TvlDropConfig | None = None) -> SignalReading:
    """TVL drop with every sample's token amounts valued at the same prices (issue 13, Q1).

    ``balances`` are (ts, amount of token0, amount of token1) held by the pool; ``prices``
    the USD prices of the two tokens now. USD TVL moves with price: a 16% ETH move alone
    takes a 50/50 pool's USD TVL down ~8%, the trigger level, with no liquidity leaving.
    Valued at fixed prices, only liquidity leaving (or the pool's rebalancing, second
    order) moves it. Unknown or non-positive prices give an unknown reading."""
    for which, p in (("token0", prices[0]), ("token1", prices[1])):
        bad = bad_value(p, positive=True)
        if bad is not None:
            return _unknown(TVL_DROP, f"{which} price for fixed-price TVL: {bad}")
    for ts, a0, a1 in balances:
        bad = bad_value(a0) or bad_value(a1)
        if bad is not None or a0 < 0 or a1 < 0:
            return _unknown(TVL_DROP, f"invalid balance at ts {ts}: {bad or 'negative'}")
    series = [(ts, a0 * prices[0] + a1 * prices[1]) for ts, a0, a1 in balances]
    r = tvl_drop(series, now, previous, config)
    return SignalReading(r.name, r.level, r.reason.replace("TVL down", "TVL at fixed prices down"),
                         {**r.evidence, "basis": "fixed prices", "price0": prices[0],
                          "price1": prices[1]})


# --- funding ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FundingPoint:
    ts: int  # settlement time, unix seconds
    rate: float  # fraction paid per interval
    interval_hours: float

    @property
    def annualised(self) -> float:
        return annualise(self.rate, self.interval_hours)


def annualise(rate: float, interval_hours: float) -> float:
    """Simple annualisation of a per-interval funding rate."""
    return rate * YEAR_HOURS / interval_hours


@dataclass(frozen=True, slots=True)
class FundingConfig:
    recent_hours: int = 8  # average over this window is "current" funding
    baseline_days: int = 30
    min_baseline_points: int = 20
    min_std: float = 0.05  # annualised; floor of the z-score denominator
    max_age_intervals: float = 2.0  # stale after this many intervals without a settlement
    max_abs_rate: float = 0.05  # 5% per interval is absurd (venue caps are far lower)
    absolute: Thresholds = field(  # |annualised funding|
        default_factory=lambda: Thresholds(elevated=0.60, stress=1.20, crisis=2.50, band=0.10))
    zscore: Thresholds = field(  # |z| of recent funding versus its baseline
        default_factory=lambda: Thresholds(elevated=4.0, stress=7.0, crisis=12.0, band=0.5))

    def __post_init__(self) -> None:
        # a zero floor would divide by zero on a flat baseline (all rates equal)
        for name in ("recent_hours", "baseline_days", "min_std", "max_age_intervals",
                     "max_abs_rate"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"FundingConfig.{name} must be finite and > 0, got {value!r}")


def _funding_venue(venue: str, series: Sequence[FundingPoint], now: int, previous: Level | None,
                   cfg: FundingConfig) -> tuple[Level | None, str, dict[str, object]]:
    if not series:
        return None, f"{venue}: no data", {}
    for p in series:
        bad = bad_value(p.rate, upper=cfg.max_abs_rate) or bad_value(p.interval_hours,
                                                                      positive=True, upper=24 * 7)
        if bad is not None:
            return None, f"{venue}: invalid input at ts {p.ts}: {bad}", {"bad_ts": p.ts}
    ordered = sorted(series, key=lambda p: p.ts)
    last = ordered[-1]
    if last.ts > now:
        return None, f"{venue}: latest settlement {last.ts} is after now {now}", {}
    max_age = int(cfg.max_age_intervals * last.interval_hours * HOUR)
    if now - last.ts > max_age:
        return None, f"{venue}: stale, latest settlement {now - last.ts}s old, bound {max_age}s", {
            "latest_ts": last.ts}
    recent_start = now - cfg.recent_hours * HOUR
    times = [p.ts for p in ordered]
    i_recent = bisect_right(times, recent_start)
    recent = ordered[i_recent:] or [last]
    base = ordered[bisect_left(times, now - cfg.baseline_days * DAY):i_recent]
    if len(base) < cfg.min_baseline_points:
        return None, f"{venue}: baseline has {len(base)} points, need {cfg.min_baseline_points}", {}
    current = sum(p.annualised for p in recent) / len(recent)
    mean, std = mean_std([p.annualised for p in base])
    z = zscore(current, mean, std, cfg.min_std)
    lvl_abs = classify(abs(current), cfg.absolute, previous)
    lvl_z = classify(abs(z), cfg.zscore, previous)
    evidence: dict[str, object] = {
        "current_annualised": current, "latest_rate": last.rate, "latest_ts": last.ts,
        "interval_hours": last.interval_hours, "baseline_mean": mean, "baseline_std": std,
        "z": z, "level_abs": lvl_abs.name.lower(), "level_z": lvl_z.name.lower()}
    return max(lvl_abs, lvl_z), (f"{venue}: funding {100 * current:+.1f}% APR, z {z:+.1f}"), evidence


def funding(venues: Mapping[str, Sequence[FundingPoint]], now: int,
            previous: Level | None = None, config: FundingConfig | None = None) -> SignalReading:
    """Funding spike: the worst venue's level from |annualised funding| and its |z-score|.

    Each venue's current funding is the mean annualised rate settled in the last
    ``recent_hours``; the z-score is against the trailing ``baseline_days``
    before that. Venues that are unknown are listed; the signal is unknown only
    when no venue is known.
    """
    cfg = config or FundingConfig()
    if not venues:
        return _unknown(FUNDING, "no venue configured")
    per_venue: dict[str, object] = {}
    known: list[tuple[Level, float, str]] = []
    unknown: list[str] = []
    for venue in sorted(venues):
        level, why, evidence = _funding_venue(venue, venues[venue], now, previous, cfg)
        per_venue[venue] = {"level": None if level is None else level.name.lower(),
                            "reason": why, **evidence}
        if level is None:
            unknown.append(why)
        else:
            current = evidence.get("current_annualised")
            known.append((level, abs(current) if isinstance(current, float) else 0.0, why))
    thresholds = {"absolute": cfg.absolute.as_evidence(), "zscore": cfg.zscore.as_evidence()}
    if not known:
        return _unknown(FUNDING, "no venue known: " + "; ".join(unknown), venues=per_venue)
    level, _, why = max(known, key=lambda k: (k[0], k[1]))
    reason = why + (f" ({len(unknown)} venue(s) unknown)" if unknown else "")
    return SignalReading(name=FUNDING, level=level, reason=reason,
                         evidence={"venues": per_venue, "thresholds": thresholds,
                                   "previous": None if previous is None else previous.name.lower()})


# --- stablecoin depeg ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PegQuote:
    source: str  # e.g. "chainlink:USDC/USD", "uniswap:USDC/USDT/100", "binance:USDC/USDT"
    price: float | None  # price of the stablecoin in its peg unit; None = unknown at source
    as_of: int | None
    max_age: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DepegConfig:
    peg: float = 1.0
    max_price_ratio: float = 10.0  # price outside [peg/10, peg*10] is absurd, not a depeg
    max_skew: int = 5  # seconds a source's clock may run ahead of ``now`` (receipt times)
    thresholds: Thresholds = field(  # basis points off peg
        default_factory=lambda: Thresholds(elevated=50.0, stress=100.0, crisis=300.0, band=10.0))


def depeg(asset: str, quotes: Sequence[PegQuote], now: int, previous: Level | None = None,
          config: DepegConfig | None = None) -> SignalReading:
    """Deviation from peg in bps: the largest |deviation| among fresh, valid sources.

    Chainlink moves only on its deviation threshold or heartbeat, so the AMM and
    CEX prices are combined with it: any one fresh source off peg counts.
    """
    cfg = config or DepegConfig()
    sources: dict[str, object] = {}
    fresh: list[tuple[float, PegQuote]] = []
    for q in quotes:
        why: str | None = None
        if q.price is None or q.as_of is None:
            why = q.reason or "unknown at source"
        else:
            bad = bad_value(q.price, positive=True)
            if bad is not None:
                why = f"invalid price: {bad}"
            elif not cfg.peg / cfg.max_price_ratio <= q.price <= cfg.peg * cfg.max_price_ratio:
                why = f"absurd price {q.price:g} for peg {cfg.peg:g}"
            elif q.as_of > now + cfg.max_skew:
                why = f"as_of {q.as_of} is after now {now}"
            elif now - q.as_of > q.max_age:
                why = f"stale: {now - q.as_of}s old, bound {q.max_age}s"
        if why is None:
            assert q.price is not None
            bps = (q.price - cfg.peg) / cfg.peg * 1e4
            fresh.append((bps, q))
            sources[q.source] = {"price": q.price, "as_of": q.as_of, "bps": bps}
        else:
            sources[q.source] = {"price": q.price, "as_of": q.as_of, "unknown": why}
    if not fresh:
        whys = "; ".join(f"{src}: {info['unknown']}" for src, info in sources.items()
                         if isinstance(info, dict))
        return _unknown(DEPEG, f"{asset}: no fresh valid price source ({whys})",
                        asset=asset, sources=sources)
    bps, worst = max(fresh, key=lambda f: abs(f[0]))
    n_unknown = len(quotes) - len(fresh)
    result = levelled(DEPEG, abs(bps), cfg.thresholds, previous,
                       f"{asset} {bps:+.0f} bps off peg at {worst.source}",
                       {"asset": asset, "worst_source": worst.source, "bps": bps,
                        "sources": sources})
    if n_unknown:
        result = SignalReading(result.name, result.level,
                               result.reason + f" ({n_unknown} source(s) unknown)",
                               result.evidence)
    return result


# --- RSI / MACD (secondary) ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RsiMacdConfig:
    rsi_period: int = 14
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    bar_seconds: int = DAY
    max_age: int = 2 * DAY
    rsi: Thresholds = field(  # |RSI - 50|: 25 means RSI <= 25 or >= 75
        default_factory=lambda: Thresholds(elevated=25.0, stress=33.0, crisis=40.0, band=3.0))
    macd: Thresholds = field(  # |MACD histogram| / price, in percent
        default_factory=lambda: Thresholds(elevated=3.0, stress=6.0, crisis=10.0, band=0.5))


def rsi_macd(closes: Sequence[Point], now: int, previous: Level | None = None,
             config: RsiMacdConfig | None = None) -> SignalReading:
    """RSI and MACD-histogram extremes on bars of ``bar_seconds`` (secondary signal).

    ``closes`` are (ts, close) of any resolution finer than or equal to the bar;
    they are resampled to the last close in each bar.
    """
    cfg = config or RsiMacdConfig()
    bad = check_series(RSI_MACD, closes, now, cfg.max_age, positive=True, upper=1e12)
    if bad is not None:
        return bad
    bars = resample_closes(closes, cfg.bar_seconds)
    need = max(cfg.macd_slow + cfg.macd_signal, cfg.rsi_period + 1) + 10
    if len(bars) < need:
        return _unknown(RSI_MACD, f"only {len(bars)} bars, need {need}", bars=len(bars))
    values = [v for _, v in bars[-(need * 4):]]
    r = rsi(values, cfg.rsi_period)
    hist = macd_histogram(values, cfg.macd_fast, cfg.macd_slow, cfg.macd_signal)
    hist_pct = 100.0 * hist / values[-1]
    lvl_rsi = classify(abs(r - 50.0), cfg.rsi, previous)
    lvl_macd = classify(abs(hist_pct), cfg.macd, previous)
    level = max(lvl_rsi, lvl_macd)
    return SignalReading(
        name=RSI_MACD, level=level,
        reason=f"RSI {r:.0f} ({lvl_rsi.name.lower()}), MACD hist {hist_pct:+.2f}% of price "
               f"({lvl_macd.name.lower()})",
        evidence={"rsi": r, "macd_hist_pct": hist_pct, "close": values[-1],
                  "bar_ts": bars[-1][0], "rsi_thresholds": cfg.rsi.as_evidence(),
                  "macd_thresholds": cfg.macd.as_evidence(),
                  "previous": None if previous is None else previous.name.lower()})


# --- aggregate regime ---------------------------------------------------------------------

def aggregate(underlying: str, signals: Sequence[SignalReading],
              required: Sequence[str] = ()) -> Regime:
    """Regime of one underlying from its signals.

    Level = the highest known primary signal. RSI/MACD is secondary: it never
    raises the regime on its own, but an extreme (stress or worse) confirms a
    primary signal that is at least elevated and lifts the regime by one step.
    Unknown if no primary signal is known or a ``required`` signal is unknown.
    """
    by_name = {s.name: s for s in signals}
    unknown = sorted(s.name for s in signals if s.level is None)
    missing_required = [n for n in required if by_name.get(n) is None
                        or by_name[n].level is None]
    if missing_required:
        return Regime(underlying, None, "required signal(s) unknown: "
                      + ", ".join(missing_required), tuple(signals))
    primaries = [s for s in signals if s.name not in SECONDARY_SIGNALS and s.level is not None]
    if not primaries:
        return Regime(underlying, None, "no primary signal known"
                      + (f" (unknown: {', '.join(unknown)})" if unknown else ""), tuple(signals))
    top = max(primaries, key=lambda s: (s.level, s.name))
    assert top.level is not None
    level = top.level
    reason = f"{top.name} {top.level.name.lower()}: {top.reason}"
    if level is Level.CALM:
        reason = "all known primary signals calm"
    secondary = [s for s in signals if s.name in SECONDARY_SIGNALS and s.level is not None]
    for s in secondary:
        assert s.level is not None
        if s.level >= Level.STRESS and Level.ELEVATED <= level < Level.CRISIS:
            level = Level(level + 1)
            reason += f"; confirmed by {s.name} ({s.reason})"
    if unknown:
        reason += f"; unknown: {', '.join(unknown)}"
    return Regime(underlying, level, reason, tuple(signals))
