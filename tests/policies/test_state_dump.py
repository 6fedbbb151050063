"""policies/state_file.dump_state: the writer of the state format parse_state reads.
Round trip (property): parse_state(dumps(x)) == x, and with overrides == x with them applied."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.alvh import DecisionInputs, decide, decision_to_json
from policies.hedge import HedgeBook, LayerEngagement, OptionHolding, PerpHolding, PerpQuote
from policies.lp_math import get_sqrt_ratio_at_tick
from policies.overrides import Override, apply_to_inputs
from policies.policy_file import parse_policy
from policies.risk import BudgetState
from policies.state_file import StateError, dump_state, dumps_state, parse_state
from policies.types import Level, Regime, SignalReading, TickFeeGrowth
from tests.policies.alvh.factory import NOW, chain, make_policy, pool, position

ROOT = Path(__file__).resolve().parents[2]
POLICY = make_policy()
LEVELS = st.sampled_from([None, *Level])
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=4),
                      st.floats(allow_nan=False, allow_infinity=False))
evidence_st = st.dictionaries(st.text(max_size=4),
                              st.recursive(json_leaf, lambda c: st.lists(c, max_size=3)
                                           | st.dictionaries(st.text(max_size=3), c, max_size=3),
                                           max_leaves=6), max_size=3)


@st.composite
def inputs_st(draw: st.DrawFn) -> DecisionInputs:
    spot = draw(st.floats(1000, 5000))
    p = pool(spot, eth_is_token0=draw(st.booleans()))
    p = replace(p, liquidity=draw(st.integers(0, 2**128 - 1)),
                fee_growth_global0_x128=draw(st.integers(0, 2**256 - 1)))
    positions = []
    for tid in draw(st.lists(st.integers(0, 10**30), max_size=4, unique=True)):
        lo = draw(st.floats(0.5, 0.95))
        pos = position(tid, p, spot * lo, spot * (2 - lo), draw(st.floats(0.1, 100)))
        positions.append(replace(pos, fee_growth_inside0_last_x128=draw(st.integers(0, 2**256 - 1)),
                                 tokens_owed1=draw(st.integers(0, 2**128 - 1)),
                                 lower=TickFeeGrowth(draw(st.integers(0, 2**256 - 1)), 7),
                                 upper=TickFeeGrowth(3, draw(st.integers(0, 2**256 - 1)))))
    regimes = tuple(
        Regime(u, draw(LEVELS), draw(st.text(max_size=8)),
               tuple(SignalReading(n, draw(LEVELS), draw(st.text(max_size=8)), draw(evidence_st))
                     for n in draw(st.lists(st.sampled_from(["iv_percentile", "funding", "depeg",
                                                             "tvl_drop"]), max_size=3))))
        for u in draw(st.lists(st.sampled_from(["ETH", "USDC", "BTC"]), unique=True, max_size=3)))
    quotes = chain(spot, days=(5, 30), strikes=(spot * 0.8, spot * 0.9),
                   oi=draw(st.none() | st.floats(0, 1e6)))
    quotes = tuple(replace(q, bid=draw(st.none() | st.floats(0, 1e4)), mark_iv=None)
                   if draw(st.booleans()) else q for q in quotes)
    size = st.decimals(Decimal("0.1"), Decimal("1000"), places=3)
    book = HedgeBook(
        options=tuple(OptionHolding(q.instrument, draw(size), draw(st.sampled_from(["short", "structural"])))
                      for q in quotes[: draw(st.integers(0, 3))]),
        perps=tuple(PerpHolding(v, "ETH", draw(st.decimals(-1000, 1000, places=3)))
                    for v in draw(st.lists(st.sampled_from(["hyperliquid", "okx"]), unique=True))),
        engaged=tuple(LayerEngagement("ETH", n, draw(st.integers(0, NOW)))
                      for n in draw(st.lists(st.sampled_from(["short", "structural"]), unique=True))),
        exits_pending=tuple(sorted(draw(st.lists(st.integers(0, 10**9), unique=True, max_size=3)))))
    perp_quotes = tuple(PerpQuote(v, "ETH", draw(st.none() | st.floats(1, 1e5)),
                                  draw(st.none() | st.floats(-0.01, 0.01)), NOW - 5,
                                  Decimal("0.001"))
                        for v in draw(st.lists(st.sampled_from(["hyperliquid", "okx"]), unique=True)))
    cents = st.integers(0, 10**12)
    return DecisionInputs(NOW, POLICY, tuple(positions), regimes, book,
                          BudgetState(draw(cents), draw(cents), draw(cents)), quotes, perp_quotes)


@settings(max_examples=120, deadline=None)
@given(inputs_st())
def test_property_round_trip(x: DecisionInputs) -> None:
    text = dumps_state(x)
    assert parse_state(text, POLICY) == x
    assert dumps_state(parse_state(text, POLICY)) == text  # and the text is a fixed point


override_st = st.builds(
    Override, nonce=st.integers(0, 9),
    kind=st.sampled_from(["pause_layer", "add_protection", "change_cap", "pause_new_risk"]),
    params=st.sampled_from([{"layer": "short"}, {"layer": "structural"},
                            {"cap": "budget_share", "value": "0.2"}]),
    reason=st.just("owners"), expiry=st.integers(NOW - 5, NOW + 5))


@settings(max_examples=60, deadline=None)
@given(inputs_st(), st.lists(override_st, max_size=4, unique_by=lambda o: o.nonce))
def test_property_round_trip_with_overrides(x: DecisionInputs, overrides: list[Override]) -> None:
    loaded = parse_state(dumps_state(x, tuple(overrides)), POLICY)
    assert loaded == apply_to_inputs(x, overrides)[0]


def test_example_state_round_trips_and_decides_the_same() -> None:
    policy = parse_policy((ROOT / "examples" / "policy.toml").read_text())
    x = parse_state((ROOT / "examples" / "state.json").read_text(), policy)
    y = parse_state(dumps_state(x), policy)
    assert y == x
    assert json.dumps(decision_to_json(decide(y)), sort_keys=True) == \
        json.dumps(decision_to_json(decide(x)), sort_keys=True)


def test_state_of_another_policy_is_refused() -> None:
    x = DecisionInputs(NOW, POLICY, (), (), HedgeBook(), BudgetState(100))
    other = make_policy(version="other")
    with pytest.raises(StateError, match=r"^policy_hash: the state was assembled under policy 0x"):
        parse_state(dumps_state(x), other)


def test_money_is_exact_cents() -> None:
    x = DecisionInputs(NOW, POLICY, (), (), HedgeBook(), BudgetState(123_456_789_05, 1, 0))
    assert dump_state(x)["budget"] == {"expected_fee_income_usd": "123456789.05",
                                       "spent_total_usd": "0.01", "spent_session_usd": "0.00"}


def test_slot0_tick_one_below_its_price_on_a_boundary_is_kept() -> None:
    """After a swap down that ends exactly on a tick, slot0.tick is that tick - 1."""
    p = replace(pool(3000.0), sqrt_price_x96=get_sqrt_ratio_at_tick(-200_000), tick=-200_001)
    pos = position(1, p, 2500, 3500, 1.0)
    x = DecisionInputs(NOW, POLICY, (pos,), (), HedgeBook(), BudgetState(100))
    assert parse_state(dumps_state(x), POLICY) == x
    bad = dump_state(x)
    bad["pools"][0]["tick"] = -200_002
    with pytest.raises(StateError, match=r"pools\[0\]\.tick: -200002 does not match"):
        parse_state(json.dumps(bad), POLICY)
