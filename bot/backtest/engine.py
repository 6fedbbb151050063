"""The hour-by-hour backtest loop.

At each hour ``now`` the engine (1) reads what was known at ``now`` (data.History),
(2) runs the daemon's signal functions and aggregate() into a Regime, carrying each
signal's level as the next step's hysteresis state, (3) rebuilds the synthetic chain
(chain.Chain), (4) builds DecisionInputs the way policies/state_file.py does and calls
the same policies.alvh.decide(), (5) fills the intents: buys at the ask plus Deribit's
fee, roll sales at the bid, expiries at intrinsic minus the delivery fee, perps at the
mark plus the venue's taker fee (all through policies.fills), funding at each settlement,
and (6) accrues LP fees while in range and re-centres the LP every ``recenter_days`` (gas charged).

``Config.baseline`` replaces decide() by the naive baseline of the issue: always hold
x_max of a ~30-day put struck 5% below the range's lower edge, bought at the ask, held
to expiry and replaced (no signals, no perps)."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from bot.backtest.chain import VENUE, Chain, Params, expiries, instrument
from bot.backtest.data import DAY, HOUR, USDC_FILE, BacktestError, History
from policies import fills as F
from policies import signals as S
from policies.alvh import DecisionInputs, decide
from policies.exposure import Exposure, exposure
from policies.hedge import (
    AdjustPerp,
    CloseOption,
    ExitLP,
    HedgeBook,
    OpenOption,
    PerpQuote,
    RollOption,
    apply_intents,
    intent_premium_cents,
    intent_to_json,
)
from policies.layer_rules import engagement
from policies.lp_math import get_tick_at_sqrt_ratio
from policies.policy_file import Coverage, Policy
from policies.pricing import OptionKind
from policies.risk import BudgetState
from policies.types import Level, PoolState, Position, Regime, SignalReading, TickFeeGrowth, Token

YEAR = 365 * DAY
USDC = Token("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", "USDC", 6)
WETH = Token("0xc02aaa39b223fe8d0a5e5c5d1b1f9dcfd8b1a2e1", "WETH", 18)
TICK_SPACING = 10
RSI_DAYS = 60  # daily closes handed to rsi_macd (it needs >= 45 daily bars)
UNDERLYING = "ETH"
# DecisionInputs.held (issue 13, M3) exists once that fix has landed; older trees lack it
_HAS_HELD = "held" in {f.name for f in dataclasses.fields(DecisionInputs)}


@dataclass(frozen=True)
class Config:
    start: int
    end: int
    range_pct: float = 20.0
    recenter_days: float = 30.0
    fee_apr: float = 0.20
    position_usd: float = 1_000_000.0
    baseline: bool = False  # naive always-on 30-day put 5% below the range instead of decide()


@dataclass
class LayerStats:
    hours_engaged: int = 0
    spend_usd: float = 0.0  # premium + fees
    payoff_usd: float = 0.0  # settlement and roll-sale proceeds


@dataclass
class Result:
    ts: list[int] = field(default_factory=list)
    spot: list[float] = field(default_factory=list)
    unhedged: list[float] = field(default_factory=list)
    hedged: list[float] = field(default_factory=list)
    dvol: list[float] = field(default_factory=list)
    atm_iv: list[float] = field(default_factory=list)  # 30-day ATM vol of the chain (fraction)
    engaged: list[tuple[str, ...]] = field(default_factory=list)
    regime: list[str | None] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    fee_income: float = 0.0
    gas: float = 0.0
    premium: float = 0.0
    option_fees: float = 0.0
    delivery_fees: float = 0.0
    option_payoff: float = 0.0
    perp_fees: float = 0.0
    funding_paid: float = 0.0  # positive = paid, negative = received
    recenters: int = 0
    exit_at: int | None = None
    depeg_read: bool = False  # a usdc_usd_15m.csv was there
    layers: dict[str, LayerStats] = field(default_factory=lambda: defaultdict(LayerStats))
    unknown: dict[str, list[list[int]]] = field(default_factory=lambda: defaultdict(list))
    unknown_reason: dict[str, str] = field(default_factory=dict)
    ended: dict[str, int] = field(default_factory=dict)  # series -> last known-at time
    final_ethx: float = 0.0  # x_max of the (unhedged) LP at the end
    final_eth_held: float = 0.0  # ETH held by the (unhedged) LP at the end

    def mark_unknown(self, name: str, now: int, reason: str = "") -> None:
        spans = self.unknown[name]
        if spans and spans[-1][1] == now - HOUR:
            spans[-1][1] = now
        else:
            spans.append([now, now])
            if reason:
                self.unknown_reason.setdefault(name, reason)


def _tick_for_usd(price: float) -> int:
    """Pool tick (USDC token0, WETH token1) of an ETH price in USD."""
    return math.floor(math.log(1e12 / price) / math.log(1.0001))


def _sqrt_x96(price: float) -> int:
    return int(math.sqrt(1e12 / price) * 2**96)


class LP:
    """One USDC/WETH v3 position valued through policies.exposure (the exact LP math)."""

    def __init__(self, pool_addr: str, token_id: int, center: float, range_pct: float,
                 value_usd: float) -> None:
        r = range_pct / 100.0
        lo = (_tick_for_usd(center * (1 + r)) // TICK_SPACING) * TICK_SPACING
        hi = -((-_tick_for_usd(center * (1 - r))) // TICK_SPACING) * TICK_SPACING
        self.pool_addr, self.token_id, self.tick_lower, self.tick_upper = pool_addr, token_id, lo, hi
        self.cover = Coverage(underlying=UNDERLYING, quote="USDC", pool=pool_addr.lower(),
                              underlying_token="token1", token_ids=())
        e1 = self.exposure(center, liquidity=10**12)
        self.liquidity = int(value_usd / e1.value_usd * 10**12)

    def position(self, spot: float, liquidity: int | None = None) -> Position:
        sqrt = _sqrt_x96(spot)
        pool = PoolState(self.pool_addr, USDC, WETH, 500, TICK_SPACING, sqrt,
                         get_tick_at_sqrt_ratio(sqrt), 0, 0, 0)
        return Position(self.token_id, "0x" + "0" * 40,
                        "0xC36442b4a4522E871399CD717aBDD847Ab11FE88", pool, self.tick_lower,
                        self.tick_upper, self.liquidity if liquidity is None else liquidity,
                        0, 0, 0, 0, TickFeeGrowth(0, 0), TickFeeGrowth(0, 0))

    def exposure(self, spot: float, liquidity: int | None = None) -> Exposure:
        return exposure(self.position(spot, liquidity), self.cover)


def _level_name(level: Level | None) -> str | None:
    return None if level is None else level.name.lower()


class _Clock:
    """Last value known at ``now`` of one (known-at, value) series (monotone cursor)."""

    def __init__(self, history: History, series: str, points: list[tuple[int, float]]) -> None:
        self.h, self.series, self.points = history, series, points

    def at(self, now: int) -> tuple[int, float] | None:
        i = self.h.idx(self.series, now)
        return self.points[i - 1] if i else None


def _strike_band(policy: Policy, names: list[str], ref: float, held: list[float],
                 margin: float) -> tuple[float, float]:
    """Put strikes worth quoting: the layers' offset bands below ``ref`` (min(spot, lower
    edge)) widened by ``margin`` and by the tolerance, plus the held strikes (rolls)."""
    lo_off = max(policy.layers[n].strike.put_offset[1] + policy.layers[n].strike.tolerance
                 for n in names)
    hi_off = min(policy.layers[n].strike.put_offset[0] for n in names)
    lo = ref * max(1 - lo_off - margin, 0.05)
    hi = ref * (1 - hi_off + margin)
    if held:
        lo, hi = min(lo, min(held) * (1 - margin)), max(hi, max(held) * (1 + margin))
    return lo, hi


def signal_track(history: History, cfg: Config,
                 params: Params | None = None) -> list[list[SignalReading]]:
    """Every hour's signal readings of a run over ``cfg.start..cfg.end``. They depend on
    the history only (not on the policy), so a sweep computes them once and hands them to
    ``run(track=...)``: the same calls, in the same order, as ``run`` makes without it."""
    p = params or Params.load()
    _check_range(history, cfg)
    usdc_clock = _Clock(history, "usdc", history.usdc) if history.usdc is not None else None
    signal_files = {v: _stem(f) for v, f in dict(p["signals.funding_files"]).items()
                    if _stem(f) in history.funding}
    prev: dict[str, Level | None] = {}
    out: list[list[SignalReading]] = []
    now = cfg.start - cfg.start % HOUR
    while now <= cfg.end:
        readings = _signals(history, now, prev, signal_files, usdc_clock,
                            int(p["depeg.max_age_seconds"]))
        prev = {r.name: r.level for r in readings}
        out.append(readings)
        now += HOUR
    return out


def run(history: History, policy: Policy, cfg: Config, params: Params | None = None,
        progress: Callable[[int, int], None] | None = None,
        track: list[list[SignalReading]] | None = None) -> Result:
    """The backtest; ``track`` = signal_track(history, cfg, params) computed beforehand."""
    p = params or Params.load()
    if track is not None and len(track) != (cfg.end - cfg.start + cfg.start % HOUR) // HOUR + 1:
        raise ValueError("track: not the signal track of this range")
    _check_range(history, cfg)
    pool_addr = str(p["lp.pool"])
    if not cfg.baseline and not any(c.pool == pool_addr.lower() for c in policy.coverage):
        raise BacktestError(f"--policy: no [[coverage]] for the backtest pool {pool_addr}")
    res = Result(depeg_read=history.usdc is not None and not cfg.baseline)
    spot_clock = _Clock(history, "spot", history.spot)
    dvol_clock = _Clock(history, "dvol", history.dvol)
    usdc_clock = _Clock(history, "usdc", history.usdc) if history.usdc is not None else None
    max_dvol_age = int(float(p["vol.max_dvol_age_hours"]) * HOUR)

    def spot_at(now: int) -> float:
        got = spot_clock.at(now)
        assert got is not None  # _check_range: spot known from start on
        return got[1]

    start = cfg.start - cfg.start % HOUR
    s0 = spot_at(start)
    token_id = 1
    lp = LP(pool_addr, token_id, s0, cfg.range_pct, cfg.position_usd)
    lp_exp = lp.exposure(s0)
    cash_lp = 0.0  # fees - gas, USD (the unhedged LP; the hedged one until an exit)
    cash_hedge = 0.0  # option and perp cash flows
    exit_usdc, exit_eth, exit_cash = 0.0, 0.0, 0.0  # what an ExitLP returned to the Safe
    book = HedgeBook()
    prev_levels: dict[str, Level | None] = {}
    period_days = float(p["lp.budget_period_days"])
    period_start, spent_total, session_day, spent_session = start, 0, start // DAY, 0
    recenter_every = int(cfg.recenter_days * DAY)
    next_recenter = start + recenter_every
    gas = float(p["lp.gas_per_recenter_usd"])
    perp_files = {v: _stem(f) for v, f in dict(p["perp.funding_files"]).items()}
    perp_venues = [v for v in policy.perp.venues if perp_files.get(v) in history.funding]
    signal_files = {v: _stem(f) for v, f in dict(p["signals.funding_files"]).items()
                    if _stem(f) in history.funding}
    funding_seen = {v: history.idx("f:" + perp_files[v], start) for v in perp_venues}
    order = [] if cfg.baseline else policy.layer_order()
    tenor = {n: (policy.layers[n].min_days, policy.layers[n].max_days) for n in order}
    calls = any(policy.layers[n].strike.calls for n in order)
    margin = float(p["quotes.strike_margin"])
    peg_max_age = int(p["depeg.max_age_seconds"])
    for name, series in ([("dvol", "dvol")] + [(f"funding:{v}", "f:" + f)
                                               for v, f in signal_files.items()]
                         + [(f"perp_funding:{v}", "f:" + perp_files[v]) for v in perp_venues]
                         + ([("usdc", "usdc")] if usdc_clock else [])):
        end = history.end(series)
        if end is not None and end < cfg.end:
            res.ended[name] = end
    total = (cfg.end - start) // HOUR + 1
    now, step = start, 0
    while now <= cfg.end:
        spot = spot_at(now)
        dv_pt = dvol_clock.at(now)
        assert dv_pt is not None  # _check_range
        dv = dv_pt[1]
        dvol_fresh = now - dv_pt[0] <= max_dvol_age
        if not dvol_fresh:
            res.mark_unknown("option_chain", now, f"DVOL last known {now - dv_pt[0]} s before "
                             f"(bound {max_dvol_age} s): no quotes, marks at the last DVOL")
        # --- LP: re-centre (the hedged LP too, unless it was exited), fees while in range
        if now >= next_recenter:
            value = lp.exposure(spot).value_usd  # withdrawn at this hour's price
            token_id += 1
            lp = LP(pool_addr, token_id, spot, cfg.range_pct, value)
            cash_lp -= gas
            res.gas += gas
            res.recenters += 1
            next_recenter += recenter_every
        lp_exp = lp.exposure(spot)
        lp_val = lp_exp.value_usd
        if now > start and lp_exp.lower <= spot <= lp_exp.upper:
            fee = cfg.fee_apr * lp_val * HOUR / YEAR
            cash_lp += fee
            res.fee_income += fee
        # --- funding settled in (prev, now] on the perp held through it
        perp_size = book.perp_total(UNDERLYING)
        for v in perp_venues:
            fv = perp_files[v]
            j = history.idx("f:" + fv, now)
            for fp in history.funding[fv][funding_seen[v]:j]:
                pay = float(perp_size) * spot * fp.rate  # a short (negative) with rate > 0 receives
                cash_hedge -= pay
                res.funding_paid += pay
            funding_seen[v] = j
        # --- signals -> regime (known at now only)
        readings: list[SignalReading] = []
        if not cfg.baseline:
            if track is not None:
                readings = track[step]
            else:
                readings = _signals(history, now, prev_levels, signal_files, usdc_clock,
                                    peg_max_age)
                prev_levels = {r.name: r.level for r in readings}
            for r in readings:
                if r.level is None:
                    res.mark_unknown(r.name, now, r.reason)
                if r.name == S.FUNDING:
                    venues = r.evidence.get("venues", {})
                    for v, ev in (venues.items() if isinstance(venues, dict) else ()):
                        if isinstance(ev, dict) and ev.get("level") is None:
                            res.mark_unknown(f"funding:{v}", now, str(ev.get("reason", "")))
        regime = S.aggregate(UNDERLYING, readings) if readings else Regime(
            UNDERLYING, None, "baseline: no signals")
        if regime.level is None and not cfg.baseline:
            res.mark_unknown("regime", now, regime.reason)
        # --- budget period and session (UTC day)
        if now - period_start >= period_days * DAY:
            period_start, spent_total = now, 0
        if now // DAY != session_day:
            session_day, spent_session = now // DAY, 0
        chain = Chain(p, now, spot, dv)
        if cfg.baseline:
            intents = _baseline(chain, book, lp_exp, now, p) if dvol_fresh else []
            after = apply_intents(book, intents)
        else:
            perp_quotes = []
            for v in perp_venues:
                rate = _rate_8h(history, perp_files[v], now)
                if rate is None:
                    res.mark_unknown(f"perp_funding:{v}", now, "no settlement in 2 days")
                perp_quotes.append(PerpQuote(v, UNDERLYING, spot, rate, now))
            quotes: tuple[Any, ...] = ()
            if dvol_fresh:
                # quotes for the tenors of the layers engaged at this step (decide buys and
                # rolls nothing for an idle layer; engagement is the pure function decide
                # uses) and for every held instrument (greeks, perp netting, rolls)
                wanted = [n for n in order
                          if engagement(n, policy.layers[n], regime,
                                        book.engagement(UNDERLYING, n), now).engaged]
                held = [h.instrument for h in book.options if h.instrument.expiry > now]
                if wanted and res.exit_at is None:
                    lo, hi = _strike_band(policy, wanted, min(spot, lp_exp.lower),
                                          [i.strike for i in held], margin)
                    quotes = chain.quotes(min(tenor[n][0] for n in wanted),
                                          max(tenor[n][1] for n in wanted), lo, hi,
                                          calls=calls, call_ref=max(spot, lp_exp.upper))
                have = {q.instrument.key for q in quotes}
                quotes += tuple(chain.quote(i) for i in held if i.key not in have)
            positions = (lp.position(spot, 0 if res.exit_at is not None else None),)
            extra: dict[str, Any] = {}
            if _HAS_HELD and res.exit_at is not None and exit_eth > 0:
                from policies.exposure import HeldUnderlying
                extra["held"] = (HeldUnderlying(UNDERLYING, exit_eth),)
            expected = int((lp_val if res.exit_at is None else 0.0) * cfg.fee_apr
                           * period_days / 365 * 100)
            inputs = DecisionInputs(
                now=now, policy=policy, positions=positions, regimes=(regime,), book=book,
                budget=BudgetState(expected, spent_total, spent_session),
                quotes=quotes, perp_quotes=tuple(perp_quotes), **extra)
            decision = decide(inputs)
            intents = list(decision.intents)
            after = decision.book_after
        # --- fills
        logged: list[dict[str, Any]] = []
        for it in intents:
            fill: dict[str, float] = {}
            if isinstance(it, OpenOption):
                ask = it.limit_price
                prem, fee = _buy(ask, it.size, spot)
                cash_hedge -= prem + fee
                res.premium += prem
                res.option_fees += fee
                res.layers[it.layer].spend_usd += prem + fee
                fill = {"price": ask, "fee": fee, "spend": prem + fee}
                cents = intent_premium_cents(it)
                spent_total += cents
                spent_session += cents
            elif isinstance(it, RollOption):
                c = it.close_instrument
                bid, _, _ = chain.bid_ask(c.kind, c.strike, c.expiry)
                gross, fee_s = _sell(bid, it.close_size, spot)
                proceeds = gross - fee_s
                cash_hedge += proceeds
                res.option_fees += fee_s
                res.layers[it.layer].payoff_usd += proceeds
                ask = it.limit_price
                prem, fee = _buy(ask, it.open_size, spot)
                cash_hedge -= prem + fee
                res.premium += prem
                res.option_fees += fee
                res.layers[it.layer].spend_usd += prem + fee
                fill = {"sale_price": bid, "payoff": proceeds, "price": ask,
                        "fee": fee + fee_s, "spend": prem + fee}
                cents = intent_premium_cents(it)
                spent_total += cents
                spent_session += cents
            elif isinstance(it, CloseOption):
                inst = it.instrument
                settle = spot_at(inst.expiry)
                st = F.settle_option("put" if inst.kind is OptionKind.PUT else "call",
                                     _dec(inst.strike), _dec(settle), it.size, VENUE)
                pay = st.net_cents / 100
                cash_hedge += pay
                res.option_payoff += pay
                res.delivery_fees += st.fee_cents / 100
                res.layers[it.layer].payoff_usd += pay
                fill = {"settlement_price": settle, "fee": st.fee_cents / 100, "payoff": pay}
            elif isinstance(it, AdjustPerp):
                cash_hedge -= float(it.delta) * spot
                fee = _perp_fee(it.venue, it.delta, spot)
                cash_hedge -= fee
                res.perp_fees += fee
                fill = {"price": spot, "fee": fee}
            elif isinstance(it, ExitLP):
                # the LP's tokens come back to the Safe and are held from here on (the
                # unhedged LP, which has no policy, stays in the pool)
                exit_eth, exit_usdc = lp_exp.delta, lp_val - lp_exp.delta * spot
                exit_cash = cash_lp
                res.exit_at = now
                fill = {"usdc": exit_usdc, "eth": exit_eth, "price": spot}
            logged.append({**intent_to_json(it), "fill": {k: round(v, 6) for k, v in fill.items()}})
        if logged:
            res.decisions.append({"now": now, "spot": spot, "dvol": dv,
                                  "regime": _level_name(regime.level),
                                  "regime_reason": regime.reason, "intents": logged})
        book = after
        if res.exit_at is not None and book.exits_pending:
            # the exit landed: nothing is in flight any more (the position has no liquidity)
            book = dataclasses.replace(book, exits_pending=())
        engaged = tuple(sorted(e.layer for e in book.engaged))
        for n in engaged:
            res.layers[n].hours_engaged += 1
        # --- equity
        opt_mtm = 0.0
        for h in book.options:
            inst = h.instrument
            opt_mtm += chain.mid(inst.kind, inst.strike, inst.expiry) * float(h.size)
        unhedged = lp_val + cash_lp
        lp_side = unhedged if res.exit_at is None else exit_usdc + exit_eth * spot + exit_cash
        hedged = lp_side + cash_hedge + opt_mtm + float(book.perp_total(UNDERLYING)) * spot
        res.ts.append(now)
        res.spot.append(spot)
        res.unhedged.append(unhedged)
        res.hedged.append(hedged)
        res.dvol.append(dv)
        res.atm_iv.append(chain.atm30)
        res.engaged.append(engaged)
        res.regime.append(_level_name(regime.level))
        step += 1
        if progress is not None and (step % 200 == 0 or step == total):
            progress(step, total)
        now += HOUR
    res.final_ethx = lp_exp.x_max
    res.final_eth_held = lp_exp.delta
    return res


def _dec(x: float) -> Decimal:
    return Decimal(repr(x))


# Fills go through policies.fills, the pure fill model the paper venue uses: a one-level
# book at the chain's quote (the synthetic chain has no depth: the quote holds for the
# whole size), premium rounded up and proceeds down to the cent, the venue's fee schedule.

def _buy(ask: float, size: Decimal, spot: float) -> tuple[float, float]:
    """(premium, fee) in USD of buying ``size`` at ``ask``."""
    fill = F.walk(F.Book(asks=(F.Level(_dec(ask), size),)), "buy", size, _dec(ask))
    return F.cents_paid(fill.notional) / 100, F.option_fee_cents(VENUE, fill, _dec(spot)) / 100


def _sell(bid: float, size: Decimal, spot: float) -> tuple[float, float]:
    """(gross proceeds, fee) in USD of selling ``size`` at ``bid`` (a zero bid: nothing)."""
    if bid <= 0:
        return 0.0, 0.0
    fill = F.walk(F.Book(bids=(F.Level(_dec(bid), size),)), "sell", size, _dec(bid))
    return (F.cents_received(fill.notional) / 100,
            F.option_fee_cents(VENUE, fill, _dec(spot)) / 100)


def _perp_fee(venue: str, delta: Decimal, spot: float) -> float:
    """Taker fee in USD of a perp fill of ``delta`` at ``spot`` on ``venue``."""
    size = abs(delta)
    side: F.Side = "buy" if delta > 0 else "sell"
    lv = (F.Level(_dec(spot), size),)
    book = F.Book(asks=lv) if side == "buy" else F.Book(bids=lv)
    try:
        return F.perp_fee_cents(venue, F.walk(book, side, size), "taker") / 100
    except F.UnknownFeeSchedule as exc:
        raise BacktestError(f"--policy: perp venue {venue!r}: {exc}") from None


def _stem(file_name: str) -> str:
    return file_name.removeprefix("eth_funding_").removesuffix(".csv")


def _check_range(history: History, cfg: Config) -> None:
    from adapters.market.history import iso
    if cfg.end <= cfg.start:
        raise BacktestError(f"--to: must be after --from ({iso(cfg.start)} .. {iso(cfg.end)})")
    first_known = history.spot[0][0]
    last_known = history.spot[-1][0]
    if cfg.start < first_known or cfg.end > last_known:
        raise BacktestError(f"--from/--to: range {iso(cfg.start)}..{iso(cfg.end)} outside the "
                            f"spot history ({iso(first_known)}..{iso(last_known)}, known-at "
                            "times)")
    if history.idx("dvol", cfg.start) == 0:
        raise BacktestError(f"--from: no DVOL close known at {iso(cfg.start)} (DVOL history "
                            f"starts {iso(history.dvol[0][0])}); choose a later --from")
    history.check_gaps(cfg.start, cfg.end)


def _signals(history: History, now: int, prev: dict[str, Level | None],
             funding_files: dict[str, str], usdc: _Clock | None,
             peg_max_age: int) -> list[SignalReading]:
    """The daemon's signal functions on what is known at ``now`` (bot/market_signals.py:
    iv_percentile on DVOL, funding over the venues, rsi_macd on daily closes, depeg per
    stable asset); term_structure and tvl_drop have no recorded history: not read, as
    when the daemon has no source configured for them."""
    out: list[SignalReading] = []
    i = history.idx("dvol", now)
    out.append(S.iv_percentile(history.dvol[max(0, i - 120):i], now, prev.get(S.IV_PERCENTILE)))
    if funding_files:
        fund = {v: history.funding_upto(f, now) for v, f in funding_files.items()}
        out.append(S.funding(fund, now, prev.get(S.FUNDING)))
    out.append(S.rsi_macd(history.daily_closes(now, RSI_DAYS), now, prev.get(S.RSI_MACD)))
    if usdc is not None:
        got = usdc.at(now)
        q = (S.PegQuote("history:usdc_usd_15m", got[1], got[0], peg_max_age) if got else
             S.PegQuote("history:usdc_usd_15m", None, None, peg_max_age, "no bar known yet"))
        r = S.depeg("USDC", [q], now, prev.get(S.DEPEG))
        out.append(dataclasses.replace(r, evidence={**r.evidence, "subject": "USDC"}))
    return out


def _rate_8h(history: History, venue_file: str, now: int) -> float | None:
    pts = history.funding_upto(venue_file, now, 2)
    if not pts or now - pts[-1].ts > 2 * DAY:
        return None
    return pts[-1].rate * 8.0 / pts[-1].interval_hours


def _baseline(chain: Chain, book: HedgeBook, e: Exposure, now: int, p: Params) -> list[Any]:
    """Naive baseline: always hold x_max of a ~30-day put 5% below the range's lower edge,
    bought at the ask, held to expiry, then replaced."""
    out: list[Any] = []
    live = []
    for h in book.options:
        if h.instrument.expiry <= now:
            out.append(CloseOption(UNDERLYING, "baseline", h.instrument, h.size, "expired"))
        else:
            live.append(h)
    if live:
        return out
    exps = [x for x in expiries(now, p) if x - now >= 7 * DAY]
    exp = min(exps, key=lambda x: abs(x - now - 30 * DAY))
    target = e.lower * 0.95
    k = min(chain.strikes(target * 0.9, target * 1.1) or [target], key=lambda s: abs(s - target))
    _, ask, _ = chain.bid_ask(OptionKind.PUT, k, exp)
    step = Decimal(str(p["deribit.size_step"]))
    size = (Decimal(repr(e.x_max)) / step).to_integral_value(rounding=ROUND_FLOOR) * step
    if size <= 0:
        return out
    inst = instrument(exp, k, OptionKind.PUT, step)
    out.append(OpenOption(UNDERLYING, "baseline", inst, size, ask,
                          math.ceil(ask * float(size) * 100),
                          "baseline: always-on 30-day put 5% below the range"))
    return out


def iter_drawdowns(eq: list[float]) -> Iterator[float]:
    peak = -math.inf
    for v in eq:
        peak = max(peak, v)
        yield v - peak


def max_drawdown(eq: list[float], base: float) -> float:
    return min(iter_drawdowns(eq), default=0.0) / base


def drawdown_series(eq: list[float], base: float) -> list[float]:
    return [d / base for d in iter_drawdowns(eq)]


def worst_window_drawdown(eq: list[float], window: int, base: float) -> float:
    """Largest fall from the highest value of the trailing ``window`` steps (inclusive)."""
    dq: deque[int] = deque()
    worst = 0.0
    for i, v in enumerate(eq):
        while dq and eq[dq[-1]] <= v:
            dq.pop()
        dq.append(i)
        while dq[0] < i - window:
            dq.popleft()
        worst = min(worst, v - eq[dq[0]])
    return worst / base


def summary(res: Result, cfg: Config) -> dict[str, Any]:
    from adapters.market.history import iso
    base = cfg.position_usd
    funding_paid = max(res.funding_paid, 0.0)
    prot_cost = (res.premium + res.option_fees + res.delivery_fees + res.perp_fees
                 + funding_paid)

    def side(eq: list[float]) -> dict[str, float]:
        return {"max_drawdown": round(max_drawdown(eq, base), 6),
                "worst_7d_drawdown": round(worst_window_drawdown(eq, 168, base), 6),
                "final_pnl_usd": round(eq[-1] - base, 2)}

    un, he = side(res.unhedged), side(res.hedged)
    fees = res.fee_income
    return {
        "from": iso(res.ts[0]), "to": iso(res.ts[-1]), "hours": len(res.ts),
        "mode": "baseline" if cfg.baseline else "policy",
        "lp": {"range_pct": cfg.range_pct, "recenter_days": cfg.recenter_days,
               "fee_apr": cfg.fee_apr, "position_usd": cfg.position_usd},
        "unhedged": un, "hedged": he,
        "worst_7d_ratio": (round(he["worst_7d_drawdown"] / un["worst_7d_drawdown"], 4)
                           if un["worst_7d_drawdown"] < 0 else None),
        "protection_pnl_usd": round(res.hedged[-1] - res.unhedged[-1], 2),
        "fee_income_usd": round(fees, 2), "gas_usd": round(res.gas, 2),
        "recenters": res.recenters,
        "premium_usd": round(res.premium, 2), "option_fees_usd": round(res.option_fees, 2),
        "delivery_fees_usd": round(res.delivery_fees, 2),
        "option_payoff_usd": round(res.option_payoff, 2),
        "perp_fees_usd": round(res.perp_fees, 2), "funding_usd": round(res.funding_paid, 2),
        "protection_cost_share": round(prot_cost / fees, 6) if fees > 0 else None,
        "premium_share_of_fees": round(res.premium / fees, 6) if fees > 0 else None,
        "lp_exit": None if res.exit_at is None else iso(res.exit_at),
        "layers": {n: {"hours_engaged": s.hours_engaged, "spend_usd": round(s.spend_usd, 2),
                       "payoff_usd": round(s.payoff_usd, 2)}
                   for n, s in sorted(res.layers.items())},
        "unknown": {n: [[iso(a), iso(b)] for a, b in spans]
                    for n, spans in sorted(res.unknown.items())},
        "unknown_reasons": dict(sorted(res.unknown_reason.items())),
        "series_ended": {n: iso(t) for n, t in sorted(res.ended.items())},
        "not_modelled": ["term_structure and tvl_drop signals (no recorded history)"]
        + ([] if res.depeg_read else [f"depeg signal (no {USDC_FILE} in the history)"]),
    }
