"""Hand-known cases: flat price, a straight 40% crash, and the no-look-ahead property."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bot.backtest.data import load_history
from bot.backtest.engine import Config, run, summary
from tests.bot.backtest.helpers import T0, D, H, always_on_policy, write_history

# every test runs the hour-by-hour backtest engine: make test, not test-fast
pytestmark = pytest.mark.slow

V = 1_000_000.0
P0 = 2000.0


def _hand_lp(p0: float, r: float) -> tuple[float, float, float]:
    """(L, pa, pb) of value V at p0 on [p0(1-r), p0(1+r)] by the textbook v3 formulas."""
    pa, pb = p0 * (1 - r), p0 * (1 + r)
    L = V / (2 * math.sqrt(p0) - p0 / math.sqrt(pb) - math.sqrt(pa))
    return L, pa, pb


def test_flat_price_fees_accrue_no_option_pays_premium_only_cost(tmp_path: Path) -> None:
    h = load_history(write_history(tmp_path, 120, lambda ts: P0, lambda ts: 60.0))
    start, end = T0 + 80 * D, T0 + 110 * D
    cfg = Config(start, end, recenter_days=1000, fee_apr=0.20, position_usd=V)
    res = run(h, always_on_policy(), cfg)
    s = summary(res, cfg)
    hours = (end - start) // H + 1
    assert s["hours"] == hours
    # fees: 20% APR on $1M for every hour after the first, in range all along
    assert res.fee_income == pytest.approx(0.20 * V * (hours - 1) / (365 * 24), rel=1e-6)
    # the LP's value does not move at a flat price (tick rounding: within a few dollars)
    assert res.unhedged[-1] - res.fee_income == pytest.approx(V, abs=5.0)
    assert res.premium > 0  # the always-on layer bought puts
    assert res.option_payoff == 0.0  # puts 5-7% below a -20% edge never pay at a flat price
    assert res.funding_paid == 0.0 and res.perp_fees == 0.0
    # hedged - unhedged = what is left of the premium (mark) minus premium and fees: never
    # more than the premium plus fees lost, never a gain
    gap = res.hedged[-1] - res.unhedged[-1]
    assert -(res.premium + res.option_fees) <= gap <= 0.0
    assert s["unhedged"]["max_drawdown"] == 0.0


def test_straight_40pct_crash_puts_pay_intrinsic_lp_ends_at_x_max(tmp_path: Path) -> None:
    crash0, crash1 = T0 + 90 * D, T0 + 100 * D

    def spot(ts: int) -> float:
        if ts <= crash0:
            return P0
        if ts >= crash1:
            return 0.6 * P0
        return P0 * (1 - 0.4 * (ts - crash0) / (crash1 - crash0))

    h = load_history(write_history(tmp_path, 160, spot, lambda ts: 60.0))
    start, end = T0 + 80 * D, T0 + 150 * D
    cfg = Config(start, end, range_pct=20, recenter_days=1000, fee_apr=0.20, position_usd=V)
    res = run(h, always_on_policy(), cfg)
    # LP: all in ETH below the range, x_max by the textbook formula L (1/sqrt pa - 1/sqrt pb)
    L, pa, pb = _hand_lp(P0, 0.20)
    x_max = L * (1 / math.sqrt(pa) - 1 / math.sqrt(pb))
    assert res.final_eth_held == pytest.approx(res.final_ethx, rel=1e-9)
    assert res.final_ethx == pytest.approx(x_max, rel=2e-3)  # ticks round the edges
    # LP value at the end: x_max ETH at 1200
    assert res.unhedged[-1] - res.fee_income == pytest.approx(x_max * 0.6 * P0, rel=2e-3)
    # puts: each settlement = (strike - settlement price) minus min(0.015% of S, 12.5% of it)
    expected = 0.0
    settled = 0
    for rec in res.decisions:
        for it in rec["intents"]:
            if it["action"] != "close_option":
                continue
            inst = it["instrument"]
            s = spot(inst["expiry"] - H)  # the bar closing at the 08:00 expiry
            intrinsic = max(inst["strike"] - s, 0.0)
            fee = min(0.00015 * s, 0.125 * intrinsic) if intrinsic > 0 else 0.0
            q = float(it["size"])
            # what we receive rounds down to the cent, what we pay (the fee) up
            expected += math.floor(intrinsic * q * 100 + 1e-9) / 100 - math.ceil(
                fee * q * 100 - 1e-9) / 100
            settled += intrinsic > 0
    assert settled >= 1
    assert res.option_payoff == pytest.approx(expected, abs=1e-6)
    assert res.option_payoff > 0
    s = summary(res, cfg)
    assert s["hedged"]["max_drawdown"] > s["unhedged"]["max_drawdown"]


def _decisions_upto(res, t: int) -> list[dict]:
    return [d for d in res.decisions if d["now"] <= t]


def test_spike_is_not_seen_before_it_is_known(tmp_path: Path) -> None:
    """DVOL drifts down (calm, low percentile), then the day starting at ``spike`` closes at
    150: known only at spike + 1 day. Nothing engages before; a layer engages then."""
    spike = T0 + 100 * D

    def dvol(ts: int) -> float:
        return 150.0 if ts >= spike else 90.0 - 30.0 * ts / spike * (ts - T0) / (spike - T0)

    calm_dvol = lambda ts: 90.0 - 30.0 * ts / spike * (ts - T0) / (spike - T0)  # noqa: E731
    a = load_history(write_history(tmp_path / "a", 130, lambda ts: P0, dvol))
    b = load_history(write_history(tmp_path / "b", 130, lambda ts: P0 if ts < spike else 0.5 * P0,
                                   calm_dvol))
    from bot.policy_loader import load_policy
    pol = load_policy(str(Path(__file__).resolve().parents[3] / "examples" / "policy.toml"))
    cfg = Config(T0 + 90 * D, T0 + 110 * D, recenter_days=1000)
    ra, rb = run(a, pol, cfg), run(b, pol, cfg)
    known = spike + D
    engage = [d["now"] for d in ra.decisions
              if any(i["action"] == "engage_layer" for i in d["intents"])]
    assert engage, "the spike must engage something"
    assert min(engage) == known  # reacts at the first hour the close is known, not before
    # property: inputs differing only after spike (unknown before spike + 1 day for DVOL,
    # spike + 1 hour for spot) leave every decision and equity point up to then unchanged
    t = spike  # spot bars after spike differ: first known at spike + 1 h
    assert _decisions_upto(ra, t) == _decisions_upto(rb, t)
    n = ra.ts.index(t) + 1
    assert ra.hedged[:n] == rb.hedged[:n] and ra.unhedged[:n] == rb.unhedged[:n]
    assert ra.hedged[n + 30] != rb.hedged[n + 30]  # and they do differ once known
