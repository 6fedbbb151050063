"""policies/overrides.py: each kind's effect on the policy and book (table), nonce order,
expiry, and what reaches decide."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.alvh import decide
from policies.hedge import HedgeBook, LayerEngagement, OpenOption, OptionHolding
from policies.overrides import Override, apply_overrides, apply_to_inputs, in_force, parse_params
from policies.types import Level
from tests.policies.alvh.factory import (
    NOW,
    chain,
    inputs,
    instrument,
    make_policy,
    pool,
    position,
    regime,
)

POLICY = make_policy()
HELD = OptionHolding(instrument("deribit", 2400.0, 80), Decimal("1.5"), "structural")
BOOK = HedgeBook(options=(HELD,), engaged=(LayerEngagement("ETH", "structural", NOW - 3600),))
P1 = pool(3000.0)
POSITIONS = (position(1, P1, 2600, 3400, 10.0), position(2, P1, 2800, 3200, 5.0))


def ov(nonce: int, kind: str, params: dict[str, Any] | None = None, expiry: int = NOW + 3600,
       reason: str = "owners say so") -> Override:
    return Override(nonce, kind, params or {}, reason, expiry, f"0x{nonce:064x}")


@pytest.mark.parametrize("kind,params,applied,check", [
    ("pause_layer", {"layer": "short"}, True,
     lambda r: "short" not in r.policy.layers and set(r.policy.layers) == {"intermediate", "structural"}
     and r.book == BOOK),
    ("pause_layer", {"layer": "nope"}, False, lambda r: r.policy == POLICY),
    ("resume_layer", {"layer": "short"}, False, lambda r: r.policy == POLICY),
    ("close_protection_early", {"layer": "structural"}, True,
     lambda r: "structural" not in r.policy.layers and r.book.engaged == ()
     and r.book.options == (HELD,) and r.close_early == (HELD,)),
    ("change_cap", {"cap": "session_budget_fraction", "value": "0.5"}, True,
     lambda r: r.policy.budget.session_cap_share == 0.5
     and r.policy.budget.share_of_expected_fees == POLICY.budget.share_of_expected_fees),
    ("change_cap", {"cap": "budget_share", "value": "0.1"}, True,
     lambda r: r.policy.budget.share_of_expected_fees == 0.1),
    ("change_cap", {"cap": "hedge_ratio", "value": 1}, True, lambda r: r.policy.perp.hedge_ratio == 1.0),
    ("change_cap", {"cap": "leverage", "value": "0.5"}, False, lambda r: r.policy == POLICY),
    ("change_cap", {"cap": "budget_share", "value": "1.5"}, False, lambda r: r.policy == POLICY),
    ("change_cap", {"cap": "budget_share", "value": "NaN"}, False, lambda r: r.policy == POLICY),
    ("change_cap", {"cap": "budget_share", "value": True}, False, lambda r: r.policy == POLICY),
    ("disable_hedging", {}, True,
     lambda r: r.policy.layers == {} and r.policy.perp.enabled is False and r.book == BOOK),
    ("pause_new_risk", {}, True,
     lambda r: r.policy.budget.session_cap_share == 0.0 and r.policy.perp.enabled is False),
    ("add_protection", {"layer": "short"}, True,
     lambda r: LayerEngagement("ETH", "short", NOW) in r.book.engaged
     and LayerEngagement("ETH", "structural", NOW - 3600) in r.book.engaged),
    ("add_protection", {"layer": "structural"}, True, lambda r: r.book == BOOK),
    ("emergency_exit", {}, True, lambda r: r.exits == (1, 2) and r.policy == POLICY),
    ("reboot", {}, False, lambda r: r.policy == POLICY and r.book == BOOK),
])
def test_each_kind(kind, params, applied, check):
    r = apply_overrides(POLICY, BOOK, [ov(7, kind, params)], NOW, POSITIONS)
    (a,) = r.applied
    assert (a.nonce, a.kind, a.applied, a.reason) == (7, kind, applied, "owners say so")
    assert a.effect and "owners say so" in a.text()
    assert check(r), r


def test_expired_ignored_and_not_listed():
    r = apply_overrides(POLICY, BOOK, [ov(1, "disable_hedging", expiry=NOW)], NOW)
    assert r.applied == () and r.policy == POLICY and r.book == BOOK
    r = apply_overrides(POLICY, BOOK, [ov(1, "disable_hedging", expiry=NOW + 1)], NOW)
    assert r.policy.layers == {}


def test_nonce_order_pause_then_resume_vs_resume_then_pause():
    pause, resume = ov(1, "pause_layer", {"layer": "short"}), ov(2, "resume_layer", {"layer": "short"})
    assert "short" in apply_overrides(POLICY, BOOK, [resume, pause], NOW).policy.layers
    late_pause = ov(3, "pause_layer", {"layer": "short"})
    r = apply_overrides(POLICY, BOOK, [late_pause, resume, pause], NOW)
    assert "short" not in r.policy.layers
    assert [(a.nonce, a.applied) for a in r.applied] == [(1, True), (2, True), (3, True)]


def test_emergency_exit_skips_pending_and_uncovered():
    other = pool(3000.0, eth_is_token0=True)
    uncovered = position(3, other, 2600, 3400, 1.0)
    policy = make_policy(coverage=[{"underlying": "ETH", "quote": "USDC", "pool": P1.address,
                                    "underlying_token": "token1"}])
    book = HedgeBook(exits_pending=(2,))
    r = apply_overrides(policy, book, [ov(1, "emergency_exit")], NOW, (*POSITIONS, uncovered))
    assert r.exits == (1,)


def test_parse_params():
    assert parse_params('{"cap":"x","value":"1"}') == {"cap": "x", "value": "1"}
    with pytest.raises(ValueError):
        parse_params("[1]")


def test_pause_layer_reaches_decide():
    """Crisis engages every layer; with `structural` paused no structural option is bought."""
    base = inputs(POLICY, POSITIONS, (regime(Level.CRISIS),), chain(3000.0))
    before = decide(base)
    assert any(isinstance(i, OpenOption) and i.layer == "structural" for i in before.intents)
    eff, o = apply_to_inputs(base, [ov(1, "pause_layer", {"layer": "structural"})])
    after = decide(eff)
    assert o.applied[0].applied
    assert not any(getattr(i, "layer", None) == "structural" for i in after.intents)
    assert {t.layer for t in after.targets} == {"short", "intermediate"}


def test_pause_new_risk_reaches_decide():
    base = inputs(POLICY, POSITIONS, (regime(Level.CRISIS),), chain(3000.0))
    eff, _ = apply_to_inputs(base, [ov(1, "pause_new_risk")])
    d = decide(eff)
    assert d.spent_cents == 0 and not any(isinstance(i, OpenOption) for i in d.intents)
    assert d.budget.session_cap_cents == 0 and d.clips


# ------------------------------------------------------------------------------ properties
LAYERS = ("short", "intermediate", "structural", "nope")
override_st = st.builds(
    ov,
    nonce=st.integers(0, 50),
    kind=st.sampled_from(["pause_layer", "resume_layer", "close_protection_early", "change_cap",
                          "disable_hedging", "emergency_exit", "pause_new_risk", "add_protection"]),
    params=st.one_of(
        st.fixed_dictionaries({"layer": st.sampled_from(LAYERS)}),
        st.fixed_dictionaries({"cap": st.sampled_from(["session_budget_fraction", "budget_share",
                                                       "hedge_ratio", "x"]),
                               "value": st.sampled_from(["0", "0.25", "1", "2", "-1"])})),
    expiry=st.integers(NOW - 100, NOW + 100),
    reason=st.text(min_size=1, max_size=5),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(override_st, max_size=8, unique_by=lambda o: o.nonce), st.randoms())
def test_property_nonce_order_is_deterministic(overrides, rnd):
    shuffled = list(overrides)
    rnd.shuffle(shuffled)
    assert apply_overrides(POLICY, BOOK, overrides, NOW, POSITIONS) == \
        apply_overrides(POLICY, BOOK, shuffled, NOW, POSITIONS)


@settings(max_examples=150, deadline=None)
@given(st.lists(override_st, max_size=8, unique_by=lambda o: o.nonce))
def test_property_expired_never_applies(overrides):
    live = [o for o in overrides if o.expiry > NOW]
    r = apply_overrides(POLICY, BOOK, overrides, NOW, POSITIONS)
    assert r == apply_overrides(POLICY, BOOK, live, NOW, POSITIONS)
    assert [a.nonce for a in r.applied] == sorted(o.nonce for o in live)
    assert all(o.expiry > NOW for o in in_force(overrides, NOW))
    if not live:
        assert (r.policy, r.book, r.exits, r.close_early) == (POLICY, BOOK, (), ())
