"""No confident wrong answer (issue 10, deliverable 3): a table of bad inputs to `plan` (state
file fields, options, settings, policy) and `positions` (options and settings: addresses
refused before any network), each through the real entry point in process (bot.cli.main via
tests/support/cli.py). Every case: exit 2, nothing on stdout, exactly one line on stderr
naming the culprit, no traceback, nothing written next to the inputs."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import lphedge

ROOT = Path(__file__).resolve().parents[3]
STATE = json.loads((ROOT / "examples" / "state.json").read_text())
POLICY = (ROOT / "examples" / "policy.toml").read_text()

GOOD = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"  # WETH, checksummed
NPM = "0xC36442b4a4522E871399CD717aBDD847Ab11FE88"


def typo(address: str) -> str:
    """One letter's case flipped: still hex, still mixed case, checksum wrong."""
    i = next(i for i, c in enumerate(address) if i > 1 and c.isalpha())
    return address[:i] + address[i].swapcase() + address[i + 1:]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set STATE[path] (dotted, list indices as numbers) to ``value``."""
    def mutate(s: dict[str, Any]) -> None:
        *keys, last = [int(k) if k.isdigit() else k for k in path.split(".")]
        node: Any = s
        for k in keys:
            node = node[k]
        node[last] = value
    return mutate


def _dup_position(s: dict[str, Any]) -> None:
    s["positions"].append(copy.deepcopy(s["positions"][0]))


def _dup_pool(s: dict[str, Any]) -> None:
    s["pools"].append(copy.deepcopy(s["pools"][0]))


def _same_tokens(s: dict[str, Any]) -> None:
    s["pools"][0]["token1"] = copy.deepcopy(s["pools"][0]["token0"])


POOL = STATE["pools"][0]["address"]
STATE_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("duplicate token id", _dup_position, "positions[3].token_id: 101 is listed twice"),
    ("duplicate pool", _dup_pool, "pools[1].address"),
    ("token1 is token0", _same_tokens, "pools[0].token1"),
    ("tick_lower off spacing", _set("positions.0.tick_lower", 195005),
     "positions[0].tick_lower: 195005 is not a multiple of the pool's tick spacing 10"),
    ("tick_upper off spacing", _set("positions.0.tick_upper", 197311), "positions[0].tick_upper"),
    ("liquidity 2^128", _set("positions.0.liquidity", str(2**128)), "positions[0].liquidity"),
    ("liquidity 2^130", _set("positions.0.liquidity", 2**130), "positions[0].liquidity"),
    ("liquidity negative", _set("positions.0.liquidity", -1), "positions[0].liquidity"),
    ("liquidity text", _set("positions.0.liquidity", "lots"), "positions[0].liquidity"),
    ("tokens owed 2^128", _set("positions.0.tokens_owed0", 2**128), "positions[0].tokens_owed0"),
    ("fee growth 2^256", _set("positions.0.fee_growth_inside0_last_x128", 2**256),
     "positions[0].fee_growth_inside0_last_x128"),
    ("token id negative", _set("positions.0.token_id", -1), "positions[0].token_id"),
    ("owner bad checksum", _set("positions.0.owner", typo(GOOD)), "positions[0].owner"),
    ("position manager bad checksum", _set("positions.0.position_manager", typo(NPM)),
     "positions[0].position_manager"),
    ("position pool short", _set("positions.0.pool", "0x1234"), "positions[0].pool"),
    ("position pool bad checksum", _set("positions.0.pool", typo(POOL)), "positions[0].pool"),
    ("pool address bad checksum", _set("pools.0.address", typo(POOL)), "pools[0].address"),
    ("token address bad checksum", _set("pools.0.token1.address", typo(GOOD)),
     "pools[0].token1.address"),
    ("tick spacing 0", _set("pools.0.tick_spacing", 0), "pools[0].tick_spacing"),
    ("tick spacing absurd", _set("pools.0.tick_spacing", 10**6), "pools[0].tick_spacing"),
    ("fee 100%", _set("pools.0.fee", 1_000_000), "pools[0].fee"),
    ("sqrt price 2^160", _set("pools.0.sqrt_price_x96", 2**160), "pools[0].sqrt_price_x96"),
    ("pool liquidity 2^128", _set("pools.0.liquidity", 2**128), "pools[0].liquidity"),
    ("decimals 78", _set("pools.0.token0.decimals", 78), "pools[0].token0.decimals"),
    ("bid NaN", _set("quotes.0.bid", float("nan")), "quotes[0].bid"),
    ("ask Infinity", _set("quotes.0.ask", float("inf")), "quotes[0].ask"),
    ("mark_iv 1e308", _set("quotes.0.mark_iv", 1e308), "quotes[0].mark_iv"),
    ("strike 1e300", _set("quotes.0.strike", 1e300), "quotes[0].strike"),
    ("open interest negative", _set("quotes.0.open_interest", -1), "quotes[0].open_interest"),
    ("forward text 1e999", _set("quotes.0.forward", "1e999"), "quotes[0].forward"),
    ("funding 1e308", _set("perp_quotes.0.funding_rate_8h", 1e308), "perp_quotes[0].funding_rate_8h"),
    ("perp mark negative", _set("perp_quotes.0.mark", -1.0), "perp_quotes[0].mark"),
    ("perp size 1e30", _set("book.perps.0.size", "1e30"), "book.perps[0].size"),
    ("option size NaN", _set("book.options.0.size", "NaN"), "book.options[0].size"),
    ("budget 1e400", _set("budget.expected_fee_income_usd", "1e400"), "budget.expected_fee_income_usd"),
    ("budget Infinity", _set("budget.spent_total_usd", "Infinity"), "budget.spent_total_usd"),
    ("spend negative", _set("budget.spent_session_usd", "-5"), "budget.spent_session_usd"),
    ("now 1e20", _set("now", 10**20), "now"),
    ("expiry without zone", _set("book.options.0.expiry", "2026-11-27T08:00:00"),
     "book.options[0].expiry"),
    ("held 1e30", _set("underlying_held", [{"underlying": "ETH", "amount": "1e30"}]),
     "underlying_held[0].amount"),
]


def _one_line(out: Any, needle: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert out.stdout == ""
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]


@pytest.mark.parametrize("name, mutate, needle", STATE_CASES, ids=[c[0] for c in STATE_CASES])
def test_bad_state_field(tmp_path: Path, name: str, mutate: Callable[[dict[str, Any]], None],
                         needle: str) -> None:
    state = copy.deepcopy(STATE)
    mutate(state)
    (tmp_path / "state.json").write_text(json.dumps(state))  # NaN/Infinity as JSON allows
    (tmp_path / "policy.toml").write_text(POLICY)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = lphedge("plan", "--state", str(tmp_path / "state.json"), "--policy",
                  str(tmp_path / "policy.toml"), "--json")
    _one_line(out, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_unmutated_example_passes(tmp_path: Path) -> None:
    """The table's cases fail because of their one change, not the base file."""
    (tmp_path / "state.json").write_text(json.dumps(STATE))
    out = lphedge("plan", "--state", str(tmp_path / "state.json"), "--policy",
                  str(ROOT / "examples" / "policy.toml"), "--json")
    assert out.returncode == 0, out.stderr


def _positions(**over: str) -> list[str]:
    opts = {"--rpc-url": "http://127.0.0.1:9", "--owner": GOOD, "--position-manager": NPM}
    opts.update(over)
    return ["positions", *[x for kv in opts.items() for x in kv]]


WALLET = "0x" + "11" * 20


def _roles(flag: str, value: str | None = None) -> list[str]:
    """`roles setup` with every address well formed but ``flag``'s: refused before any RPC."""
    opts = {"--rpc-url": "http://127.0.0.1:9", "--safe": GOOD, "--roles": NPM, "--bot": WALLET,
            "--position-manager": NPM, "--swap-router": NPM, "--multisend-call-only": NPM,
            "--factory": NPM, "--token": GOOD}
    opts[flag] = value if value is not None else typo(opts[flag] if opts[flag] != WALLET else GOOD)
    return ["roles", "setup", *[x for kv in opts.items() for x in kv]]


OPTION_CASES: list[tuple[str, list[str], dict[str, str], str]] = [
    ("owner typo", _positions(**{"--owner": typo(GOOD)}), {}, "--owner"),
    ("owner short", _positions(**{"--owner": "0x1234"}), {}, "--owner"),
    ("owner name", _positions(**{"--owner": "vitalik.eth"}), {}, "--owner"),
    ("position manager typo", _positions(**{"--position-manager": typo(NPM)}), {},
     "--position-manager"),
    ("multicall typo", _positions(**{"--multicall": typo("0xcA11bde05977b3631167028862bE2a173976CA11")}),
     {}, "--multicall"),
    ("owner from env typo", ["positions", "--rpc-url", "http://127.0.0.1:9", "--position-manager", NPM],
     {"LPHEDGE_OWNER": typo(GOOD)}, "OWNER"),
    ("position manager from env typo", ["positions", "--rpc-url", "http://127.0.0.1:9", "--owner", GOOD],
     {"LPHEDGE_POSITION_MANAGER": typo(NPM)}, "POSITION_MANAGER"),
    *[(f"roles setup {flag} typo", _roles(flag), {}, flag)
      for flag in ("--safe", "--roles", "--bot", "--position-manager", "--swap-router",
                   "--multisend-call-only", "--factory", "--token")],
    ("roles setup --roles short", _roles("--roles", "0x1234"), {}, "--roles"),
    ("policy verify --safe typo", ["policy", "verify", "policy.toml", "--rpc-url", "http://127.0.0.1:9",
                                   "--safe", typo(GOOD)], {}, "--safe"),
    ("plan fee income 1e400", ["plan", "--policy", "p.toml", "--live", "--fee-income", "1e400"], {},
     "--fee-income"),
    ("plan fee income nan", ["plan", "--policy", "p.toml", "--live", "--fee-income", "nan"], {},
     "--fee-income"),
    ("plan fee income negative", ["plan", "--policy", "p.toml", "--live", "--fee-income", "-1"], {},
     "--fee-income"),
]


@pytest.mark.parametrize("name, argv, env, needle", OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_bad_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, argv: list[str],
                    env: dict[str, str], needle: str) -> None:
    monkeypatch.chdir(tmp_path)
    out = lphedge(*argv, env={**env, "LPHEDGE_DB_PATH": str(tmp_path / "db.sqlite")})
    _one_line(out, needle)
    assert list(tmp_path.iterdir()) == []  # no database, no file


CONFIG_CASES: list[tuple[str, str, str]] = [
    ("underlyings empty", '[market]\nunderlyings = []\n', "market: underlyings is empty"),
    ("chain owner typo", f'[[chains]]\nrpc_urls = ["http://127.0.0.1:9"]\nowner = "{typo(GOOD)}"\n'
     f'position_manager = "{NPM}"\n', "chains[0].owner"),
    ("chain position manager typo", f'[[chains]]\nrpc_urls = ["http://127.0.0.1:9"]\nowner = "{GOOD}"\n'
     f'position_manager = "{typo(NPM)}"\n', "chains[0].position_manager"),
]


@pytest.mark.parametrize("name, config, needle", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_for_plan_live(tmp_path: Path, name: str, config: str, needle: str) -> None:
    (tmp_path / "lphedge.toml").write_text(config)
    (tmp_path / "policy.toml").write_text(POLICY)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = lphedge("plan", "--live", "--policy", str(tmp_path / "policy.toml"), "--config",
                  str(tmp_path / "lphedge.toml"),
                  env={"LPHEDGE_DB_PATH": str(tmp_path / "db.sqlite")})
    _one_line(out, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_policy_pool_with_bad_checksum(tmp_path: Path) -> None:
    text = POLICY.replace(POOL, typo(POOL))
    assert text != POLICY
    (tmp_path / "policy.toml").write_text(text)
    (tmp_path / "state.json").write_text(json.dumps(STATE))
    out = lphedge("plan", "--state", str(tmp_path / "state.json"), "--policy", str(tmp_path / "policy.toml"))
    _one_line(out, "bad EIP-55 checksum")
    assert "coverage[0].pool" in out.stderr
