"""Issue 13: the crisis states of the derivatives review, rebuilt as table tests.

Each test is a crafted state the old rules got wrong; the expected decision is what a
derivatives desk would do, written from the numbers of the state (not from the engine).
"""

from __future__ import annotations

import pytest

from policies.alvh import Decision, decide
from policies.hedge import (
    EngageLayer,
    HedgeBook,
    LayerEngagement,
    OpenOption,
    OptionKind,
    ReleaseLayer,
)
from policies.types import Level, Regime
from tests.policies.alvh import factory as f

RANGE = (2700.0, 3400.0)
X_MAX = 40.0


def opens(d: Decision) -> list[OpenOption]:
    return [i for i in d.intents if isinstance(i, OpenOption)]


def crisis() -> tuple[Regime, ...]:
    return (f.regime(Level.CRISIS),)


def layers(premium: float | None = None) -> dict[str, dict[str, object]]:
    """The default three layers; ``premium`` overrides every layer's max_pct_of_spot."""
    base: dict[str, dict[str, object]] = {
        "short": {"min_days": 0, "max_days": 7, "size": {"fraction_of_x_max": 0.25},
                  "trigger": {"min_level": "crisis", "signals": {"term_structure": "elevated"}},
                  "roll": {"days_before_expiry": 1}, "premium": {"max_pct_of_spot": 0.02}},
        "intermediate": {"min_days": 15, "max_days": 45, "size": {"fraction_of_x_max": 0.35},
                         "trigger": {"min_level": "stress",
                                     "signals": {"iv_percentile": "elevated"}},
                         "roll": {"days_before_expiry": 10},
                         "premium": {"max_pct_of_spot": 0.04}},
        "structural": {"min_days": 60, "max_days": 120, "size": {"fraction_of_x_max": 0.4},
                       "trigger": {"min_level": "elevated", "signals": {"tvl_drop": "elevated"}},
                       "roll": {"days_before_expiry": 30},
                       "premium": {"max_pct_of_spot": 0.06}},
    }
    if premium is not None:
        for layer in base.values():
            layer["premium"] = {"max_pct_of_spot": premium}
    return base


# ------------------------------------------------------------------ D1: strike off min(spot, lower)


@pytest.mark.parametrize("spot", [2150.0, 2500.0, 2650.0])
def test_d1_below_range_in_a_crisis_buys_out_of_the_money_puts(spot: float) -> None:
    """Spot below the range: every layer engages and buys puts 5-7% below *spot*
    (within the 2% tolerance), not ITM puts off the 2700 edge. The premium limit is set
    to 10% of spot so that only the strike rule is under test (old rule: the ITM puts
    off the edge cost more than that at 2150 and 2500, and nothing was bought)."""
    p = f.pool(spot)
    pos = f.position(7, p, *RANGE, X_MAX)
    policy = f.make_policy(layers=layers(premium=0.1))
    d = decide(f.inputs(policy, (pos,), crisis(), f.chain(spot, iv=0.6)))
    buys = opens(d)
    assert {b.layer for b in buys} == {"short", "intermediate", "structural"}
    for b in buys:
        assert b.instrument.kind is OptionKind.PUT
        # band of the rule off spot: [spot * (1 - 0.07 - 0.02), spot * (1 - 0.05 + 0.02)]
        assert spot * 0.91 - 1e-6 <= b.instrument.strike <= spot * 0.97 + 1e-6
    # fractions 0.25 + 0.35 + 0.4 of x_max = 40 ETH, rounded up to 0.1 lots
    bought = sum(float(b.size) for b in buys)
    assert bought == pytest.approx(X_MAX, abs=0.35)


def test_d1_in_range_strikes_stay_off_the_lower_edge() -> None:
    spot = 3000.0
    pos = f.position(7, f.pool(spot), *RANGE, X_MAX)
    d = decide(f.inputs(f.make_policy(), (pos,), crisis(), f.chain(spot, iv=0.6)))
    lower = d.exposures[0].lower
    assert opens(d)
    for b in opens(d):
        assert lower * 0.91 - 1e-6 <= b.instrument.strike <= lower * 0.97 + 1e-6


# ------------------------------------------------------------------ D4: unknown trigger never releases


ENGAGED_LONG_AGO = HedgeBook(engaged=(LayerEngagement("ETH", "intermediate", f.NOW - 30 * f.DAY),))


@pytest.mark.parametrize(("signals", "released"), [
    ({"iv_percentile": None}, False),            # stale IV while the regime is calm: hold
    ({}, False),                                 # no IV reading at all: unknown, hold
    ({"iv_percentile": Level.CALM}, True),       # read and calm, cooldown over: release
    ({"iv_percentile": Level.ELEVATED}, False),  # still firing
])
def test_d4_unknown_trigger_signal_never_releases_an_engaged_layer(
        signals: dict[str, Level | None], released: bool) -> None:
    spot = 3000.0
    pos = f.position(7, f.pool(spot), *RANGE, X_MAX)
    d = decide(f.inputs(f.make_policy(), (pos,), (f.regime(Level.CALM, **signals),),
                        f.chain(spot), book=ENGAGED_LONG_AGO))
    rel = [i for i in d.intents if isinstance(i, ReleaseLayer) and i.layer == "intermediate"]
    assert bool(rel) == released
    still = {e.layer for e in d.book_after.engaged}
    assert ("intermediate" in still) == (not released)


def test_d4_unknown_trigger_never_engages_an_idle_layer() -> None:
    spot = 3000.0
    pos = f.position(7, f.pool(spot), *RANGE, X_MAX)
    d = decide(f.inputs(f.make_policy(), (pos,), (f.regime(Level.CALM, iv_percentile=None),),
                        f.chain(spot)))
    assert not [i for i in d.intents if isinstance(i, EngageLayer | OpenOption)]
