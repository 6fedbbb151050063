"""`lphedge plan` through the real entry point, in process (tests/support/cli.py: exit codes,
stderr, JSON); tests/bot/commands/test_process.py runs it as a process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.policy_loader import load_policy
from policies.alvh import decide
from policies.policy_file import policy_hash_hex
from policies.state_file import StateError, parse_state
from tests.support.cli import lphedge

ROOT = Path(__file__).resolve().parents[3]
STATE = ROOT / "examples" / "state.json"
POLICY = ROOT / "examples" / "policy.toml"


def test_plan_json_is_the_decision_of_the_example_state() -> None:
    out = lphedge("plan", "--state", str(STATE), "--policy", str(POLICY), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    policy = load_policy(str(POLICY))
    d = decide(parse_state(STATE.read_text(), policy))
    assert data["policy_hash"] == policy_hash_hex(policy) == d.policy_hash
    assert [i["action"] for i in data["intents"]] == [i.action for i in d.intents]
    assert data["spent_cents"] == d.spent_cents
    # the example shows every kind of reasoning an owner reviews
    actions = {i["action"] for i in data["intents"]}
    assert {"engage_layer", "roll_option", "open_option", "adjust_perp"} <= actions
    assert any("clipped" in i["reason"] and "session cap" in i["reason"]
               for i in data["intents"])
    assert data["spent_cents"] <= data["budget"]["remaining_session_cents"]
    greeks = data["greeks"][0]  # every held option has a fresh quote in the example
    assert greeks["unknown"] == [] and greeks["net_delta"] == pytest.approx(
        greeks["lp_delta"] + greeks["options_delta"] + greeks["perp_delta"])
    roll = next(i for i in data["intents"] if i["action"] == "roll_option")
    assert roll["close_instrument"]["symbol"] == "ETH-27NOV26-2400-P"
    # the same 4 ETH, into the strike rule's band (issue 13, Q3: rolls re-strike), whose
    # nearest listed strike may have another size step ("4" or "4.0")
    assert float(roll["open_size"]) == 4.0


def test_plan_table_shows_reasons() -> None:
    out = lphedge("plan", "--state", str(STATE), "--policy", str(POLICY))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for needle in ("hash 0x", "Layers", "intermediate", "structural", "roll intermediate",
                   "iv_percentile elevated", "clip", "perp delta hedge", "net delta"):
        assert needle in text, needle


@pytest.mark.parametrize(("policy_text", "says"), [
    ('version = "1"\n[budget]\nsession_cap_share = -0.25\n[[coverage]]\nunderlying = "ETH"\n'
     'pool = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"\nunderlying_token = "token1"\n',
     "budget.session_cap_share: Input should be greater than or equal to 0 (got -0.25)"),
    ('version = "1"\n[venues]\noptions = ["ftx"]\n[[coverage]]\nunderlying = "ETH"\n'
     'pool = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"\nunderlying_token = "token1"\n',
     "venues.options[0]: Input should be 'deribit', 'derive'"),
    ("version = \n", "TOML syntax"),
])
def test_bad_policy_file_is_one_line_exit_2(tmp_path: Path, policy_text: str, says: str) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text(policy_text)
    out = lphedge("plan", "--state", str(STATE), "--policy", str(bad))
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith(f"error: {bad}: ")
    assert says in lines[0]


def test_bad_state_file_is_one_line_exit_2(tmp_path: Path) -> None:
    state = json.loads(STATE.read_text())
    state["positions"][0]["pool"] = "0x" + "12" * 20
    bad = tmp_path / "state.json"
    bad.write_text(json.dumps(state))
    out = lphedge("plan", "--state", str(bad), "--policy", str(POLICY), "--json")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == (f"error: {bad}: positions[0].pool: 0x{'12' * 20} "
                                  f"is not in pools")
    missing = lphedge("plan", "--state", str(tmp_path / "nope.json"), "--policy", str(POLICY))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: {tmp_path / 'nope.json'}: cannot read: " \
                                     f"No such file or directory"


@pytest.mark.parametrize(("mutate", "says"), [
    (lambda s: s.pop("now"), "now: required field missing"),
    (lambda s: s.update(now="yesterday"), "now: not an ISO 8601 time"),
    (lambda s: s["quotes"][0].update(kind="straddle"), "quotes[0].kind: Input should be 'put' or"),
    (lambda s: s["book"]["options"][0].update(size="-4"), "book.options[0].size: Input should "
                                                          "be greater than 0"),
    (lambda s: s["regimes"][0].update(level="panic"), "regimes[0].level: Input should be"),
    (lambda s: s["budget"].update(expected_fee_income_usd="lots"), "budget.expected_fee_income"),
    (lambda s: s.update(extra=1), "extra: unknown field (allowed: book, budget, now"),
    (lambda s: s["pools"][0].update(tick=10**7), "pools[0]: "),
    (lambda s: s["regimes"][0]["signals"][0].update(name="iv_percentil"),
     "regimes[0].signals[0].name: Input should be 'iv_percentile', 'term_structure'"),
    (lambda s: s["regimes"].append(dict(s["regimes"][0])),
     "regimes[2].underlying: ETH already has a regime (regimes[0]); one per asset"),
    (lambda s: s["positions"][0].update(tick_lower=s["positions"][0]["tick_upper"]),
     "positions[0].tick_lower: must be < tick_upper"),
])
def test_state_errors_name_the_field(mutate, says: str) -> None:  # type: ignore[no-untyped-def]
    state = json.loads(STATE.read_text())
    mutate(state)
    with pytest.raises(StateError) as info:
        parse_state(json.dumps(state), load_policy(str(POLICY)))
    assert says in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("income", "spent", "cents"), [
    ("60000", "4200", (6_000_000, 420_000)),
    ("1000.009", "0.001", (100_000, 1)),      # income rounds down, spending up
    ("0.004", "12.3450001", (0, 1_235)),
    (60000, 4200, (6_000_000, 420_000)),       # JSON numbers: the same exact cents
])
def test_state_budget_is_exact_cents_rounded_against_the_budget(income: object, spent: object,
                                                                cents: tuple[int, int]) -> None:
    state = json.loads(STATE.read_text())
    state["budget"] = {"expected_fee_income_usd": income, "spent_total_usd": spent,
                       "spent_session_usd": spent}
    b = parse_state(json.dumps(state), load_policy(str(POLICY))).budget
    assert (b.expected_fee_income_cents, b.spent_total_cents) == cents
    assert b.spent_session_cents == cents[1]
