"""Table-driven tests of the methodology's rules, with regimes built by policies.signals
from raw numbers (IV history, ATM IV curve, TVL history, peg quotes)."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pytest

from policies import signals
from policies.alvh import decide
from policies.hedge import (
    AdjustPerp,
    CloseOption,
    EngageLayer,
    ExitLP,
    HedgeBook,
    LayerEngagement,
    OpenOption,
    OptionHolding,
    OptionKind,
    PerpHolding,
    PerpQuote,
    ReleaseLayer,
    RollOption,
    apply_intents,
)
from policies.risk import lot_cost_cents
from policies.types import Level, Regime
from tests.policies.alvh import factory as f

SPOT = 3000.0
POOL = f.pool(SPOT)
POS = f.position(7, POOL, 2700.0, 3400.0, 40.0)
QUOTES = f.chain(SPOT)
HOUR = 3600


def engaged_layers(d) -> set[str]:  # type: ignore[no-untyped-def]
    return {t.layer for t in d.targets if t.state == "engaged"}


def opened(d, layer: str) -> list[OpenOption]:  # type: ignore[no-untyped-def]
    return [i for i in d.intents if isinstance(i, OpenOption) and i.layer == layer]


def run(regimes: tuple[Regime, ...], **kw):  # type: ignore[no-untyped-def]
    policy = kw.pop("policy", f.make_policy())
    return decide(f.inputs(policy, kw.pop("positions", (POS,)), regimes,
                           kw.pop("quotes", QUOTES), **kw))


# ------------------------------------------------------------------ IV percentile >= 70th


def dvol_series(pct: int) -> list[tuple[int, float]]:
    """100 points in the last 89 days: 99 past values 1..99, then a latest value that
    exactly ``pct`` percent of the window (itself included) are at or below."""
    step = 89 * f.DAY // 100
    past = [(f.NOW - HOUR - (100 - i) * step, float(i)) for i in range(1, 100)]
    return [*past, (f.NOW - HOUR, pct - 0.5)]


@pytest.mark.parametrize(("pct", "engaged"), [(95, True), (70, True), (69, False), (30, False)])
def test_iv_percentile_at_or_above_70th_engages_intermediate(pct: int, engaged: bool) -> None:
    reading = signals.iv_percentile(dvol_series(pct), f.NOW)
    assert reading.evidence["percentile"] == pytest.approx(pct)
    d = run((signals.aggregate("ETH", [reading]),))
    assert ("intermediate" in engaged_layers(d)) == engaged
    assert bool(opened(d, "intermediate")) == engaged
    if engaged:
        assert any("iv_percentile" in i.reason for i in opened(d, "intermediate"))


# ------------------------------------------------------------------ backwardation -> outer wings


@pytest.mark.parametrize(("front_iv", "back_iv", "engaged"), [
    # 7d vs constant-maturity 30d IV (total variance interpolated between 7d and 60d)
    (0.90, 0.70, True),   # 0.90 / 0.730 - 1 = +23%: backwardation
    (0.76, 0.70, True),   # 0.76 / 0.708 - 1 = +7.3% >= 5%: elevated
    (0.71, 0.70, False),  # 0.71 / 0.701 - 1 = +1.2%: flat is not stress (issue 13, Q2)
    (0.60, 0.70, False),  # contango
])
def test_backwardation_engages_the_outer_wings(front_iv: float, back_iv: float,
                                               engaged: bool) -> None:
    curve = [(f.NOW + 7 * f.DAY, front_iv), (f.NOW + 60 * f.DAY, back_iv)]
    reading = signals.term_structure(curve, as_of=f.NOW - 60, now=f.NOW)
    d = run((signals.aggregate("ETH", [reading]),))
    assert ("short" in engaged_layers(d)) == engaged
    buys = opened(d, "short")
    assert bool(buys) == engaged
    for b in buys:  # short-dated wings: 0-7 days, struck below the range
        assert 0 < b.instrument.days_to_expiry(f.NOW) <= 7
        assert b.instrument.strike < 2700


# ------------------------------------------------------------------ TVL -8% in 48 h


@pytest.mark.parametrize(("drop", "adds"), [(0.08, True), (0.12, True), (0.07, False)])
def test_tvl_down_8pct_in_48h_adds_protection(drop: float, adds: bool) -> None:
    series = [(f.NOW - h * HOUR, 100e6) for h in range(60, 0, -1)]
    series.append((f.NOW - 60, 100e6 * (1 - drop)))
    reading = signals.tvl_drop(series, f.NOW)
    policy = f.make_policy(layers={  # only the TVL trigger, so the regime level cannot engage it
        "structural": {"min_days": 60, "max_days": 120,
                       "trigger": {"signals": {"tvl_drop": "elevated"}},
                       "size": {"fraction_of_x_max": 0.4}, "roll": {"days_before_expiry": 30},
                       "premium": {"max_pct_of_spot": 0.1}}})
    d = run((Regime("ETH", Level.CALM, "calm", (reading,)),), policy=policy)
    buys = opened(d, "structural")
    assert bool(buys) == adds
    if adds:
        assert sum(float(b.size) for b in buys) == pytest.approx(0.4 * 40.0, abs=0.1 + 1e-9)
        assert all("tvl_drop" in b.reason for b in buys)


# ------------------------------------------------------------------ depeg exits the LP


@pytest.mark.parametrize(("price", "action", "exits"), [
    (0.985, "exit_lp", True),    # -150 bps: stress
    (0.9985, "exit_lp", False),  # -15 bps: calm
    (0.985, "alert_only", False),
])
def test_depeg_exits_the_lp_position(price: float, action: str, exits: bool) -> None:
    reading = signals.depeg("USDC", [signals.PegQuote("chainlink:USDC/USD", price, f.NOW - 60,
                                                      3600)], f.NOW)
    usdc = signals.aggregate("USDC", [reading])
    other = f.position(8, f.pool(SPOT, eth_is_token0=True), 2600.0, 3300.0, 10.0)  # USDT pool
    policy = f.make_policy(depeg={"action": action, "min_level": "stress"})
    d = run((f.regime(Level.CALM), usdc), positions=(POS, other), policy=policy)
    exit_ids = [i.token_id for i in d.intents if isinstance(i, ExitLP)]
    assert exit_ids == ([7] if exits else [])
    if exits:
        assert "depeg on USDC" in d.intents[0].reason
        again = decide(f.inputs(policy, (POS, other), (f.regime(Level.CALM), usdc), QUOTES,
                                book=apply_intents(HedgeBook(), d.intents)))
        assert not again.intents  # the pending exit is not repeated


# ------------------------------------------------------------------ session cap clip


@pytest.mark.parametrize(("fees_usd", "spent_total", "binding"), [
    (4_000, 0, "session cap"),          # budget $2,000, cap $500
    (400_000, 19_980_000, "total budget"),  # budget $200,000, $199,800 spent: $200 left
])
def test_more_than_25pct_of_budget_in_one_session_is_clipped(fees_usd: int, spent_total: int,
                                                             binding: str) -> None:
    d = run((f.regime(Level.CRISIS),), fees_usd=fees_usd, spent_total=spent_total)
    total = fees_usd * 100 // 2
    cap = total // 4
    room = min(cap, total - spent_total)
    assert 0 < d.spent_cents <= room
    # premium and the worst-case fee are both charged to the budget (issue 13, M4)
    assert sum(i.premium_cents + i.fee_cents for i in d.intents
               if isinstance(i, OpenOption)) == d.spent_cents
    assert all(i.fee_cents > 0 for i in d.intents if isinstance(i, OpenOption))
    clipped = [i for i in d.intents if isinstance(i, OpenOption) and "clipped" in i.reason]
    assert clipped and d.clips
    assert all(c.limit == binding for c in d.clips)
    assert binding in clipped[0].reason
    # the clip is stated with its numbers
    assert "wanted $" in d.clips[0].text and "bought $" in d.clips[0].text
    # what is left cannot buy one more lot of anything that was wanted
    left = room - d.spent_cents
    assert all(left < int(str(i.evidence["lot_cost_cents"])) for i in clipped)


def test_a_clipped_roll_states_the_room_it_had() -> None:
    """Budget $2,000 (50% of $4,000 fees), cap $500: a 50 ETH roll cannot fit; the clip
    says the cap had $500.00 left (not $500 plus what the roll then bought)."""
    old = f.instrument("deribit", 2500, 3)
    book = HedgeBook(options=(OptionHolding(old, Decimal("50"), "intermediate"),),
                     engaged=(LayerEngagement("ETH", "intermediate", f.NOW - 30 * f.DAY),))
    # x_max 200 ETH: the layer's 35% (70 ETH) covers the 50 ETH holding, so all of it is due
    big = f.position(7, POOL, 2700.0, 3400.0, 200.0)
    d = run((f.regime(Level.STRESS),), book=book, fees_usd=4_000, positions=(big,))
    roll = next(i for i in d.intents if isinstance(i, RollOption))
    prem = lot_cost_cents(roll.limit_price, roll.open_instrument.size_step)
    # worst-case fees per 0.1 lot (issue 13, M4): buying, min(0.03% x spot, 12.5% x ask)
    # x 0.1; selling the old lot, 0.03% x spot x 0.1 (its bid is not assumed); spot is
    # the pool's 3000.10, so each is 9.0003 cents, rounded up to 10
    spot = Fraction(repr(d.exposures[0].spot))
    buy_fee = math.ceil(min(Fraction(3, 10000) * spot, Fraction(1, 8) * Fraction(
        repr(roll.limit_price))) * Fraction(1, 10) * 100)
    sale_fee = math.ceil(Fraction(3, 10000) * spot * 10)
    assert (buy_fee, sale_fee) == (10, 10)
    lot = prem + buy_fee + sale_fee
    lots = 50000 // lot  # what $500.00 buys, whole lots
    assert roll.premium_cents == lots * prem and roll.open_size == lots * Decimal("0.1")
    assert roll.fee_cents == lots * (buy_fee + sale_fee)
    assert roll.close_size == roll.open_size  # same 0.1 step: close what was replaced
    clip = d.clips[0]
    assert (clip.limit, clip.room_cents, clip.allowed_cents) == ("session cap", 50000, lots * lot)
    assert clip.wanted_cents == 500 * lot  # 50 ETH = 500 lots of 0.1
    assert "had $500.00 left" in clip.text and "clipped roll of" in roll.reason
    assert d.spent_cents <= 50000


def test_within_budget_nothing_is_clipped() -> None:
    d = run((f.regime(Level.CRISIS),), fees_usd=10_000_000)
    assert d.spent_cents > 0 and not d.clips
    assert not any("clipped" in i.reason for i in d.intents)


# ------------------------------------------------------------------ unknown regime


def test_unknown_regime_buys_nothing_and_keeps_the_book() -> None:
    d = run((Regime("ETH", None, "no primary signal known"),))
    assert d.intents == ()
    assert all(t.state == "unknown" and "unknown" in t.trigger for t in d.targets)
    d = run(())  # no regime at all for the underlying
    assert d.intents == ()
    assert all("no regime reading" in t.trigger for t in d.targets)


def test_unknown_regime_keeps_engaged_layers_and_rolls_them() -> None:
    old = f.instrument("deribit", 2500, 3)
    book = HedgeBook(options=(OptionHolding(old, Decimal("10"), "intermediate"),),
                     engaged=(LayerEngagement("ETH", "intermediate", f.NOW - 30 * f.DAY),))
    d = run((Regime("ETH", None, "stale"),), book=book)
    kinds = {type(i) for i in d.intents}
    assert kinds == {RollOption}  # no release, no new buys, the existing protection rolls
    roll = d.intents[0]
    assert isinstance(roll, RollOption) and roll.close_size == Decimal("10")
    assert "regime unknown" in roll.reason


# ------------------------------------------------------------------ rolls and expiry


@pytest.mark.parametrize(("days_left", "level", "expect"), [
    (3.0, Level.STRESS, RollOption),   # engaged, 3d < 10d: roll
    (12.0, Level.STRESS, None),        # 12d >= 10d: keep
    (3.0, Level.CALM, ReleaseLayer),   # layer released: left to expire, not rolled
    (-0.5, Level.STRESS, CloseOption),  # expired: settle
])
def test_roll_rule(days_left: float, level: Level, expect: type | None) -> None:
    old = f.instrument("deribit", 2500, days_left)
    book = HedgeBook(options=(OptionHolding(old, Decimal("14"), "intermediate"),),
                     engaged=(LayerEngagement("ETH", "intermediate", f.NOW - 30 * f.DAY),))
    policy = f.make_policy(layers={"intermediate": {
        "min_days": 15, "max_days": 45, "trigger": {"min_level": "stress"},
        "size": {"fraction_of_x_max": 0.35}, "roll": {"days_before_expiry": 10},
        "premium": {"max_pct_of_spot": 0.05}}})
    d = run((f.regime(level),), book=book, policy=policy)
    kinds = [type(i) for i in d.intents if not isinstance(i, OpenOption)]
    assert kinds == ([expect] if expect else [])
    if expect is RollOption:
        roll = d.intents[0]
        assert isinstance(roll, RollOption)
        assert roll.close_instrument == old and roll.open_size >= roll.close_size
        assert roll.open_instrument.days_to_expiry(f.NOW) >= 10
        assert abs(roll.open_instrument.strike - 2500) <= 0.03 * 2500
        assert "3.0d to expiry < 10d" in roll.reason
    if expect is ReleaseLayer:
        assert any("left to expire" in n for n in d.notes)


@pytest.mark.slow  # a policy's life, day by day: make test, not test-fast
def test_rolls_happen_before_expiry_as_time_passes() -> None:
    """Walk a book day by day through engaged weeks: nothing ever reaches expiry."""
    policy = f.make_policy()
    quotes_at = {}
    book = HedgeBook()
    spent = 0
    rolls = 0
    for step in range(0, 4 * 100):  # every 6 hours for 100 days
        now = f.NOW + step * 6 * HOUR
        day = step // 4
        if day not in quotes_at:  # the listed expiries move once a day
            quotes_at[day] = f.chain(SPOT, days=(3, 6, 20, 35, 70, 100), now=f.NOW + day * f.DAY)
        fresh = tuple(replace(q, as_of=now - 30) for q in quotes_at[day])
        inp = f.inputs(policy, (POS,), (f.regime(Level.CRISIS),), fresh, book=book,
                       fees_usd=10_000_000, spent_total=spent, now=now)
        d = decide(inp)
        for h in book.options:  # every holding is either valid or rolled today
            assert h.instrument.expiry > now, "a holding reached expiry without a roll"
        assert not any(isinstance(i, CloseOption) for i in d.intents)
        rolls += sum(isinstance(i, RollOption) for i in d.intents)
        spent += d.spent_cents
        book = apply_intents(book, d.intents)
    assert rolls >= 20  # the short layer alone rolls every few days
    assert {h.layer for h in book.options} == {"short", "intermediate", "structural"}


# ------------------------------------------------------------------ cooldown and hysteresis


@pytest.mark.parametrize(("hours_engaged", "levels", "level", "released"), [
    (1, 0, Level.CALM, False),        # cooldown: 1h < 24h
    (100, 0, Level.CALM, True),       # cooldown over, trigger off
    (100, 1, Level.CALM, True),       # stress-1 = elevated: calm is below
    (100, 1, Level.ELEVATED, False),  # held by one level of hysteresis
    (100, 0, Level.ELEVATED, True),
])
def test_cooldown_and_hysteresis(hours_engaged: int, levels: int, level: Level,
                                 released: bool) -> None:
    policy = f.make_policy(layers={"intermediate": {
        "min_days": 15, "max_days": 45, "trigger": {"min_level": "stress"},
        "size": {"fraction_of_x_max": 0.35}, "roll": {"days_before_expiry": 10},
        "premium": {"max_pct_of_spot": 0.05},
        "hysteresis": {"levels": levels, "min_engaged_hours": 24}}})
    book = HedgeBook(engaged=(LayerEngagement("ETH", "intermediate",
                                              f.NOW - hours_engaged * HOUR),))
    d = run((f.regime(level),), book=book, policy=policy)
    assert any(isinstance(i, ReleaseLayer) for i in d.intents) == released
    assert ("intermediate" in engaged_layers(d)) == (not released)


def test_engaging_is_recorded_once() -> None:
    d = run((f.regime(Level.STRESS),))
    engages = [i for i in d.intents if isinstance(i, EngageLayer)]
    assert {e.layer for e in engages} == {"intermediate", "structural"}
    assert all(e.since == f.NOW for e in engages)


# ------------------------------------------------------------------ instrument choice


def test_strike_nearest_the_rule_and_cheapest_venue() -> None:
    """Lower edge 2700, offsets 5-7%: target 2538 -> strike 2550; derive is cheaper there."""
    q = [f.quote(f.instrument("deribit", k, 30), SPOT) for k in (2400, 2450, 2500, 2550, 2600)]
    cheap = f.quote(f.instrument("derive", 2550, 30), SPOT)
    cheap = replace(cheap, ask=cheap.ask * 0.9, bid=cheap.ask * 0.85)  # type: ignore[operator]
    d = run((f.regime(Level.STRESS),), quotes=(*q, cheap))
    buys = opened(d, "intermediate")
    assert [(b.instrument.venue, b.instrument.strike) for b in buys] == [("derive", 2550.0)]


@pytest.mark.parametrize("defect", ["wide spread", "low oi", "unknown oi", "stale", "no bid",
                                    "expired", "venue", "too dear", "inside roll window"])
def test_illiquid_or_unusable_instruments_are_never_chosen(defect: str) -> None:
    good = f.quote(f.instrument("deribit", 2500, 30), SPOT)
    inst = f.instrument("deribit", 2550, 30)
    bad = f.quote(inst, SPOT)
    if defect == "wide spread":
        bad = replace(bad, bid=1.0)
    elif defect == "low oi":
        bad = replace(bad, open_interest=10.0)
    elif defect == "unknown oi":
        bad = replace(bad, open_interest=None)
    elif defect == "stale":
        bad = replace(bad, as_of=f.NOW - 3600)
    elif defect == "no bid":
        bad = replace(bad, bid=None)
    elif defect == "expired":
        bad = f.quote(replace(inst, expiry=f.NOW - 1), SPOT)
    elif defect == "venue":
        bad = f.quote(replace(inst, venue="okx"), SPOT)
    elif defect == "too dear":  # above 0.4 x spot x IV x sqrt(T) = 0.4*3000*0.7*0.287 = $241
        bad = replace(bad, ask=300.0, bid=295.0)
    elif defect == "inside roll window":
        bad = f.quote(f.instrument("deribit", 2550, 9), SPOT)
    d = run((f.regime(Level.STRESS),), quotes=(good, bad))
    chosen = {b.instrument.key for b in opened(d, "intermediate")}
    assert chosen == {good.instrument.key}


def test_calls_above_the_range_when_configured() -> None:
    policy = f.make_policy(layers={"intermediate": {
        "min_days": 15, "max_days": 45, "trigger": {"min_level": "stress"},
        "strike": {"calls": True}, "size": {"fraction_of_x_max": 0.5},
        "roll": {"days_before_expiry": 10}, "premium": {"max_pct_of_spot": 0.05}}})
    quotes = f.chain(SPOT, days=(30,), kinds=(OptionKind.PUT, OptionKind.CALL))
    d = run((f.regime(Level.STRESS),), policy=policy, quotes=quotes)
    calls = [b for b in opened(d, "intermediate") if b.instrument.kind is OptionKind.CALL]
    puts = [b for b in opened(d, "intermediate") if b.instrument.kind is OptionKind.PUT]
    assert calls and puts
    assert all(3400 * 1.03 <= c.instrument.strike <= 3400 * 1.09 for c in calls)
    assert all(2700 * 0.91 <= p.instrument.strike <= 2700 * 0.97 for p in puts)


# ------------------------------------------------------------------ perps


def perp_policy() -> object:
    return f.make_policy(perp={"enabled": True, "hedge_ratio": 0.5, "rebalance_band": 0.1,
                               "venues": ["hyperliquid", "binanceusdm", "bybit"]})


def pq(venue: str, rate: float | None, age: int = 10) -> PerpQuote:
    return PerpQuote(venue, "ETH", SPOT, rate, f.NOW - age, Decimal("0.001"))


def test_perp_short_goes_to_the_venue_paying_shorts_most() -> None:
    quotes = (pq("hyperliquid", 0.0001), pq("binanceusdm", 0.0003), pq("bybit", 0.0009, 3600),
              pq("dydx", 0.01))  # bybit stale, dydx not allowed
    d = run((f.regime(Level.CALM),), policy=perp_policy(), perp_quotes=quotes)
    adj = [i for i in d.intents if isinstance(i, AdjustPerp)]
    assert len(adj) == 1 and adj[0].venue == "binanceusdm"
    delta = d.exposures[0].delta
    assert float(adj[0].delta) == pytest.approx(-0.5 * delta, abs=0.001)
    assert adj[0].target_total <= 0
    again = decide(f.inputs(perp_policy(), (POS,), (f.regime(Level.CALM),), QUOTES,  # type: ignore[arg-type]
                            book=apply_intents(HedgeBook(), d.intents), perp_quotes=quotes))
    assert again.intents == ()


def test_perp_buy_back_takes_the_costliest_short_first() -> None:
    book = HedgeBook(perps=(PerpHolding("hyperliquid", "ETH", Decimal("-20")),
                            PerpHolding("binanceusdm", "ETH", Decimal("-20"))))
    quotes = (pq("hyperliquid", -0.0002), pq("binanceusdm", 0.0003))
    d = run((f.regime(Level.CALM),), policy=perp_policy(), perp_quotes=quotes, book=book)
    adj = {i.venue: i for i in d.intents if isinstance(i, AdjustPerp)}
    target = adj["hyperliquid"].target_total
    assert -20 < target < 0  # half of a ~21 ETH delta: a buy-back of more than 20
    assert adj["hyperliquid"].delta == Decimal("20")  # shorts pay funding there: closed first
    assert adj["binanceusdm"].delta == target + 20
    after = apply_intents(book, d.intents)
    assert after.perp_total("ETH") == target
    assert [p.venue for p in after.perps] == ["binanceusdm"]


# ------------------------------------------------------------------ misc


def test_lot_cost_is_rounded_up_to_the_cent() -> None:
    assert lot_cost_cents(12.341, Decimal("0.1")) == 124
    assert lot_cost_cents(12.34, Decimal("1")) == 1234
    assert lot_cost_cents(0.001, Decimal("0.1")) == 1


def test_uncovered_positions_are_ignored_with_a_note() -> None:
    other_pool = replace(POOL, address="0x" + "ab" * 20)
    stray = replace(POS, token_id=99, pool=other_pool)
    d = run((f.regime(Level.STRESS),), positions=(POS, stray))
    assert [e.token_id for e in d.exposures] == [7]
    assert any("not covered" in n and "99" in n for n in d.notes)
