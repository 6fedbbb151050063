"""Hypothesis properties of decide() over random states: random positions in both pool
orientations, random chains with defects, random regimes, books, budgets and policies."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import replace
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from policies.alvh import Decision, DecisionInputs, decide
from policies.hedge import (
    AdjustPerp,
    CloseOption,
    EngageLayer,
    ExitLP,
    HedgeBook,
    Instrument,
    LayerEngagement,
    OpenOption,
    OptionHolding,
    OptionKind,
    OptionQuote,
    PerpHolding,
    PerpQuote,
    ReleaseLayer,
    RollOption,
    apply_intents,
    intent_premium_cents,
)
from policies.policy_file import Policy, policy_from_dict
from policies.pricing import black76
from policies.risk import BudgetState
from policies.types import Level, Regime, SignalReading
from tests.policies.alvh import factory as f

SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LEVELS = [Level.CALM, Level.ELEVATED, Level.STRESS, Level.CRISIS]
SIGNALS = ["iv_percentile", "term_structure", "tvl_drop", "funding", "depeg", "rsi_macd"]
LAYERS = ("short", "intermediate", "structural")


@st.composite
def policies(draw: st.DrawFn, friendly: bool = False) -> Policy:
    """Random valid policies; ``friendly`` ones have room to buy and roll."""
    def layer(min_days: float, max_days: float) -> dict[str, Any]:
        trig: dict[str, Any] = {}
        if draw(st.booleans()):
            trig["min_level"] = draw(st.sampled_from(["elevated", "stress", "crisis"]))
        sigs = draw(st.lists(st.sampled_from(SIGNALS), max_size=3, unique=True))
        trig["signals"] = {s: draw(st.sampled_from(["elevated", "stress", "crisis"]))
                           for s in sigs}
        if friendly or (not trig.get("min_level") and not trig["signals"]):
            trig["min_level"] = "elevated"
        a = draw(st.floats(0.0, 0.1))
        return {
            "min_days": min_days, "max_days": max_days, "trigger": trig,
            "strike": {"put_offset": [a, a + draw(st.floats(0.0, 0.05))],
                       "calls": draw(st.booleans()), "tolerance": draw(st.floats(0.0, 0.05))},
            "size": {"fraction_of_x_max": draw(st.floats(0.05, 1.0)),
                     "min_adjust_fraction": draw(st.floats(0.01, 0.3))},
            "roll": {"days_before_expiry": draw(st.floats(0.0, max_days * 0.6)),
                     "max_strike_change": draw(st.floats(0.05 if friendly else 0.0, 0.1)),
                     "restrike": draw(st.booleans())},
            "premium": {"max_pct_of_spot": draw(st.floats(0.1 if friendly else 0.01, 0.25))},
            # below the lowest trigger level (else the layer could never be released)
            "hysteresis": {"levels": draw(st.integers(0, min(
                [_RANK[v] for v in (trig.get("min_level"), *trig["signals"].values()) if v])
                - 1)),
                           "min_engaged_hours": draw(st.sampled_from([0.0, 24.0, 72.0]))},
        }
    return policy_from_dict(f.policy_dict(
        venues={"options": draw(st.sampled_from([["deribit"], ["deribit", "derive"]]))},
        liquidity={"max_spread": draw(st.floats(0.05, 0.5)),
                   "min_open_interest": draw(st.floats(0, 300)),
                   "max_quote_age_seconds": draw(st.sampled_from([60, 300, 3600]))},
        layers={"short": layer(0, 7), "intermediate": layer(15, 45),
                "structural": layer(60, 120)},
        budget={"share_of_expected_fees": draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])
                                               | st.floats(0.0, 1.0)),
                "session_cap_share": draw(st.sampled_from([0.25, 0.1, 1.0])
                                          | st.floats(0.0, 1.0))},
        perp={"enabled": draw(st.booleans()), "hedge_ratio": draw(st.floats(0, 1)),
              "rebalance_band": draw(st.floats(0.01, 0.5)),
              "venues": ["hyperliquid", "binanceusdm"]},
        depeg={"action": draw(st.sampled_from(["exit_lp", "alert_only"])),
               "min_level": draw(st.sampled_from(["elevated", "stress", "crisis"]))},
    ))


def regimes_from(draw: st.DrawFn, level: Level | None = None) -> tuple[Regime, ...]:
    lv = draw(st.sampled_from([None, *LEVELS])) if level is None else level
    names = draw(st.lists(st.sampled_from(SIGNALS), max_size=6, unique=True))
    sigs = tuple(SignalReading(n, draw(st.sampled_from([None, *LEVELS])), f"{n} reading")
                 for n in sorted(names))
    out = [Regime("ETH", lv, "random regime", sigs)]
    for stable in ("USDC", "USDT"):
        if draw(st.booleans()):
            out.append(Regime(stable, Level.CALM, "peg", (SignalReading(
                "depeg", draw(st.sampled_from([None, *LEVELS])), f"{stable} peg"),)))
    return tuple(out)


@st.composite
def states(draw: st.DrawFn, level: Level | None = None,
           empty_book: bool = False) -> DecisionInputs:
    friendly = draw(st.booleans())  # half the states: good quotes, money, engaged layers
    policy = draw(policies(friendly))
    if friendly and level is None:
        level = draw(st.sampled_from(LEVELS[1:]))
    spot = draw(st.floats(800, 6000))
    pools = {True: f.pool(spot, eth_is_token0=True), False: f.pool(spot)}
    positions = []
    for i in range(draw(st.integers(1, 6))):
        lower = spot * draw(st.floats(0.5, 1.2))
        upper = lower * (1 + draw(st.floats(0.03, 1.5)))
        positions.append(f.position(100 + i, pools[draw(st.booleans())], lower, upper,
                                    draw(st.floats(0.2, 400))))
    rnd = random.Random(draw(st.integers(0, 2**32)))  # bulk quote details from one seed
    now = f.NOW
    quotes: list[OptionQuote] = []
    spacing = max(5, int(spot * draw(st.sampled_from([0.015, 0.025, 0.04]))) // 5 * 5)
    strikes = [float(k) for k in range(int(spot * 0.45) // spacing * spacing + spacing,
                                       int(spot * 1.6), spacing)]
    days = [draw(st.floats(0.2, 7)), draw(st.floats(15, 45)), draw(st.floats(60, 120)),
            *draw(st.lists(st.floats(-3, 130), max_size=2))]
    for venue in ("deribit", "derive", "okx"):
        step = rnd.choice(["0.1", "1", "0.01"])
        for d in sorted(set(days)):
            for k in strikes:
                for kind in (OptionKind.PUT, OptionKind.CALL):
                    if rnd.random() < 0.2:
                        continue
                    inst = f.instrument(venue, k, d, kind, step, now=now)
                    if inst.expiry <= now:
                        q = OptionQuote(inst, 1.0, 1.1, 0.7, 100.0, spot, now - 10)
                    elif friendly or rnd.random() < 0.8:  # a good quote
                        q = f.quote(inst, spot, iv=rnd.uniform(0.3, 1.0),
                                    spread=rnd.choice([0.01, 0.05]), oi=5000.0, age=10, now=now)
                    else:  # one defect or another
                        q = f.quote(inst, spot, iv=rnd.uniform(0.3, 1.5),
                                    spread=rnd.choice([0.01, 0.05, 0.6, 1.2]),
                                    oi=rnd.choice([None, 0.0, 20.0, 100.0, 5000.0]),
                                    age=rnd.choice([-5, 10, 200, 5000]), now=now)
                        if rnd.random() < 0.2:
                            q = replace(q, bid=None)
                        if rnd.random() < 0.2:
                            q = replace(q, ask=None)
                    quotes.append(q)
    book = HedgeBook()
    if not empty_book:
        holdings: dict[tuple[str, str, str], OptionHolding] = {}
        live = [q for q in quotes if q.instrument.expiry > now and q.ask is not None]
        for _ in range(draw(st.integers(0, 8))):
            if live and rnd.random() < 0.85:
                inst = rnd.choice(live).instrument
            else:
                inst = f.instrument("deribit", rnd.choice(strikes), rnd.uniform(-5, 100),
                                    now=now)
            layer = rnd.choice([*LAYERS, "legacy"])
            if friendly:  # the layer whose tenor it was bought in (rolls come due)
                dte = inst.days_to_expiry(now)
                layer = "short" if dte < 11 else "intermediate" if dte < 50 else "structural"
            size = inst.size_step * rnd.randint(1, 300)
            holdings[(*inst.key, layer)] = OptionHolding(inst, size, layer)
        # holdings inside their layer's roll window (due now), so that rolls are common
        for _ in range(draw(st.integers(1, 3) if friendly else st.integers(0, 1))):
            layer = rnd.choice(LAYERS)
            roll_days = policy.layers[layer].roll.days_before_expiry
            if roll_days <= 0:
                continue
            inst = f.instrument(rnd.choice(["deribit", "derive"]), rnd.choice(strikes),
                                roll_days * rnd.uniform(0.05, 0.95),
                                rnd.choice([OptionKind.PUT, OptionKind.CALL]),
                                rnd.choice(["0.1", "1", "0.01"]), now=now)
            holdings[(*inst.key, layer)] = OptionHolding(
                inst, inst.size_step * rnd.randint(1, 300), layer)
        engaged = tuple(LayerEngagement("ETH", name, now - rnd.randint(0, 200) * 3600)
                        for name in LAYERS if friendly or rnd.random() < 0.6)
        perps = tuple(PerpHolding(v, "ETH", Decimal(rnd.randint(-50000, 2000)) / 1000)
                      for v in ("hyperliquid", "binanceusdm") if rnd.random() < 0.4)
        book = HedgeBook(tuple(holdings[k] for k in sorted(holdings)), perps, engaged,
                         tuple(sorted(rnd.sample([100, 101, 102], rnd.randint(0, 1)))))
    perp_quotes = tuple(PerpQuote(v, "ETH", spot, rnd.choice([None, -0.0003, 0.0001, 0.0005]),
                                  now - rnd.choice([5, 100, 10_000]), Decimal("0.001"))
                        for v in ("hyperliquid", "binanceusdm", "dydx"))
    fees = draw(st.sampled_from([0, 10**6, 10**7, 10**8, 10**9, 10**11])) + draw(
        st.integers(0, 10**6))  # cents of expected fee income
    total = int(Fraction(str(policy.budget.share_of_expected_fees)) * fees)
    spent_total = draw(st.sampled_from([0, 0, 0, total // 2, total // 5 * 4, total + 1000]))
    spent_session = draw(st.sampled_from([0, 0, total // 10, total // 3, total]))
    if friendly:
        fees, spent_total, spent_session = fees + 10**9, 0, 0
    return DecisionInputs(now=now, policy=policy, positions=tuple(positions),
                          regimes=regimes_from(draw, level), book=book,
                          budget=BudgetState(fees, spent_total, spent_session),
                          quotes=tuple(quotes), perp_quotes=perp_quotes)


def limits(inp: DecisionInputs) -> tuple[int, int]:
    """(total budget, session cap) in cents, computed independently with Fractions."""
    b = inp.policy.budget
    total = int(Fraction(str(b.share_of_expected_fees)) * inp.budget.expected_fee_income_cents)
    cap = int(Fraction(str(b.session_cap_share)) * total)
    return total, cap


def quote_of(inp: DecisionInputs, inst: Instrument) -> OptionQuote:
    return next(q for q in inp.quotes if q.instrument == inst)


# ------------------------------------------------------------------ budgets


@SETTINGS
@given(states())
def test_session_cap_and_budgets_are_never_exceeded(inp: DecisionInputs) -> None:
    total, cap = limits(inp)
    spent_total = inp.budget.spent_total_cents
    for session in range(3):  # three sessions (days), two decisions each
        spent_session = 0 if session else inp.budget.spent_session_cents
        for _ in range(2):
            now = f.NOW + session * f.DAY
            cur = replace(inp, now=now, budget=BudgetState(
                inp.budget.expected_fee_income_cents, spent_total, spent_session),
                quotes=tuple(replace(q, as_of=now - 10) for q in inp.quotes))
            d = decide(cur)
            premium = sum(intent_premium_cents(i) for i in d.intents)
            room = max(0, min(cap - spent_session, total - spent_total))
            assert premium == d.spent_cents
            assert premium <= max(0, cap - spent_session)
            assert premium <= max(0, total - spent_total)
            # every clip states true numbers: what it had, wanted and got, in cents
            for c in d.clips:
                assert 0 <= c.allowed_cents < c.wanted_cents
                assert c.allowed_cents <= c.room_cents <= room
                left_session, left_total = max(0, cap - spent_session), max(0, total - spent_total)
                if left_session != left_total:  # the tighter one binds (a tie: either)
                    assert c.limit == ("session cap" if left_session < left_total
                                       else "total budget")
                for cents in (c.wanted_cents, c.allowed_cents, c.room_cents):
                    assert f"${cents // 100:,}.{cents % 100:02d}" in c.text
            for i in d.intents:
                if isinstance(i, OpenOption | RollOption):
                    inst = i.instrument if isinstance(i, OpenOption) else i.open_instrument
                    size = i.size if isinstance(i, OpenOption) else i.open_size
                    # the budgeted premium covers the fill at the ask, to the cent, rounded up
                    exact = size * Decimal(repr(i.limit_price)) * 100
                    assert i.premium_cents >= exact
                    lot = (Decimal(repr(i.limit_price)) * inst.size_step * 100).to_integral_value(
                        ROUND_CEILING)
                    assert i.premium_cents == int(lot) * int(size / inst.size_step)
            spent_total += premium
            spent_session += premium
            inp = replace(inp, book=apply_intents(inp.book, d.intents))
            if session:
                assert spent_session <= cap
    assert spent_total - inp.budget.spent_total_cents <= max(0, total - inp.budget.spent_total_cents)


# ------------------------------------------------------------------ never sells, never adds loss


@SETTINGS
@given(states())
def test_never_sells_options_nor_adds_loss_below_the_range(inp: DecisionInputs) -> None:
    d = decide(inp)
    held = {(*h.instrument.key, h.layer): h.size for h in inp.book.options}
    lowers = [e.lower for e in d.exposures]
    uppers = [e.upper for e in d.exposures]
    for i in d.intents:
        if isinstance(i, OpenOption):
            assert i.size > 0 and i.premium_cents > 0
            k = i.instrument.strike
            if i.instrument.kind is OptionKind.PUT:  # a put at or below some range's lower edge
                assert k <= max(lowers) * (1 + 1e-9)
            else:  # a call at or above some range's upper edge: pays nothing below the range
                assert k >= min(uppers) * (1 - 1e-9)
            # and inside the strike rule's band of some covered position (offsets, tolerance)
            st_ = inp.policy.layers[i.layer].strike
            bands = []
            for e in d.exposures:
                if i.instrument.kind is OptionKind.PUT:  # off min(spot, lower edge)
                    a, b = st_.put_offset
                    base = min(e.spot, e.lower)
                    bands.append((base * max(1 - b - st_.tolerance, 0.0),
                                  base * (1 - max(a - st_.tolerance, 0.0))))
                else:  # off max(spot, upper edge)
                    a, b = st_.call_offset
                    base = max(e.spot, e.upper)
                    bands.append((base * (1 + max(a - st_.tolerance, 0.0)),
                                  base * (1 + b + st_.tolerance)))
            assert any(lo * (1 - 1e-9) <= k <= hi * (1 + 1e-9) for lo, hi in bands), (k, bands)
        elif isinstance(i, RollOption):
            assert 0 < i.close_size <= held[(*i.close_instrument.key, i.layer)]
            assert i.open_size >= i.close_size
            assert i.open_instrument.kind is i.close_instrument.kind
            assert i.open_instrument.expiry > i.close_instrument.expiry
        elif isinstance(i, CloseOption):  # only settling what expired, all of it
            assert i.instrument.expiry <= inp.now
            assert i.size == held[(*i.instrument.key, i.layer)]
        elif isinstance(i, AdjustPerp):
            assert i.target_total <= 0  # never net long
            if i.delta > 0:  # only buys back an existing short on that venue
                venue = sum((p.size for p in inp.book.perps
                             if p.venue == i.venue and p.underlying == i.underlying), Decimal(0))
                assert venue + i.delta <= 0
    assert all(h.size > 0 for h in d.book_after.options)
    # protection is never given up early: per layer and kind, what is held and not
    # expired stays at least as large (rolls replace a holding by at least its size)
    def live(book: HedgeBook) -> dict[tuple[str, str, str], Decimal]:
        out: dict[tuple[str, str, str], Decimal] = {}
        for h in book.options:
            if h.instrument.expiry > inp.now:
                k = (h.instrument.underlying, h.layer, h.instrument.kind.value)
                out[k] = out.get(k, Decimal(0)) + h.size
        return out

    after = live(d.book_after)
    for key, size in live(inp.book).items():
        assert after.get(key, Decimal(0)) >= size, key
    # what is opened pays more, never less, the further the price falls below every range
    if lowers:
        spot = d.exposures[0].spot
        grid = [min(lowers) * x / 10 for x in range(10, -1, -1)]
        payoffs = []
        for p in grid:
            pay = 0.0
            for i in d.intents:
                if isinstance(i, OpenOption):
                    k = i.instrument.strike
                    pay += float(i.size) * (max(k - p, 0) if i.instrument.kind is OptionKind.PUT
                                            else max(p - k, 0))
                elif isinstance(i, AdjustPerp) and i.delta < 0:
                    pay += float(-i.delta) * (spot - p)
            payoffs.append(pay)
        assert all(b >= a - 1e-6 for a, b in itertools.pairwise(payoffs))


# ------------------------------------------------------------------ idempotent


@SETTINGS
@given(states())
def test_idempotent_apply_then_decide_again_gives_nothing(inp: DecisionInputs) -> None:
    d = decide(inp)
    for i in {i.action for i in d.intents}:
        event(i)
    event("clipped" if d.clips else "not clipped")
    again = replace(inp, book=apply_intents(inp.book, d.intents), budget=BudgetState(
        inp.budget.expected_fee_income_cents, inp.budget.spent_total_cents + d.spent_cents,
        inp.budget.spent_session_cents + d.spent_cents))
    d2 = decide(again)
    assert d2.intents == (), [i.reason for i in d2.intents]
    assert d2.book_after == again.book
    assert decide(inp) == d  # deterministic
    shuffled = replace(inp, quotes=inp.quotes[::-1], positions=inp.positions[::-1],
                       regimes=inp.regimes[::-1], perp_quotes=inp.perp_quotes[::-1],
                       book=replace(inp.book, options=inp.book.options[::-1],
                                    perps=inp.book.perps[::-1]))
    assert decide(shuffled) == d  # the order of the inputs does not matter


# ------------------------------------------------------------------ monotone


def _desired(d: Decision) -> dict[tuple[str, str, str], float]:
    return {(t.underlying, t.layer, t.kind.value): t.desired for t in d.targets}


@SETTINGS
@given(states(level=Level.CALM), st.data())
def test_higher_regime_never_lowers_target_protection(inp: DecisionInputs,
                                                      data: st.DataObject) -> None:
    eth = inp.regimes[0]
    lo_level = data.draw(st.sampled_from(LEVELS))
    hi_level = data.draw(st.sampled_from([lv for lv in LEVELS if lv >= lo_level]))
    lo_sigs, hi_sigs = [], []
    for s in eth.signals:
        a = data.draw(st.sampled_from(LEVELS))
        b = data.draw(st.sampled_from([lv for lv in LEVELS if lv >= a]))
        if s.name == "depeg":  # a depeg exits positions: less exposure, not less appetite
            b = a
        lo_sigs.append(replace(s, level=a))
        hi_sigs.append(replace(s, level=b))
    low = replace(inp, regimes=(Regime("ETH", lo_level, "low", tuple(lo_sigs)),))
    high = replace(inp, regimes=(Regime("ETH", hi_level, "high", tuple(hi_sigs)),))
    d_lo, d_hi = decide(low), decide(high)
    lo_t, hi_t = _desired(d_lo), _desired(d_hi)
    assert lo_t.keys() == hi_t.keys()
    for key, value in lo_t.items():
        assert hi_t[key] >= value - 1e-9, key
    def engaged(d: Decision) -> set[tuple[str, str]]:
        return {(t.underlying, t.layer) for t in d.targets if t.state == "engaged"}

    def after(d: Decision) -> dict[tuple[str, str, str], float]:
        return {(t.underlying, t.layer, t.kind.value): t.after for t in d.targets}

    assert engaged(d_lo) <= engaged(d_hi)
    # and with the budget not binding, what is actually bought is monotone too
    if not d_lo.clips and not d_hi.clips:
        a_lo, a_hi = after(d_lo), after(d_hi)
        for key, value in a_lo.items():
            if key[1] in {k[1] for k in engaged(d_lo)}:
                assert a_hi[key] >= value - 1e-9


@SETTINGS
@given(states(level=Level.CALM, empty_book=True))
def test_calm_regime_with_empty_book_buys_nothing(inp: DecisionInputs) -> None:
    # every signal calm or unknown: an unknown signal never fires a trigger
    calm = tuple(replace(r, signals=tuple(
        replace(s, level=None if s.level is None else Level.CALM) for s in r.signals))
        for r in inp.regimes)
    d = decide(replace(inp, regimes=calm))
    assert d.spent_cents == 0
    assert not [i for i in d.intents if isinstance(i, OpenOption | RollOption | EngageLayer
                                                   | ExitLP | ReleaseLayer | CloseOption)]
    assert all(t.desired == 0 for t in d.targets)


# ------------------------------------------------------------------ engagement


_RANK = {"calm": 0, "elevated": 1, "stress": 2, "crisis": 3}


def expect_engaged(inp: DecisionInputs, underlying: str, name: str) -> bool:
    """docs/policy.md's engagement rule, written out again independently of the engine:
    a trigger fires when the regime level or a named signal reaches its level; once
    engaged a layer stays so for the cooldown and while a trigger is within the hysteresis
    band; an unknown regime keeps the layer as it was."""
    layer = inp.policy.layers[name]
    prev = next((e for e in inp.book.engaged
                 if e.underlying == underlying and e.layer == name), None)
    regime = next((r for r in inp.regimes if r.underlying == underlying), None)
    if regime is None or regime.level is None:
        return prev is not None

    def fires(slack: int) -> bool:
        trig = layer.trigger
        assert regime is not None and regime.level is not None
        if trig.min_level is not None and int(regime.level) >= _RANK[trig.min_level] - slack:
            return True
        wanted: dict[str, str] = {k: v for k, v in trig.signals.items()}
        for s in regime.signals:
            need = wanted.get(s.name)
            if need is not None and s.level is not None and int(s.level) >= _RANK[need] - slack:
                return True
        return False

    if fires(0):
        return True
    if prev is None:
        return False
    read = {s.name for s in regime.signals if s.level is not None}
    if any(n not in read for n in layer.trigger.signals):  # unknown trigger: never released
        return True
    if inp.now - prev.since < layer.hysteresis.min_engaged_hours * 3600:
        return True
    return layer.hysteresis.levels > 0 and fires(layer.hysteresis.levels)


@SETTINGS
@given(states())
def test_engagement_follows_the_documented_rule(inp: DecisionInputs) -> None:
    d = decide(inp)
    eth = next((r for r in inp.regimes if r.underlying == "ETH"), None)
    if eth is None or eth.level is None:  # unknown: nothing new, nothing released (the perp
        # delta hedge needs prices only and runs whatever the regime: issue 13, D5)
        assert not [i for i in d.intents if isinstance(
            i, OpenOption | EngageLayer | ReleaseLayer)]
        assert all(i.layer in {e.layer for e in inp.book.engaged} and "regime unknown" in
                   i.reason for i in d.intents if isinstance(i, RollOption))
    after = {(e.underlying, e.layer) for e in d.book_after.engaged}
    for name in inp.policy.layers:
        want = expect_engaged(inp, "ETH", name)
        prev = inp.book.engagement("ETH", name) is not None
        event(f"{'engaged' if prev else 'idle'} -> {'engaged' if want else 'not engaged'}")
        assert (("ETH", name) in after) == want, name
        for t in d.targets:
            if t.layer == name:
                assert (t.state == "engaged") == (want and t.state != "unknown")
                if not want:
                    assert t.desired == 0 and t.bought == 0


# ------------------------------------------------------------------ rolls and instrument choice


def engine_spot(d: Decision) -> float:
    """The spot the premium limit is taken against: the deepest covered position's."""
    return max(d.exposures, key=lambda e: (e.liquidity, e.pool)).spot


def ineligible(inp: DecisionInputs, spot: float, q: OptionQuote, layer_name: str) -> str | None:
    """docs/policy.md 'Instrument choice', written out again: why a quote is unusable."""
    policy, layer, inst = inp.policy, inp.policy.layers[layer_name], q.instrument
    liq = policy.liquidity
    days = (inst.expiry - inp.now) / f.DAY
    if inst.venue not in policy.venues.options:
        return "venue"
    if inst.expiry <= inp.now:
        return "expired"
    if days < max(layer.min_days, layer.roll.days_before_expiry) or days > layer.max_days:
        return "tenor"
    if not 0 <= inp.now - q.as_of <= liq.max_quote_age_seconds:
        return "stale"
    if q.bid is None or q.ask is None or not 0 <= q.bid <= q.ask or q.ask <= 0:
        return "quote"
    if (q.ask - q.bid) / (0.5 * (q.bid + q.ask)) > liq.max_spread:
        return "spread"
    if q.open_interest is None or q.open_interest < liq.min_open_interest:
        return "open interest"
    prem = layer.premium
    if prem.max_pct_of_spot is not None and q.ask > prem.max_pct_of_spot * spot:
        return "premium"
    if prem.max_vol_units is not None:  # vol x sqrt(tenor) scaled limit (issue 13, D2)
        if q.mark_iv is None or q.mark_iv <= 0:
            return "premium"
        years = (inst.expiry - inp.now) / (365 * f.DAY)
        if q.ask > prem.max_vol_units * spot * q.mark_iv * math.sqrt(years):
            return "premium"
    return None


def roll_band(inp: DecisionInputs, d: Decision, layer_name: str,
              old: Instrument) -> tuple[float, float]:
    """Where a roll's replacement strike must lie, per docs/policy.md: with
    ``roll.restrike``, the strike rule's band (offsets + tolerance off min(spot, lower
    edge) for puts, max(spot, upper edge) for calls) of the live position whose rule
    target is nearest the old strike; else within max_strike_change of the old strike."""
    layer = inp.policy.layers[layer_name]
    if not layer.roll.restrike:
        tol = layer.roll.max_strike_change
        return old.strike * (1 - tol), old.strike * (1 + tol)
    st_ = layer.strike
    bands = []
    for e in d.exposures:
        if e.liquidity <= 0:
            continue
        if old.kind is OptionKind.PUT:
            a, b = st_.put_offset
            base = min(e.spot, e.lower)
            bands.append((base * (1 - (a + b) / 2), base * max(1 - b - st_.tolerance, 0.0),
                          base * (1 - max(a - st_.tolerance, 0.0))))
        else:
            a, b = st_.call_offset
            base = max(e.spot, e.upper)
            bands.append((base * (1 + (a + b) / 2), base * (1 + max(a - st_.tolerance, 0.0)),
                          base * (1 + b + st_.tolerance)))
    if not bands:
        return math.inf, -math.inf  # nothing to strike against: no replacement allowed
    _, lo, hi = min(bands, key=lambda t: (abs(t[0] - old.strike), t[0]))
    return lo, hi


def _check_eligible(inp: DecisionInputs, d: Decision, inst: Instrument, layer_name: str) -> None:
    assert inst.expiry > inp.now, "expired instrument chosen"
    assert ineligible(inp, engine_spot(d), quote_of(inp, inst), layer_name) is None


def lot_cents(ask: float, step: Decimal) -> int:
    return int((Fraction(repr(ask)) * Fraction(step) * 100).__ceil__())


def fee_cents(inp: DecisionInputs, d: Decision, q: OptionQuote) -> int:
    """Worst-case fee of one lot, written out again: min(rate x underlying, cap x ask)."""
    b = inp.policy.budget
    spot = Fraction(repr(engine_spot(d)))
    under = max(spot, Fraction(repr(q.forward))) if q.forward is not None else spot
    assert q.ask is not None
    per_unit = min(Fraction(str(b.fee_of_underlying)) * under,
                   Fraction(str(b.fee_cap_of_premium)) * Fraction(repr(q.ask)))
    return math.ceil(per_unit * Fraction(q.instrument.size_step) * 100)


@SETTINGS
@given(states())
def test_rolls_follow_the_rule_and_only_liquid_live_instruments_are_chosen(
        inp: DecisionInputs) -> None:
    d = decide(inp)
    policy = inp.policy
    rolled: dict[tuple[str, str, str], RollOption] = {}
    for i in d.intents:
        if isinstance(i, OpenOption):
            _check_eligible(inp, d, i.instrument, i.layer)
        elif isinstance(i, RollOption):
            _check_eligible(inp, d, i.open_instrument, i.layer)
            rule = policy.layers[i.layer].roll
            old, new = i.close_instrument, i.open_instrument
            left = old.expiry - inp.now
            assert 0 < left < rule.days_before_expiry * f.DAY  # before expiry, in the window
            lo, hi = roll_band(inp, d, i.layer, old)
            assert lo * (1 - 1e-9) <= new.strike <= hi * (1 + 1e-9), (new.strike, lo, hi)
            assert (new.kind, new.underlying) == (old.kind, old.underlying)
            assert new.expiry > old.expiry
            assert i.open_size >= i.close_size
            rolled[(*old.key, i.layer)] = i
    total, cap = limits(inp)
    room_left = max(0, min(cap - inp.budget.spent_session_cents,
                           total - inp.budget.spent_total_cents)) - d.spent_cents
    for h in inp.book.options:
        key = (*h.instrument.key, h.layer)
        if h.instrument.expiry <= inp.now:  # expired: settled in full, never rolled
            assert key not in rolled
            assert [i.size for i in d.intents if isinstance(i, CloseOption)
                    and (*i.instrument.key, i.layer) == key] == [h.size]
            continue
        layer = policy.layers.get(h.layer)
        if layer is None:  # a layer the policy no longer has: left alone
            assert key not in rolled
            continue
        due = h.instrument.expiry - inp.now < layer.roll.days_before_expiry * f.DAY
        if not due or not expect_engaged(inp, h.instrument.underlying, h.layer):
            event("due, layer not engaged: kept" if due else "not due")
            assert key not in rolled  # not due, or the layer is released/idle: runs to expiry
            continue
        # due in an engaged layer (also one kept engaged under an unknown regime): rolled,
        # unless no eligible instrument lies where the roll rule allows (the strike rule's
        # band, or max_strike_change without restrike) or the budget left cannot pay for
        # the replacement of one lot
        spot = engine_spot(d)
        if any("refused position" in n for n in d.notes):  # pool price untrusted (M1)
            assert key not in rolled
            continue
        # the layer rolls only up to its share of the exposure left (issue 13, M3): what
        # the earlier rolls of the same layer and kind did not use
        frac = layer.size.fraction_of_x_max
        others = sum(float(o.size) for o in inp.book.options
                     if (o.layer, o.instrument.kind) == (h.layer, h.instrument.kind)
                     and o.instrument.expiry - inp.now >= layer.roll.days_before_expiry * f.DAY)
        room0 = frac * sum(e.x_max for e in d.exposures if e.liquidity > 0) - others
        mine = [r for (_, _, lay), r in rolled.items()
                if lay == h.layer and r.close_instrument.kind is h.instrument.kind]
        group = sum(float(r.close_size) for r in mine)  # each rounded up to its lot at most
        assert group <= max(room0, 0.0) + sum(float(r.close_instrument.size_step)
                                              for r in mine) + 1e-6
        if key not in rolled and any(h.instrument.symbol in n and "covered or gone" in n
                                     for n in d.notes):
            event("due: exposure covered or gone")
            assert group >= room0 - 1e-6
            continue
        band = roll_band(inp, d, h.layer, h.instrument)
        costs = [(lot_cents(q.ask, q.instrument.size_step) + fee_cents(inp, d, q)
                  + math.ceil(Fraction(str(inp.policy.budget.fee_of_underlying))
                              * Fraction(repr(spot)) * Fraction(q.instrument.size_step) * 100))
                 * math.ceil(h.instrument.size_step / q.instrument.size_step)
                 for q in inp.quotes
                 if q.ask is not None and q.instrument.kind is h.instrument.kind
                 and q.instrument.underlying == h.instrument.underlying
                 and band[0] * (1 - 1e-9) <= q.instrument.strike <= band[1] * (1 + 1e-9)
                 and ineligible(inp, spot, q, h.layer) is None]
        event("due: rolled" if key in rolled else
              "due: not rolled, no instrument" if not costs else "due: not rolled, budget")
        if key in rolled:
            r = rolled[key]
            if r.close_size == h.size:  # the same size, rounded up to the new lot
                assert r.open_size - r.close_size < r.open_instrument.size_step
            elif "rest expires" in r.reason:  # capped by the exposure left (M3)
                assert r.close_size % h.instrument.size_step == 0
            else:  # a partial roll is a clipped one: whole old lots that the buy replaces
                assert any(h.instrument.symbol in c.text for c in d.clips)
                assert r.close_size % h.instrument.size_step == 0
                assert r.open_size - r.close_size < h.instrument.size_step
        else:
            assert not costs or room_left < max(costs), (h, costs, room_left)
            assert any(h.instrument.symbol in n for n in d.notes)


# ------------------------------------------------------------------ issue 13 properties


@SETTINGS
@given(states())
def test_fees_are_budgeted_inside_the_session_cap(inp: DecisionInputs) -> None:
    """Every buy carries the venue's worst-case fee (min(rate x underlying, cap x ask) per
    lot, rounded up) and premium + fees stay within the session cap and the budget."""
    d = decide(inp)
    total, cap = limits(inp)
    charged = 0
    for i in d.intents:
        if isinstance(i, OpenOption):
            q = quote_of(inp, i.instrument)
            assert i.fee_cents == int(i.size / i.instrument.size_step) * fee_cents(inp, d, q)
            charged += i.premium_cents + i.fee_cents
        elif isinstance(i, RollOption):
            assert i.fee_cents >= int(i.open_size / i.open_instrument.size_step) * fee_cents(
                inp, d, quote_of(inp, i.open_instrument))
            charged += i.premium_cents + i.fee_cents
    assert charged == d.spent_cents
    assert charged <= max(0, cap - inp.budget.spent_session_cents)
    assert charged <= max(0, total - inp.budget.spent_total_cents)


def options_delta_bound(inp: DecisionInputs, book: HedgeBook) -> float:
    """Black-76 delta of each live option on a fresh forward/IV quote; without one, its
    most negative value (a put -size, a call 0), as docs/policy.md states."""
    out = 0.0
    quotes = {q.instrument.key: q for q in inp.quotes}
    for h in book.options:
        inst = h.instrument
        if inst.expiry <= inp.now:
            continue
        q = quotes.get(inst.key)
        if (q is None or q.forward is None or q.mark_iv is None or q.forward <= 0
                or q.mark_iv <= 0
                or not 0 <= inp.now - q.as_of <= inp.policy.liquidity.max_quote_age_seconds):
            out += -float(h.size) if inst.kind is OptionKind.PUT else 0.0
            continue
        g = black76(inst.kind, q.forward, inst.strike, (inst.expiry - inp.now) / (365 * f.DAY),
                    q.mark_iv)
        out += float(h.size) * g.delta
    return out


@SETTINGS
@given(states())
def test_perps_never_take_net_delta_past_zero(inp: DecisionInputs) -> None:
    """LP + options + perps: a perp target is never long and never shorts more than the
    LP delta the options leave; after the decision no short over-hedges past zero."""
    d = decide(inp)
    if not inp.policy.perp.enabled or any("refused position" in n for n in d.notes):
        return
    lp = sum(e.delta for e in d.exposures if e.liquidity > 0)
    opt = options_delta_bound(inp, d.book_after)
    step = Decimal("0.001")
    for i in d.intents:
        if isinstance(i, AdjustPerp):
            assert i.target_total <= 0  # never long
            assert float(i.target_total) >= -max(lp + opt, 0.0) * inp.policy.perp.hedge_ratio \
                - float(step) - 1e-9
    perp = float(d.book_after.perp_total("ETH"))
    if perp < 0:  # what stays short after the decision does not over-hedge
        event("short after the decision")
        assert lp + opt + perp >= -1e-6, (lp, opt, perp)


@SETTINGS
@given(states(), st.data())
def test_no_protection_is_opened_for_exposure_being_exited(inp: DecisionInputs,
                                                          data: st.DataObject) -> None:
    """Exits in flight (some or all positions): what is bought per layer and kind is
    sized on the other positions only, and with all exiting nothing is opened nor shorted."""
    ids = sorted(p.token_id for p in inp.positions)
    leaving = data.draw(st.sampled_from([ids, ids[:1], ids[len(ids) // 2:]]))
    inp = replace(inp, book=replace(inp.book, exits_pending=tuple(sorted(leaving))))
    d = decide(inp)
    staying = [e for e in d.exposures if e.token_id not in leaving and e.liquidity > 0]
    if not staying:
        assert not [i for i in d.intents if isinstance(i, OpenOption)]
        assert not [i for i in d.intents if isinstance(i, AdjustPerp) and i.delta < 0]
        event("all exiting")
    for name, layer in inp.policy.layers.items():
        for kind in (OptionKind.PUT, OptionKind.CALL):
            mine = [i for i in d.intents if isinstance(i, OpenOption)
                    and i.layer == name and i.instrument.kind is kind]
            bought = sum(float(i.size) for i in mine)
            room = layer.size.fraction_of_x_max * sum(e.x_max for e in staying)
            assert bought <= room + sum(float(i.instrument.size_step) for i in mine) + 1e-6


@SETTINGS
@given(states())
def test_an_unknown_trigger_never_releases_a_layer(inp: DecisionInputs) -> None:
    d = decide(inp)
    eth = next((r for r in inp.regimes if r.underlying == "ETH"), None)
    read = {s.name for s in eth.signals if s.level is not None} if eth else set()
    for i in d.intents:
        if isinstance(i, ReleaseLayer):
            assert eth is not None and eth.level is not None
            assert set(inp.policy.layers[i.layer].trigger.signals) <= read, i.reason
