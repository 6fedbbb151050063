"""Benchmark: one ALVH decision over 1,000 positions with three engaged layers.

    .venv/bin/python -m bench.decide [--positions N] [--runs R]

Prints the median wall time of R runs of policies.alvh.decide (exposures from the
positions through lp_math, engagement, instrument choice, budget clipping, intents,
greeks) for a cold book (everything to buy) and a steady book (the same state after
applying the first decision's intents: nothing to do), and the cost per position.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from dataclasses import replace
from decimal import Decimal

from policies.alvh import DecisionInputs, decide
from policies.hedge import HedgeBook, Instrument, OptionKind, OptionQuote, PerpQuote, apply_intents
from policies.lp_math import get_sqrt_ratio_at_tick
from policies.policy_file import policy_from_dict
from policies.pricing import black76, year_fraction
from policies.risk import BudgetState
from policies.types import Level, PoolState, Position, Regime, SignalReading, TickFeeGrowth, Token

NOW = 1_795_262_400
DAY = 86400
Q96 = 1 << 96
POOL = "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"


def eth_tick(usd: float) -> int:  # USDC (6) token0 / WETH (18) token1
    return math.floor(math.log(1e12 / usd) / math.log(1.0001))


def build(n: int, seed: int = 42) -> DecisionInputs:
    rnd = random.Random(seed)
    spot = 3000.0
    tick = eth_tick(spot)
    pool = PoolState(POOL, Token("0xa0b8", "USDC", 6), Token("0xc02a", "WETH", 18), 500, 10,
                     get_sqrt_ratio_at_tick(tick), tick, 10**22, 0, 0)
    positions = []
    for i in range(n):
        lo = spot * rnd.uniform(0.6, 1.05)
        hi = lo * rnd.uniform(1.05, 1.8)
        t_lo, t_hi = eth_tick(hi) // 10 * 10, eth_tick(lo) // 10 * 10 + 10
        sa, sb = get_sqrt_ratio_at_tick(t_lo), get_sqrt_ratio_at_tick(t_hi)
        liq = int(rnd.uniform(1, 50) * 10**18) * Q96 // (sb - sa)
        positions.append(Position(1000 + i, "0x5afe", "0xc364", pool, t_lo, t_hi, liq, 0, 0, 0, 0,
                                  TickFeeGrowth(0, 0), TickFeeGrowth(0, 0)))
    quotes = []
    for venue, step in (("deribit", "1"), ("derive", "0.1")):
        for days in (2, 5, 20, 34, 70, 100):
            expiry = NOW + days * DAY
            for k in range(1200, 4800, 50):
                g = black76(OptionKind.PUT, spot, k, year_fraction(NOW, expiry), 0.7)
                mid = max(g.price, 0.1)
                inst = Instrument(venue, f"ETH-{days}D-{k}-P", "ETH", OptionKind.PUT, float(k),
                                  expiry, Decimal(step))
                quotes.append(OptionQuote(inst, round(mid * 0.98, 2), round(mid * 1.02, 2), 0.7,
                                          1000.0, spot, NOW - 10))
    policy = policy_from_dict({
        "version": "bench", "venues": {"options": ["deribit", "derive"]},
        "coverage": [{"underlying": "ETH", "pool": POOL, "underlying_token": "token1"}],
        "perp": {"enabled": True, "venues": ["hyperliquid"]},
        "layers": {
            name: {"min_days": a, "max_days": b, "trigger": {"min_level": "elevated"},
                   "size": {"fraction_of_x_max": 0.3}, "roll": {"days_before_expiry": r},
                   "premium": {"max_pct_of_spot": 0.2}}
            for name, a, b, r in (("short", 0, 7, 1), ("intermediate", 15, 45, 10),
                                  ("structural", 60, 120, 30))},
    })
    regime = Regime("ETH", Level.CRISIS, "bench", (SignalReading("iv_percentile", Level.CRISIS,
                                                                 "bench"),))
    return DecisionInputs(
        now=NOW, policy=policy, positions=tuple(positions), regimes=(regime,), book=HedgeBook(),
        budget=BudgetState(10**12), quotes=tuple(quotes),
        perp_quotes=(PerpQuote("hyperliquid", "ETH", spot, 0.0001, NOW - 5),))


def timed(inp: DecisionInputs, runs: int) -> tuple[float, int]:
    samples = []
    n_intents = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        d = decide(inp)
        samples.append(time.perf_counter() - t0)
        n_intents = len(d.intents)
    return statistics.median(samples), n_intents


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--positions", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    inp = build(args.positions)
    first = decide(inp)
    layers = sorted({t.layer for t in first.targets if t.state == "engaged"})
    steady = replace(inp, book=apply_intents(inp.book, first.intents),
                     budget=BudgetState(10**12, first.spent_cents, first.spent_cents))
    print(f"decide: {args.positions} positions x {len(layers)} engaged layers "
          f"({', '.join(layers)}), {len(inp.quotes)} option quotes, median of {args.runs} runs")
    for label, state in (("cold book (buy everything)", inp), ("steady book (nothing to do)",
                                                               steady)):
        med, n = timed(state, args.runs)
        print(f"  {label:<28} {med * 1e3:8.1f} ms  {med / args.positions * 1e6:7.1f} us/position"
              f"  ({n} intents)")


if __name__ == "__main__":
    main()
