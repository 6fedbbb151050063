"""One vocabulary (policies/vocab.py): the names the policy, the state file, the signals,
the intents and the overrides use are defined there once and checked against it."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any, get_args

import pytest

from policies import hedge, overrides, pricing
from policies import signals as S
from policies import vocab as V
from policies.policy_file import Policy, PolicyError, parse_policy, policy_from_dict
from policies.state_file import StateError, parse_state

ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = tomllib.loads((ROOT / "examples" / "policy.toml").read_text())
STATE: dict[str, Any] = json.loads((ROOT / "examples" / "state.json").read_text())
POLICY = parse_policy((ROOT / "examples" / "policy.toml").read_text())


def _policy(mutate: Any) -> Policy:
    data = copy.deepcopy(BASE)
    mutate(data)
    return policy_from_dict(data)


def _state_error(mutate: Any) -> str:
    data = copy.deepcopy(STATE)
    mutate(data)
    with pytest.raises(StateError) as err:
        parse_state(json.dumps(data), POLICY)
    return str(err.value)


# --------------------------------------------------------------------------------- signals
def test_signal_names() -> None:
    assert V.SIGNAL_NAMES == ("iv_percentile", "term_structure", "tvl_drop", "funding", "depeg",
                              "rsi_macd")
    assert V.PRIMARY_SIGNALS + V.SECONDARY_SIGNALS == V.SIGNAL_NAMES
    assert (S.IV_PERCENTILE, S.TERM_STRUCTURE, S.TVL_DROP, S.FUNDING, S.DEPEG, S.RSI_MACD) == V.SIGNAL_NAMES


def test_each_signal_function_reports_under_its_vocabulary_name() -> None:
    """Called with no data, every signal is unknown, and says so under its own name."""
    now = 1_800_000_000
    readings = [S.iv_percentile([], now), S.term_structure([], now, now), S.tvl_drop([], now),
                S.funding({}, now), S.depeg("USDC", [], now), S.rsi_macd([], now)]
    assert [r.name for r in readings] == list(V.SIGNAL_NAMES)
    assert all(r.level is None for r in readings)


def test_policy_trigger_with_an_unknown_signal_is_refused() -> None:
    with pytest.raises(PolicyError, match=r"^layers\.short\.trigger\.signals\.vix: unknown name; "
                       r"input should be 'iv_percentile', 'term_structure', 'tvl_drop', 'funding', "
                       r"'depeg' or 'rsi_macd' \(got 'vix'\)$"):
        _policy(lambda d: d["layers"]["short"]["trigger"]["signals"].update({"vix": "elevated"}))
    for name in V.SIGNAL_NAMES:  # and every vocabulary name is accepted
        p = _policy(lambda d, n=name: d["layers"]["short"]["trigger"].update(signals={n: "stress"}))
        assert dict(p.layers["short"].trigger.signals) == {name: "stress"}


def test_state_file_signal_and_level_names_are_checked() -> None:
    err = _state_error(lambda d: d["regimes"][0]["signals"][0].update(name="vix"))
    assert err.startswith("regimes[0].signals[0].name: Input should be 'iv_percentile'")
    assert "(got 'vix')" in err
    err = _state_error(lambda d: d["regimes"][0].update(level="panic"))
    assert err.startswith("regimes[0].level: ") and "'panic'" in err


# ---------------------------------------------------------------------------------- layers
def test_default_layers_are_the_three_tenors() -> None:
    assert V.DEFAULT_LAYERS == (V.SHORT, V.INTERMEDIATE, V.STRUCTURAL) == ("short", "intermediate",
                                                                        "structural")
    default = policy_from_dict({"version": "1", "coverage": BASE["coverage"]})
    assert tuple(default.layers) == V.DEFAULT_LAYERS
    assert default.layer_order() == list(V.DEFAULT_LAYERS)  # by tenor, shortest first


def test_a_policy_may_declare_custom_layers_named_by_the_rule() -> None:
    p = _policy(lambda d: d["layers"].update(weekly=d["layers"].pop("short")))
    assert set(p.layers) == {"weekly", "intermediate", "structural"}
    for bad in ("Weekly", "1st", "week-ly", "x" * 33, ""):
        assert not V.is_layer_name(bad)
        with pytest.raises(PolicyError, match=f"^layers\\.{re.escape(bad)}: layer names are lower-case"):
            _policy(lambda d, b=bad: d["layers"].update({b: d["layers"].pop("short")}))
    assert V.is_layer_name("weekly") and V.is_layer_name("x" * 32) and not V.is_layer_name(None)


def test_at_most_max_layers() -> None:
    def seven(d: dict[str, Any]) -> None:
        template = d["layers"].pop("short")
        d["layers"] = {f"l{i}": {**template, "min_days": 10 * i, "max_days": 10 * i + 5,
                                 "roll": {"days_before_expiry": 1}} for i in range(V.MAX_LAYERS + 1)}
    with pytest.raises(PolicyError, match=f"^layers: .*at most {V.MAX_LAYERS}"):
        _policy(seven)


def test_state_file_layer_names_follow_the_rule() -> None:
    err = _state_error(lambda d: d["book"]["options"][0].update(layer="Not A Layer"))
    assert err.startswith("book.options[0].layer: ")


# ---------------------------------------------------------------------------------- venues
def test_venues() -> None:
    assert set(V.OPTION_VENUES) >= {"deribit", "derive", "okx", "bybit", "paper"}
    assert set(V.PERP_VENUES) >= {"hyperliquid", "binanceusdm", "bybit", "okx", "deribit", "paper"}
    assert V.FUNDING_VENUES == ("binanceusdm", "bybit", "okx", "hyperliquid", "deribit")
    assert {V.PAPER, V.ONCHAIN, V.DERIBIT} <= set(V.VENUES)
    assert len(V.VENUES) == len(set(V.VENUES))
    assert set(V.VENUES) == {*V.OPTION_VENUES, *V.PERP_VENUES, *V.FUNDING_VENUES, V.ONCHAIN}
    assert V.VENUE_KINDS == ("ccxt", V.PAPER, V.ONCHAIN)


def test_policy_and_state_venues_are_checked() -> None:
    with pytest.raises(PolicyError, match=r"^venues\.options\[0\]: Input should be 'deribit'.*\(got 'kraken'\)$"):
        _policy(lambda d: d["venues"].update(options=["kraken"]))
    with pytest.raises(PolicyError, match=r"^perp\.venues\[0\]: Input should be 'hyperliquid'.*\(got 'kraken'\)$"):
        _policy(lambda d: d.setdefault("perp", {}).update(venues=["kraken"]))
    p = _policy(lambda d: d["venues"].update(options=list(V.OPTION_VENUES)))
    assert set(p.venues.options) == set(V.OPTION_VENUES)
    err = _state_error(lambda d: d["quotes"][0].update(venue="kraken"))
    assert err.startswith("quotes[0].venue: Input should be 'deribit'") and "(got 'kraken')" in err
    err = _state_error(lambda d: d["perp_quotes"][0].update(venue="kraken"))
    assert err.startswith("perp_quotes[0].venue: Input should be 'hyperliquid'")
    err = _state_error(lambda d: d["book"]["perps"][0].update(venue="kraken"))
    assert err.startswith("book.perps[0].venue: ")


# ----------------------------------------------------------------------- kinds and intents
def test_option_kinds_are_one_enum() -> None:
    assert pricing.OptionKind is V.OptionKind is hedge.OptionKind
    assert tuple(k.value for k in V.OptionKind) == V.OPTION_KINDS == ("put", "call")
    err = _state_error(lambda d: d["quotes"][0].update(kind="straddle"))
    assert err.startswith("quotes[0].kind: Input should be 'put' or 'call'")


def test_intent_kinds_are_the_intent_classes_actions_in_execution_order() -> None:
    classes = get_args(hedge.Intent)
    actions = {cls.__dataclass_fields__["action"].default for cls in classes}
    assert actions == set(V.INTENT_KINDS) and len(classes) == len(V.INTENT_KINDS)
    assert V.INTENT_KINDS[0] == V.EXIT_LP and V.INTENT_KINDS[-1] == V.ADJUST_PERP
    exit_lp = hedge.ExitLP(underlying="ETH", token_id=1, reason="depeg")
    release = hedge.ReleaseLayer(underlying="AAA", layer="short", reason="calm")
    intents: list[hedge.Intent] = [release, exit_lp]
    assert sorted(intents, key=hedge.intent_sort_key) == [exit_lp, release]


def test_override_kinds() -> None:
    assert overrides.KINDS == V.OVERRIDE_KINDS == tuple(V.OVERRIDE_PARAMS)
    assert set(V.OVERRIDE_KINDS) > V.TIGHTENING_KINDS
    assert {k for k, need in V.OVERRIDE_PARAMS.items() if "layer" in need} == {
        "pause_layer", "resume_layer", "close_protection_early", "add_protection"}


# --------------------------------------------------------------------------- one place only
NAME_SETS = {
    "signal": V.SIGNAL_NAMES, "level": V.LEVEL_NAMES, "venue": V.VENUES,
    "option kind": V.OPTION_KINDS, "intent": V.INTENT_KINDS, "override kind": V.OVERRIDE_KINDS,
}
LITERAL = re.compile(r"Literal\[([^\]]*)\]")


def test_no_other_module_spells_out_a_vocabulary_literal() -> None:
    """A ``Literal[...]`` of vocabulary names, or a tuple of the default layers, the funding
    venues or the signal names, written anywhere but policies/vocab.py is a second
    definition that can drift."""
    found = []
    for pkg in ("policies", "adapters", "bot"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if path == ROOT / "policies" / "vocab.py":
                continue
            text = path.read_text()
            for m in LITERAL.finditer(text):
                names = set(re.findall(r"[\"']([a-z_]+)[\"']", m.group(1)))
                for what, vocab_names in NAME_SETS.items():
                    if names & set(vocab_names):
                        found.append(f"{path.relative_to(ROOT)}: {what} Literal[{m.group(1)}]")
            if re.search(r"\(\s*[\"']short[\"'],\s*[\"']intermediate[\"'],\s*[\"']structural[\"']", text):
                found.append(f"{path.relative_to(ROOT)}: the default layers spelt out")
            for what, listed in (("funding venues", V.FUNDING_VENUES), ("signal names", V.SIGNAL_NAMES)):
                spelt = r",\s*".join(f"[\"']{n}[\"']" for n in listed)
                if re.search(r"\(\s*" + spelt, text):
                    found.append(f"{path.relative_to(ROOT)}: the {what} spelt out")
    assert found == []


def test_funding_adapter_tables_cover_exactly_the_funding_venues() -> None:
    from adapters.market import funding

    for table in (funding.DEFAULT_INTERVAL_HOURS, funding.DEFAULT_SYMBOLS, funding.PAGE_LIMIT):
        assert tuple(table) == V.FUNDING_VENUES
