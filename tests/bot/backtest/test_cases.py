"""More hand-known cases: a round trip, a USDC depeg exit, series that end early, funding
accrued per hourly and 8-hourly settlement."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bot.backtest.chain import Params
from bot.backtest.data import load_history
from bot.backtest.engine import Config, run, summary
from bot.policy_loader import load_policy
from tests.bot.backtest.helpers import (
    T0,
    D,
    H,
    always_on_policy,
    iso,
    write_funding,
    write_history,
    write_usdc,
)

# every test runs the hour-by-hour backtest engine: make test, not test-fast
pytestmark = pytest.mark.slow

V = 1_000_000.0
P0 = 2000.0
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "policy.toml"


def _lp_value(L: float, p: float, pa: float, pb: float) -> float:
    """Textbook v3 position value in USD (token1 = ETH priced p)."""
    p = min(max(p, pa), pb)
    sq = math.sqrt(p)
    x = L * (1 / sq - 1 / math.sqrt(pb))  # ETH
    y = L * (sq - math.sqrt(pa))  # USD
    return x * p + y


def _price_path(ts: int) -> float:
    """2000 flat, down 40% over 10 days, back up over 10 days, flat again."""
    a, b, c = T0 + 85 * D, T0 + 95 * D, T0 + 105 * D
    if ts <= a or ts >= c:
        return P0
    if ts <= b:
        return P0 * (1 - 0.4 * (ts - a) / (b - a))
    return P0 * (0.6 + 0.4 * (ts - b) / (c - b))


def test_round_trip_lp_value_returns_fees_only_in_range(tmp_path: Path) -> None:
    h = load_history(write_history(tmp_path, 130, _price_path, lambda ts: 60.0))
    start, end = T0 + 80 * D, T0 + 120 * D
    cfg = Config(start, end, range_pct=20, recenter_days=1000, fee_apr=0.20, position_usd=V)
    res = run(h, always_on_policy(), cfg)
    pa, pb = P0 * 0.8, P0 * 1.2
    L = V / (2 * math.sqrt(P0) - P0 / math.sqrt(pb) - math.sqrt(pa))
    # back at the start price, the LP is worth what it started with (tick rounding only)
    assert res.unhedged[-1] - res.fee_income == pytest.approx(V, rel=2e-4)
    # fees: 20% APR on the hour's value for every hour (after the first) in range; the
    # bar known at hour t is the one that started an hour before
    hand = 0.0
    for t in range(start + H, end + 1, H):
        s = _price_path(t - H)
        if pa <= s <= pb:
            hand += 0.20 * _lp_value(L, s, pa, pb) * H / (365 * D)
    # the path sits exactly on the lower edge for one hour going down and one coming up;
    # tick rounding (< 0.01%) may put those two hours either side of the edge
    assert abs(res.fee_income - hand) <= 2 * 0.20 * V * H / (365 * D)
    out_of_range = sum(1 for t in range(start + H, end + 1, H) if _price_path(t - H) < pa)
    assert out_of_range > 24 * 5  # the path spends days below the range: no fees then
    # protection alone = settlements + roll sales - premium - fees + marks of what is held
    gap = res.hedged[-1] - res.unhedged[-1]
    flows = res.option_payoff - res.premium - res.option_fees
    assert gap >= flows - 1e-6  # what is still held has a non-negative mark
    assert res.option_payoff > 0  # puts bought at 2000 struck ~1500 paid at the bottom


def test_depeg_exit_at_the_first_hour_it_is_known(tmp_path: Path) -> None:
    d = write_history(tmp_path, 120, lambda ts: P0, lambda ts: 60.0)
    depeg_bar = T0 + 100 * D + 3 * H + 30 * 60  # the 03:30 bar closes at 03:45
    write_usdc(d, T0, 120 * 96, lambda ts: 0.95 if ts >= depeg_bar else 1.0)
    h = load_history(d)
    cfg = Config(T0 + 90 * D, T0 + 110 * D, recenter_days=1000)
    res = run(h, load_policy(str(EXAMPLE)), cfg)
    exits = [rec["now"] for rec in res.decisions
             if any(i["action"] == "exit_lp" for i in rec["intents"])]
    assert exits == [T0 + 100 * D + 4 * H]  # known at 03:45; the next hourly decision
    assert res.exit_at == exits[0]
    k = res.ts.index(res.exit_at)
    # after the exit the hedged side holds the returned tokens: at a flat price it no
    # longer earns fees, while the unhedged LP (no policy) still does
    fee_after = res.unhedged[-1] - res.unhedged[k]
    assert fee_after == pytest.approx(0.20 * V * (len(res.ts) - 1 - k) / (365 * 24), rel=1e-3)
    s = summary(res, cfg)
    assert s["lp_exit"] == iso(exits[0])
    assert "depeg" not in " ".join(s["not_modelled"])


def test_series_that_end_early_make_their_signal_unknown_from_then(tmp_path: Path) -> None:
    d = write_history(tmp_path, 120, lambda ts: P0, lambda ts: 60.0)
    write_funding(d, "binance", T0, T0 + 100 * D, 8, 0.0001)  # ends 20 days early
    write_usdc(d, T0, 105 * 96, lambda ts: 1.0)  # ends at day 105
    h = load_history(d)
    cfg = Config(T0 + 90 * D, T0 + 110 * D, recenter_days=1000)
    s = summary(run(h, load_policy(str(EXAMPLE)), cfg), cfg)
    last = T0 + 100 * D - 8 * H  # last settlement
    # the funding signal: stale after 2 intervals (16 h); bybit has no file at all
    assert s["unknown"]["funding:binanceusdm"][0][0] == iso(last + 16 * H + H)
    assert s["unknown"]["funding"][-1] == [iso(last + 17 * H), iso(cfg.end)]
    # USDC: last bar 23:45 of day 104, known at day 105 00:00; stale after 1 h
    assert s["unknown"]["depeg"] == [[iso(T0 + 105 * D + 2 * H), iso(cfg.end)]]
    assert set(s["series_ended"]) >= {"funding:binanceusdm", "usdc"}
    assert "perp_funding:binanceusdm" in s["unknown"]


@pytest.mark.parametrize("interval_h", [1, 8])
def test_funding_accrues_per_settlement(tmp_path: Path, interval_h: int) -> None:
    """Flat price: the perp short is constant after its first adjustment; funding paid =
    size x price x rate per settlement known after it (hourly or 8-hourly venue)."""
    d = write_history(tmp_path, 120, lambda ts: P0, lambda ts: 60.0)
    rate = 0.0001 * interval_h  # the same 0.01%/h either way
    (d / "eth_funding_binance.csv").unlink()
    write_funding(d, "venue", T0, T0 + 120 * D, interval_h, rate)
    raw = dict(Params.load().raw)
    raw["perp"] = {**raw["perp"], "funding_files": {"binanceusdm": "eth_funding_venue.csv"}}
    raw["signals"] = {"funding_files": {"binanceusdm": "eth_funding_venue.csv"}}
    cfg = Config(T0 + 90 * D, T0 + 100 * D, recenter_days=1000)
    res = run(load_history(d), load_policy(str(EXAMPLE)), cfg, Params(raw))
    adj = [(rec["now"], i) for rec in res.decisions for i in rec["intents"]
           if i["action"] == "adjust_perp"]
    assert len(adj) == 1  # flat price: one adjustment, then inside the band
    t0, it = adj[0]
    size = float(it["target_total"])
    assert size < 0
    # a settlement at hour t accrues on the perp held before t's decision
    settlements = sum(1 for ts in range(T0, T0 + 120 * D, interval_h * H) if t0 < ts <= cfg.end)
    assert res.funding_paid == pytest.approx(size * P0 * rate * settlements, rel=1e-9)
    assert res.funding_paid < 0  # a short receives positive funding


def test_episode_analysis_matches_the_run(tmp_path: Path) -> None:
    """A crash with a DVOL spike: the episode names each engagement with its time and
    reason, and its spend/payoff over the whole run equal the run's own per-layer totals."""
    from bot.backtest.episodes import analyse, parse_window

    spike = T0 + 95 * D
    h = load_history(write_history(tmp_path, 130, _price_path,
                                   lambda ts: 150.0 if spike <= ts < spike + 5 * D else 60.0))
    cfg = Config(T0 + 80 * D, T0 + 120 * D, recenter_days=1000)
    res = run(h, load_policy(str(EXAMPLE)), cfg)
    name, a, b = parse_window(f"crash={iso(cfg.start)[:10]}..{iso(cfg.end)[:10]}")
    ep = analyse(res, name, a, b)
    engaged = [(rec["now"], i["layer"], i["reason"]) for rec in res.decisions
               for i in rec["intents"] if i["action"] == "engage_layer"]
    assert engaged, "the spike must engage a layer"
    got = [(e["time"], n, e["reason"]) for n, v in ep["layers"].items() for e in v["events"]
           if e["action"] == "engage_layer"]
    assert sorted(got) == sorted((iso(t), n, r) for t, n, r in engaged)
    for n, v in ep["layers"].items():
        assert v["spend_usd"] == pytest.approx(res.layers[n].spend_usd, abs=0.01)
        assert v["payoff_usd"] == pytest.approx(res.layers[n].payoff_usd, abs=0.01)
        assert v["hours_engaged"] == res.layers[n].hours_engaged
    assert ep["protection_pnl_usd"] == pytest.approx(
        (res.hedged[-1] - res.unhedged[-1]) - (res.hedged[0] - res.unhedged[0]), abs=0.01)


def test_precomputed_signal_track_gives_the_same_run(tmp_path: Path) -> None:
    from bot.backtest.engine import signal_track

    d = write_history(tmp_path, 120, _price_path, lambda ts: 60.0 + (ts - T0) / D)
    write_usdc(d, T0, 120 * 96, lambda ts: 1.0)
    h = load_history(d)
    cfg = Config(T0 + 80 * D, T0 + 110 * D, recenter_days=7)
    pol = load_policy(str(EXAMPLE))
    a, b = run(h, pol, cfg), run(h, pol, cfg, track=signal_track(h, cfg))
    assert (a.hedged, a.decisions, a.regime, dict(a.unknown)) == (
        b.hedged, b.decisions, b.regime, dict(b.unknown))
