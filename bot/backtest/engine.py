"""The hour-by-hour backtest loop.

At each hour ``now`` the engine (1) reads what was known at ``now`` (data.History),
(2) runs the daemon's signal functions and aggregate() into a Regime, carrying each
signal's level as the next step's hysteresis state, (3) rebuilds the synthetic chain
(chain.Chain), (4) builds DecisionInputs the way policies/state_file.py does and calls
the same policies.alvh.decide(), (5) fills the intents: buys at the ask plus Deribit's
fee, roll sales at the bid, expiries at intrinsic minus the delivery fee, perps at the
mark plus the taker fee, funding at each settlement, and (6) accrues LP fees while in
range and re-centres the LP every ``recenter_days`` (gas charged)."""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from bot.backtest.chain import Chain, Params, delivery_fee, expiries, trade_fee
from bot.backtest.data import DAY, HOUR, BacktestError, History
from policies import signals as S
from policies.alvh import DecisionInputs, decide
from policies.exposure import Exposure, exposure
from policies.hedge import (
    AdjustPerp,
    CloseOption,
    ExitLP,
    HedgeBook,
    Instrument,
    OpenOption,
    PerpQuote,
    RollOption,
    apply_intents,
    intent_premium_cents,
    intent_to_json,
)
from policies.layer_rules import engagement
from policies.lp_math import get_tick_at_sqrt_ratio, lp_value
from policies.policy_file import Policy
from policies.pricing import OptionKind
from policies.risk import BudgetState
from policies.types import Level, PoolState, Position, Regime, SignalReading, TickFeeGrowth, Token

YEAR = 365 * DAY
USDC = Token("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", "USDC", 6)
WETH = Token("0xc02aaa39b223fe8d0a5e5c5d1b1f9dcfd8b1a2e1", "WETH", 18)
TICK_SPACING = 10
RSI_DAYS = 60  # hourly closes handed to rsi_macd (it needs >= 45 daily bars)


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
    unhedged: list[float] = field(default_factory=list)
    hedged: list[float] = field(default_factory=list)
    dvol: list[float] = field(default_factory=list)
    engaged: list[tuple[str, ...]] = field(default_factory=list)
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
    layers: dict[str, LayerStats] = field(default_factory=lambda: defaultdict(LayerStats))
    unknown: dict[str, list[list[int]]] = field(default_factory=lambda: defaultdict(list))
    final_ethx: float = 0.0  # x_max of the LP at the end
    final_eth_held: float = 0.0  # ETH held by the LP at the end

    def mark_unknown(self, name: str, now: int) -> None:
        spans = self.unknown[name]
        if spans and spans[-1][1] == now - HOUR:
            spans[-1][1] = now
        else:
            spans.append([now, now])


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
        e1 = self.exposure(center, liquidity=10**12)  # l_h = 1
        self.liquidity = int(value_usd / e1.value_usd * 10**12)

    def _position(self, spot: float, liquidity: int) -> Position:
        sqrt = _sqrt_x96(spot)
        pool = PoolState(self.pool_addr, USDC, WETH, 500, TICK_SPACING, sqrt,
                         get_tick_at_sqrt_ratio(sqrt), 0, 0, 0)
        return Position(self.token_id, "0x" + "0" * 40, "0xC36442b4a4522E871399CD717aBDD847Ab11FE88",
                        pool, self.tick_lower, self.tick_upper, liquidity, 0, 0, 0, 0,
                        TickFeeGrowth(0, 0), TickFeeGrowth(0, 0))

    def position(self, spot: float) -> Position:
        return self._position(spot, self.liquidity)

    def exposure(self, spot: float, liquidity: int | None = None) -> Exposure:
        from policies.policy_file import Coverage
        cover = Coverage(underlying="ETH", quote="USDC", pool=self.pool_addr.lower(),
                         underlying_token="token1", token_ids=())
        return exposure(self._position(spot, self.liquidity if liquidity is None else liquidity),
                        cover)

    def value(self, spot: float, lower: float, upper: float) -> float:
        return lp_value(self.liquidity * 1e-12, spot, lower, upper)


def _level_name(level: Level | None) -> str | None:
    return None if level is None else level.name.lower()


def run(history: History, policy: Policy, cfg: Config, params: Params | None = None,
        progress: Callable[[int, int], None] | None = None) -> Result:
    p = params or Params.load()
    if cfg.end <= cfg.start:
        raise BacktestError(f"--to: must be after --from ({cfg.start} .. {cfg.end})")
    first_known = history.spot[0][0]
    last_known = history.spot[-1][0]
    if cfg.start < first_known or cfg.end > last_known:
        raise BacktestError(f"--from/--to: range {cfg.start}..{cfg.end} outside the spot history "
                            f"({first_known}..{last_known}, known-at times)")
    if history.idx("dvol", cfg.start) == 0:
        raise BacktestError(f"--from: no DVOL close known at {cfg.start} (DVOL history starts "
                            f"later); choose a later --from")
    history.check_gaps(cfg.start, cfg.end)
    pool_addr = str(p["lp.pool"])
    cover_pool = any(c.pool == pool_addr.lower() for c in policy.coverage)
    if not cover_pool and not cfg.baseline:
        raise BacktestError(f"--policy: no [[coverage]] for the backtest pool {pool_addr}")
    res = Result()
    spot_of = history.spot

    def spot_at(now: int) -> float:
        i = history.idx("spot", now)
        return spot_of[i - 1][1]

    def dvol_at(now: int) -> float:
        i = history.idx("dvol", now)
        return history.dvol[i - 1][1]

    start = cfg.start - cfg.start % HOUR
    s0 = spot_at(start)
    token_id = 1
    lp = LP(pool_addr, token_id, s0, cfg.range_pct, cfg.position_usd)
    lp_exp = lp.exposure(s0)
    cash_lp = 0.0  # fees - gas, USD (unhedged and hedged share it)
    cash_hedge = 0.0  # option and perp cash flows
    book = HedgeBook()
    perp_size = Decimal(0)
    prev_levels: dict[str, Level | None] = {}
    period_days = float(p["lp.budget_period_days"])
    expected_cents = int(cfg.position_usd * cfg.fee_apr * period_days / 365 * 100)
    period_start, spent_total, session_day, spent_session = start, 0, start // DAY, 0
    next_recenter = start + int(cfg.recenter_days * DAY)
    perp_files = {v: f.removeprefix("eth_funding_").removesuffix(".csv")
                  for v, f in dict(p["perp.funding_files"]).items()}
    perp_venues = [v for v in policy.perp.venues if perp_files.get(v) in history.funding]
    taker = float(p["perp.taker_fee"])
    funding_seen: dict[str, int] = {v: history.idx("f:" + perp_files[v], start)
                                    for v in perp_venues}
    order = policy.layer_order() if not cfg.baseline else []
    tenor = {n: (policy.layers[n].min_days, policy.layers[n].max_days) for n in order}
    exited = False
    every = max(int(p["lp.signals_every_hours"]), 1)
    readings: list[SignalReading] = []
    total = (cfg.end - start) // HOUR + 1
    now = start
    step = 0
    while now <= cfg.end:
        spot = spot_at(now)
        dv = dvol_at(now)
        # --- LP: re-centre, fees
        if not exited and now >= next_recenter:
            value = lp.value(spot, lp_exp.lower, lp_exp.upper)
            token_id += 1
            lp = LP(pool_addr, token_id, spot, cfg.range_pct, value)
            cash_lp -= float(p["lp.gas_per_recenter_usd"])
            res.gas += float(p["lp.gas_per_recenter_usd"])
            res.recenters += 1
            next_recenter += int(cfg.recenter_days * DAY)
        lp_exp = lp.exposure(spot)
        if exited:
            lp_val = 0.0
        else:
            lp_val = lp_exp.value_usd
            if now > start and lp_exp.lower <= spot <= lp_exp.upper:
                fee = cfg.fee_apr * lp_val * HOUR / YEAR
                cash_lp += fee
                res.fee_income += fee
        # --- funding settled in (prev, now]
        for v in perp_venues:
            fv = perp_files[v]
            j = history.idx("f:" + fv, now)
            for fp in history.funding[fv][funding_seen[v]:j]:
                pay = float(perp_size) * spot * fp.rate  # short (negative) with rate > 0 receives
                cash_hedge -= pay
                res.funding_paid += pay
            funding_seen[v] = j
        # --- signals -> regime (known at now only)
        fresh_signals = not cfg.baseline and (step % every == 0 or not readings)
        if fresh_signals:
            readings = []
            i = history.idx("dvol", now)
            readings.append(S.iv_percentile(history.dvol[max(0, i - 120):i], now,
                                            prev_levels.get(S.IV_PERCENTILE)))
            fund = {name: history.funding_upto(name, now) for name in history.funding}
            for name in history.funding:
                end = history.end("f:" + name)
                if end is not None and now - end > 24 * HOUR:  # a file that ended early
                    res.mark_unknown(f"funding:{name} (file ended)", now)
            readings.append(S.funding(fund, now, prev_levels.get(S.FUNDING)))
            j = history.idx("spot", now)
            readings.append(S.rsi_macd(spot_of[max(0, j - 24 * RSI_DAYS):j], now,
                                       prev_levels.get(S.RSI_MACD)))
            prev_levels = {r.name: r.level for r in readings}
        for r in readings:
            if r.level is None:
                res.mark_unknown(r.name, now)
        regime = S.aggregate("ETH", readings) if readings else Regime("ETH", None, "baseline")
        if regime.level is None and not cfg.baseline:
            res.mark_unknown("regime", now)
        # --- budget period and session
        if now - period_start >= period_days * DAY:
            period_start, spent_total = now, 0
        if now // DAY != session_day:
            session_day, spent_session = now // DAY, 0
        chain = Chain(p, now, spot, dv)
        if cfg.baseline:
            intents = _baseline(chain, book, lp_exp, now, p)
            after = apply_intents(book, intents)
        else:
            # quotes only for tenors of layers engaged at this step (decide buys and rolls
            # nothing for an idle layer; engagement is the same pure function decide uses)
            wanted = [tenor[n] for n in order
                      if engagement(n, policy.layers[n], regime, book.engagement("ETH", n),
                                    now).engaged]
            quotes: tuple[Any, ...] = ()
            if wanted and not exited:
                lo = min(w[0] for w in wanted)
                hi = max(w[1] for w in wanted)
                quotes = chain.quotes(lo, hi, lp_exp.lower * 0.85, lp_exp.lower * 1.01)
            perp_quotes = tuple(
                PerpQuote(v, "ETH", spot, _rate_8h(history, perp_files[v], now), now)
                for v in perp_venues if history.idx("f:" + perp_files[v], now) > 0)
            positions = () if exited else (lp.position(spot),)
            inputs = DecisionInputs(
                now=now, policy=policy, positions=positions, regimes=(regime,), book=book,
                budget=BudgetState(expected_cents, spent_total, spent_session),
                quotes=quotes, perp_quotes=perp_quotes)
            decision = decide(inputs)
            intents = list(decision.intents)
            after = decision.book_after
        # --- fills
        logged: list[dict[str, Any]] = []
        for it in intents:
            if isinstance(it, OpenOption):
                ask = it.limit_price
                fee = trade_fee(p, spot, ask)
                size = float(it.size)
                cash_hedge -= (ask + fee) * size
                res.premium += ask * size
                res.option_fees += fee * size
                res.layers[it.layer].spend_usd += (ask + fee) * size
                cents = intent_premium_cents(it)
                spent_total += cents
                spent_session += cents
            elif isinstance(it, RollOption):
                c = it.close_instrument
                bid, _, _ = chain.bid_ask(c.kind, c.strike, c.expiry)
                fee_s = trade_fee(p, spot, bid)
                proceeds = max(bid - fee_s, 0.0) * float(it.close_size)
                cash_hedge += proceeds
                res.option_fees += fee_s * float(it.close_size)
                res.layers[it.layer].payoff_usd += proceeds
                ask = it.limit_price
                fee = trade_fee(p, spot, ask)
                cash_hedge -= (ask + fee) * float(it.open_size)
                res.premium += ask * float(it.open_size)
                res.option_fees += fee * float(it.open_size)
                res.layers[it.layer].spend_usd += (ask + fee) * float(it.open_size)
                cents = intent_premium_cents(it)
                spent_total += cents
                spent_session += cents
            elif isinstance(it, CloseOption):
                inst = it.instrument
                settle = spot_at(inst.expiry)
                intrinsic = (max(inst.strike - settle, 0.0) if inst.kind is OptionKind.PUT
                             else max(settle - inst.strike, 0.0))
                dfee = delivery_fee(p, settle, intrinsic) if intrinsic > 0 else 0.0
                pay = (intrinsic - dfee) * float(it.size)
                cash_hedge += pay
                res.option_payoff += pay
                res.delivery_fees += dfee * float(it.size)
                res.layers[it.layer].payoff_usd += pay
            elif isinstance(it, AdjustPerp):
                cash_hedge -= float(it.delta) * spot
                fee = abs(float(it.delta)) * spot * taker
                cash_hedge -= fee
                res.perp_fees += fee
                perp_size += it.delta
            elif isinstance(it, ExitLP):
                cash_lp += lp_val
                exited = True
            logged.append(intent_to_json(it))
        if logged:
            res.decisions.append({"now": now, "spot": spot, "dvol": dv,
                                  "regime": _level_name(regime.level),
                                  "regime_reason": regime.reason, "intents": logged})
        book = after
        engaged = tuple(sorted(e.layer for e in book.engaged))
        for n in engaged:
            res.layers[n].hours_engaged += 1
        # --- equity
        opt_mtm = 0.0
        for h in book.options:
            inst = h.instrument
            opt_mtm += chain.mid(inst.kind, inst.strike, inst.expiry) * float(h.size)
        unhedged = lp_val + cash_lp
        hedged = unhedged + cash_hedge + opt_mtm + float(perp_size) * spot
        res.ts.append(now)
        res.unhedged.append(unhedged)
        res.hedged.append(hedged)
        res.dvol.append(dv)
        res.engaged.append(engaged)
        step += 1
        if progress is not None and step % 500 == 0:
            progress(step, total)
        now += HOUR
    res.final_ethx = 0.0 if exited else lp_exp.x_max
    res.final_eth_held = 0.0 if exited else lp_exp.delta
    return res


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
            out.append(CloseOption("ETH", "baseline", h.instrument, h.size, "expired"))
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
    from bot.backtest.chain import _put
    inst: Instrument = _put(exp, k, step)
    out.append(OpenOption("ETH", "baseline", inst, size, ask, math.ceil(ask * float(size) * 100),
                          "baseline: always-on 30-day put 5% below the range"))
    return out


def iter_drawdowns(eq: list[float]) -> Iterator[float]:
    peak = -math.inf
    for v in eq:
        peak = max(peak, v)
        yield v - peak


def max_drawdown(eq: list[float], base: float) -> float:
    return min(iter_drawdowns(eq), default=0.0) / base


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
    prot_cost = res.premium + res.option_fees + res.delivery_fees + res.perp_fees + max(
        res.funding_paid, 0.0)

    def side(eq: list[float]) -> dict[str, float]:
        return {"max_drawdown": round(max_drawdown(eq, base), 6),
                "worst_7d_drawdown": round(worst_window_drawdown(eq, 168, base), 6),
                "final_pnl_usd": round(eq[-1] - base, 2)}

    return {
        "from": iso(res.ts[0]), "to": iso(res.ts[-1]), "hours": len(res.ts),
        "unhedged": side(res.unhedged), "hedged": side(res.hedged),
        "protection_pnl_usd": round(res.hedged[-1] - res.unhedged[-1], 2),
        "fee_income_usd": round(res.fee_income, 2), "gas_usd": round(res.gas, 2),
        "recenters": res.recenters,
        "premium_usd": round(res.premium, 2), "option_fees_usd": round(res.option_fees, 2),
        "delivery_fees_usd": round(res.delivery_fees, 2),
        "option_payoff_usd": round(res.option_payoff, 2),
        "perp_fees_usd": round(res.perp_fees, 2), "funding_usd": round(res.funding_paid, 2),
        "protection_cost_share": (round(prot_cost / res.fee_income, 6)
                                  if res.fee_income > 0 else None),
        "premium_share_of_fees": (round(res.premium / res.fee_income, 6)
                                  if res.fee_income > 0 else None),
        "layers": {n: {"hours_engaged": s.hours_engaged, "spend_usd": round(s.spend_usd, 2),
                       "payoff_usd": round(s.payoff_usd, 2)}
                   for n, s in sorted(res.layers.items())},
        "unknown": {n: [[iso(a), iso(b)] for a, b in spans]
                    for n, spans in sorted(res.unknown.items())},
        "not_modelled": ["depeg signal (no usdc_usd_15m.csv read yet)", "term_structure and "
                         "tvl_drop signals (no recorded history)"],
    }
