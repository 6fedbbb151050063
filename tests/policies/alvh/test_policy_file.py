"""Policy file: validation errors name the field (and allowed values); canonical bytes/hash."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from Crypto.Hash import keccak as pycryptodome_keccak
from pydantic import BaseModel

from bot.policy_loader import load_policy
from policies.policy_file import (
    PolicyError,
    canonical_bytes,
    parse_policy,
    policy_from_dict,
    policy_hash,
    policy_hash_hex,
)

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "policy.toml"
BASE: dict[str, Any] = tomllib.loads(EXAMPLE.read_text())


def mutate(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    node: Any = data
    parts = path.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if p.isdigit() else node.setdefault(p, {})
    if value is DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return data


DELETE = object()


def test_example_policy_loads_with_the_documented_values() -> None:
    p = load_policy(str(EXAMPLE))
    assert p.version == "2026-11-21.1"
    assert p.layer_order() == ["short", "intermediate", "structural"]
    assert (p.layers["short"].min_days, p.layers["short"].max_days) == (0, 7)
    assert (p.layers["intermediate"].min_days, p.layers["intermediate"].max_days) == (15, 45)
    assert p.layers["structural"].min_days == 60
    assert p.layers["intermediate"].strike.put_offset == (0.05, 0.07)
    assert p.budget.session_cap_share == 0.25
    assert p.governance.single_owner_may_tighten is True
    assert p.governance.override_max_ttl_hours == 72
    assert p.coverage[0].pool == "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"


def test_defaults_give_three_layers_and_safe_governance() -> None:
    p = parse_policy('version = "1"\n[[coverage]]\nunderlying = "ETH"\n'
                     'pool = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"\n'
                     'underlying_token = "token1"\n')
    assert p.layer_order() == ["short", "intermediate", "structural"]
    assert p.governance.single_owner_may_tighten is False
    assert p.governance.override_max_ttl_hours == 72
    assert p.budget.session_cap_share == 0.25
    assert p.layers["intermediate"].trigger.signals == {"iv_percentile": "elevated"}
    assert p.layers["short"].trigger.signals == {"term_structure": "elevated"}
    assert p.layers["structural"].trigger.signals == {"tvl_drop": "elevated"}
    assert p.perp.enabled is False and p.depeg.action == "exit_lp"


# ------------------------------------------------------------------ canonical form and hash


def test_hash_is_keccak256_of_sorted_compact_json() -> None:
    p = load_policy(str(EXAMPLE))
    raw = canonical_bytes(p)
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    k = pycryptodome_keccak.new(digest_bits=256)
    k.update(raw)
    assert policy_hash(p) == k.digest() and len(policy_hash(p)) == 32
    assert policy_hash_hex(p) == "0x" + k.hexdigest()


def test_formatting_comments_order_and_explicit_defaults_do_not_change_the_hash() -> None:
    text = EXAMPLE.read_text()
    h = policy_hash(parse_policy(text))
    no_comments = "\n".join(line.split(" #")[0].rstrip() if not line.startswith("#") else ""
                            for line in text.splitlines())
    assert policy_hash(parse_policy(no_comments)) == h
    spaced = text.replace(" = ", "     =   ").replace("\n", "\n\n")
    assert policy_hash(parse_policy(spaced)) == h
    as_floats = text.replace("min_days = 0\n", "min_days = 0.0\n").replace(
        "max_days = 7\n", "max_days = 7.000\n")
    assert as_floats != text and policy_hash(parse_policy(as_floats)) == h
    # same data, keys in another order, tables written another way, defaults spelled out
    data = tomllib.loads(text)
    reordered = dict(reversed(list(data.items())))
    reordered["layers"] = dict(reversed(list(data["layers"].items())))
    reordered["liquidity"] = {**data["liquidity"]}
    reordered["layers"]["short"]["strike"]["tolerance"] = 0.02  # the default
    reordered["coverage"][0]["pool"] = data["coverage"][0]["pool"].upper().replace("0X", "0x")
    assert policy_hash(policy_from_dict(reordered)) == h


ALTERNATES = ["elevated", "stress", "crisis", "token0", "token1", "exit_lp", "alert_only",
              "BTC", "USDT", "0x" + "11" * 20, "okx", "bybit", "deribit", "paper", None]


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict) and node:
        return [leaf for k, v in node.items() for leaf in _leaves(v, (*path, k))]
    if isinstance(node, list) and node and not all(isinstance(x, str) for x in node):
        return [leaf for i, v in enumerate(node) for leaf in _leaves(v, (*path, i))]
    return [path]  # scalars, string lists (sets of names), empty lists and dicts


def _candidates(value: Any) -> list[Any]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int | float):
        return [value + 1, value * 0.9, value + 0.01, value * 1.1, value - 1, 0.01, None]
    if isinstance(value, str):
        return [value + "x", *[a for a in ALTERNATES if a != value]]
    if isinstance(value, list):  # a set of names, or empty (token ids)
        return [value[:-1], [*value, "okx"], [*value, "binanceusdm"], [1], ["0x" + "22" * 20]]
    if isinstance(value, dict):
        return [{"iv_percentile": "stress"}]
    return [1, "0x" + "11" * 20, ["0x" + "22" * 20]]  # None: a number, an address, addresses


def test_every_field_is_in_the_hash() -> None:
    """Change each leaf of the full canonical form (every default filled in) to another
    valid value: the hash changes every time, and no field is left out."""
    data = copy.deepcopy(BASE)
    for layer in data["layers"].values():  # room for hysteresis levels to change too
        trig = layer["trigger"]
        layer["trigger"] = {"min_level": "crisis", "signals": dict.fromkeys(trig["signals"],
                                                                           "crisis")}
    base = policy_from_dict(data)
    dumped = json.loads(canonical_bytes(base))
    assert policy_from_dict(dumped) == base  # the canonical form is itself a valid policy
    _every_model_field_is_dumped(base, dumped)
    h = policy_hash(base)
    leaves = _leaves(dumped)
    assert len(leaves) > 60
    untested = []
    for leaf in leaves:
        changed = 0
        for cand in _candidates(_get(dumped, leaf)):
            data = copy.deepcopy(dumped)
            _set(data, leaf, cand)
            try:
                p = policy_from_dict(data)
            except PolicyError:
                continue
            if p == base:
                continue
            assert policy_hash(p) != h, (leaf, cand)
            changed += 1
        if not changed:
            untested.append(leaf)
    assert untested == []


def _every_model_field_is_dumped(model: BaseModel, dumped: dict[str, Any]) -> None:
    assert set(dumped) == set(type(model).model_fields), type(model).__name__
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            _every_model_field_is_dumped(value, dumped[name])
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, BaseModel):
                    _every_model_field_is_dumped(v, dumped[name][k])
        elif isinstance(value, tuple):
            for i, v in enumerate(value):
                if isinstance(v, BaseModel):
                    _every_model_field_is_dumped(v, dumped[name][i])


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        node = node[p]
    return node


def _set(node: Any, path: tuple[Any, ...], value: Any) -> None:
    _get(node, path[:-1])[path[-1]] = value


def test_differently_written_toml_has_the_same_hash() -> None:
    """The example rewritten by hand: keys and tables in another order, inline tables as
    tables and back, set-like lists reordered (and a duplicate venue), defaults spelled
    out, integers as floats, no comments."""
    text = """
[perp]
venues = ["binanceusdm", "hyperliquid", "binanceusdm"]
max_quote_age_seconds = 300
rebalance_band = 0.1
hedge_ratio = 0.5
enabled = true

[depeg]
min_level = "stress"
action = "exit_lp"

[layers.structural]
premium.max_vol_units = 0.4
roll = { max_strike_change = 0.03, days_before_expiry = 30.0 }
size = { fraction_of_x_max = 0.4 }
hysteresis = { min_engaged_hours = 72, levels = 0 }
strike = { put_offset = [0.05, 0.07], tolerance = 0.02 }
trigger = { signals = { tvl_drop = "elevated" }, min_level = "elevated" }
min_days = 60
max_days = 120.0

[layers.intermediate]
max_days = 45
min_days = 15
hysteresis = { min_engaged_hours = 48, levels = 0 }
roll = { max_strike_change = 0.03, days_before_expiry = 10 }
size = { fraction_of_x_max = 0.35, min_adjust_fraction = 0.05 }
strike = { put_offset = [0.05, 0.07] }
[layers.intermediate.trigger]
signals.iv_percentile = "elevated"
min_level = "stress"

[layers.short]
min_days = 0
max_days = 7
trigger = { signals = { term_structure = "elevated" }, min_level = "crisis" }
[layers.short.strike]
calls = false
put_offset = [0.05, 0.07]
[layers.short.size]
min_adjust_fraction = 0.05
fraction_of_x_max = 0.25
[layers.short.roll]
max_strike_change = 0.03
days_before_expiry = 1
[layers.short.premium]
max_vol_units = 0.4
[layers.short.hysteresis]
min_engaged_hours = 24
levels = 0

[budget]
session_cap_share = 0.25
share_of_expected_fees = 0.5
fee_cap_of_premium = 0.125

[liquidity]
max_quote_age_seconds = 300
min_open_interest = 50.0
max_spread = 0.15

[venues]
options = ["derive", "deribit"]

[[coverage]]
token_ids = []
underlying_token = "token1"
pool = "0x88E6A0C2DDD26FEEB64F039A2C41296FCB3F5640"
quote = "USDC"
underlying = "ETH"

[governance]
override_max_ttl_hours = 72.0
single_owner_may_tighten = true

[scope]
max_exits_per_period = 2
max_exit_deviation_bps = 300
period_hours = 24.0
max_slippage_bps = 100
max_oracle_age_seconds = 90000
oracles."0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48" = "0x8FFFFFD4AFB6115B954BD326CBE7B4BA576818F6"
oracles."0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2" = "0x5f4ec3df9cbd43714fe2740f5e3616155c5b8419"
[[scope.limits]]
token = "0xA0B86991C6218B36C1D19D4A2E9EB0CE3606EB48"
approve_per_period = 15000000000
swap_per_period = 15000000000
[[scope.limits]]
swap_per_period = 5000000000000000000
approve_per_period = 5000000000000000000
token = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
[[scope.swaps]]
fee = 500
token_out = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
token_in = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
[[scope.swaps]]
token_in = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
token_out = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
fee = 500
"""
    text = 'name = "Treasury ETH/USDC 0.05% protection"\nversion = "2026-11-21.1"\n' + text
    assert policy_hash(parse_policy(text)) == policy_hash(load_policy(str(EXAMPLE)))
    # and one semantic change in that text changes it
    assert policy_hash(parse_policy(text.replace("min_engaged_hours = 48", "min_engaged_hours = 47"))) != \
        policy_hash(load_policy(str(EXAMPLE)))


def test_coverage_order_and_token_id_order_do_not_change_the_hash() -> None:
    a = mutate("coverage", [
        {**BASE["coverage"][0], "token_ids": [5, 3]},
        {**BASE["coverage"][0], "token_ids": [9]},
        {"underlying": "ETH", "quote": "USDT", "underlying_token": "token0",
         "pool": "0x11b815efb8f581194ae79006d24e0d814b7697f6"}])
    b = copy.deepcopy(a)
    b["coverage"] = [b["coverage"][2], b["coverage"][1], {**b["coverage"][0],
                                                          "token_ids": [3, 5, 3]}]
    assert policy_hash(policy_from_dict(a)) == policy_hash(policy_from_dict(b))
    b["coverage"][1]["token_ids"] = [10]
    assert policy_hash(policy_from_dict(a)) != policy_hash(policy_from_dict(b))


@pytest.mark.parametrize(("path", "value"), [
    ("layers.intermediate.size.fraction_of_x_max", 0.36),
    ("venues.options", ["deribit"]),
    ("coverage.0.token_ids", [1]),
    ("governance.single_owner_may_tighten", False),
    ("version", "2026-11-21.2"),
    ("budget.session_cap_share", 0.2),
    ("layers.short.trigger", {"min_level": "crisis"}),
])
def test_any_semantic_change_changes_the_hash(path: str, value: Any) -> None:
    h = policy_hash(policy_from_dict(BASE))
    assert policy_hash(policy_from_dict(mutate(path, value))) != h


# ------------------------------------------------------------------ bad policy files


@pytest.mark.parametrize(("path", "value", "field", "says"), [
    # wrong types
    ("layers.intermediate.size.fraction_of_x_max", "half",
     "layers.intermediate.size.fraction_of_x_max", "valid number"),
    ("layers.short.min_days", "0", "layers.short.min_days", "valid number"),
    ("governance.single_owner_may_tighten", "yes", "governance.single_owner_may_tighten",
     "valid boolean"),
    ("version", 3, "version", "valid string"),
    ("coverage.0.token_ids", "all", "coverage[0].token_ids", "valid array"),
    # negative caps and limits
    ("budget.share_of_expected_fees", -0.5, "budget.share_of_expected_fees",
     "greater than or equal to 0"),
    ("budget.session_cap_share", -0.25, "budget.session_cap_share", "greater than or equal to 0"),
    ("budget.session_cap_share", 1.5, "budget.session_cap_share", "less than or equal to 1"),
    ("layers.short.premium.max_pct_of_spot", -0.01, "layers.short.premium.max_pct_of_spot",
     "greater than 0"),
    ("liquidity.min_open_interest", -5, "liquidity.min_open_interest",
     "greater than or equal to 0"),
    ("governance.override_max_ttl_hours", -1, "governance.override_max_ttl_hours",
     "greater than 0"),
    # overlapping tenors
    ("layers.intermediate.min_days", 5, "layers.intermediate.min_days",
     "tenor 5-45 days overlaps layer 'short' (0-7 days)"),
    ("layers.structural.min_days", 40, "layers.structural.min_days",
     "overlaps layer 'intermediate'"),
    # unknown venue (the allowed ones are listed)
    ("venues.options", ["deribit", "ftx"], "venues.options[1]",
     "'deribit', 'derive', 'okx', 'bybit', 'binance', 'panoptic' or 'paper'"),
    ("perp.venues", ["mango"], "perp.venues[0]", "'hyperliquid'"),
    # strike inside the range
    ("layers.short.strike", {"put_offset": [-0.02, 0.05]}, "layers.short.strike.put_offset",
     "strike inside the range"),
    ("layers.structural.strike", {"call_offset": [-0.1, 0.0], "calls": True},
     "layers.structural.strike.call_offset", "strike inside the range"),
    ("layers.short.strike", {"put_offset": [0.07, 0.05]}, "layers.short.strike.put_offset",
     "min <= max"),
    # names outside the closed sets
    ("layers.short.trigger", {"signals": {"vix": "elevated"}}, "layers.short.trigger.signals.vix",
     "unknown name; input should be 'iv_percentile', 'term_structure', 'tvl_drop'"),
    ("layers.short.trigger", {"min_level": "panic"}, "layers.short.trigger.min_level",
     "'elevated', 'stress' or 'crisis'"),
    ("layers.short.trigger", {"min_level": "calm"}, "layers.short.trigger.min_level",
     "'elevated', 'stress' or 'crisis'"),
    ("layers.short.trigger", {}, "layers.short.trigger", "needs min_level and/or signals"),
    ("coverage.0.underlying_token", "token2", "coverage[0].underlying_token",
     "'token0' or 'token1'"),
    ("depeg.action", "panic_sell", "depeg.action", "'exit_lp' or 'alert_only'"),
    # structure
    ("layers.short.sizes", 1, "layers.short.sizes",
     "unknown field (allowed: hysteresis, max_days, min_days, premium, roll, size, strike, "
     "trigger)"),
    ("budgett", {}, "budgett", "unknown field (allowed: budget, coverage"),
    ("coverage", [], "coverage", "at least 1 item"),
    ("coverage.0.pool", "0x1234", "coverage[0].pool", "0x-prefixed 20-byte hex address"),
    # ambiguous coverage: a position would match two entries
    ("coverage", [BASE["coverage"][0], BASE["coverage"][0]], "coverage",
     "entries [0] and [1] both cover pool 0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640 pool-wide"),
    ("coverage", [{**BASE["coverage"][0], "token_ids": [1, 2]},
                  {**BASE["coverage"][0], "token_ids": [2]}], "coverage",
     "entries [0] and [1] both list token id 2"),
    ("layers.short.roll.days_before_expiry", 7, "layers.short",
     "roll.days_before_expiry 7 must be < max_days 7"),
    ("layers.short.min_days", 8, "layers.short", "min_days 8 must be < max_days 7"),
    ("layers.short.size", DELETE, "layers.short.size", "required field missing"),
    # hysteresis that reaches calm would keep a layer engaged for ever
    ("layers.intermediate.hysteresis", {"levels": 1}, "layers.intermediate",
     "hysteresis.levels 1 must be < 1: trigger.signals.iv_percentile elevated is only 1 "
     "level(s) above calm, so the layer would never be released"),
    ("layers.short.hysteresis", {"levels": 2}, "layers.short",
     "hysteresis.levels 2 must be < 1: trigger.signals.term_structure elevated"),
    ("layers.short.trigger", {"min_level": "stress"}, None, None),  # levels 0: fine

    ("layers.Short", BASE["layers"]["short"], "layers.Short", "lower-case identifiers"),
])
def test_bad_policy_files_give_one_line_errors_naming_the_field(path: str, value: Any,
                                                              field: str | None,
                                                              says: str | None) -> None:
    if field is None:  # a control: the same kind of change, valid
        policy_from_dict(mutate(path, value))
        return
    assert says is not None
    with pytest.raises(PolicyError) as info:
        policy_from_dict(mutate(path, value))
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(field + ":") or msg.startswith(field + " "), msg
    assert says in msg, msg


def test_hysteresis_below_the_lowest_trigger_level_is_allowed() -> None:
    data = mutate("layers.intermediate.trigger", {"min_level": "crisis",
                                                  "signals": {"iv_percentile": "stress"}})
    data["layers"]["intermediate"]["hysteresis"] = {"levels": 1}
    assert policy_from_dict(data).layers["intermediate"].hysteresis.levels == 1
    data["layers"]["intermediate"]["hysteresis"] = {"levels": 2}
    with pytest.raises(PolicyError, match=r"^layers\.intermediate: hysteresis\.levels 2 must "
                                          r"be < 2: trigger\.signals\.iv_percentile stress"):
        policy_from_dict(data)


def test_layer_mutations_that_remove_the_default_key_still_name_it() -> None:
    data = mutate("layers.intermediate.size.fraction_of_x_max", 0)
    with pytest.raises(PolicyError, match=r"^layers\.intermediate\.size\.fraction_of_x_max: "
                                          r"Input should be greater than 0"):
        policy_from_dict(data)


def test_toml_syntax_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"^TOML syntax: .*line 2"):
        parse_policy('version = "1"\nthis is not toml\n')
    with pytest.raises(PolicyError, match=r"^cannot read: No such file"):
        load_policy(str(tmp_path / "missing.toml"))
    bad = tmp_path / "nan.toml"
    bad.write_text(EXAMPLE.read_text().replace("max_spread = 0.15", "max_spread = nan"))
    with pytest.raises(PolicyError, match=r"^liquidity\.max_spread: numbers must be finite"):
        load_policy(str(bad))
    inf = EXAMPLE.read_text().replace("min_open_interest = 50", "min_open_interest = inf")
    with pytest.raises(PolicyError, match=r"^liquidity\.min_open_interest: numbers must be "
                                          r"finite \(nan/inf not allowed, got inf\)"):
        parse_policy(inf)
    dated = EXAMPLE.read_text().replace('version = "2026-11-21.1"', "version = 2026-11-21")
    with pytest.raises(PolicyError, match=r"^version: a TOML date/time is not allowed"):
        parse_policy(dated)
    dated = EXAMPLE.read_text().replace("min_days = 15\n", "min_days = 1979-05-27T07:32:00Z\n")
    with pytest.raises(PolicyError, match=r"^layers\.intermediate\.min_days: a TOML date"):
        parse_policy(dated)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PolicyError, match="UTF-8"):
        load_policy(str(binary))
