"""The `lphedge positions` command as a user runs it: the real entry point (in process,
tests/support/cli.py; tests/bot/commands/test_process.py runs it as a process), real chain.

Every bad input gives one line on stderr naming what is wrong, a non-zero exit and no
traceback; an owner without positions is an empty list, exit 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, select

from adapters.anvil import free_port
from bot.db import open_engine
from bot.devchain import DevChain
from bot.store import PositionSnapshot, WatchedPosition
from tests.support.cli import Run, lphedge


def run(*args: str, env: dict[str, str] | None = None) -> Run:
    """`lphedge ARGS` with no LPHEDGE_* setting but ``env``."""
    return lphedge(*args, env=env)


def base_args(chain: DevChain) -> list[str]:
    return ["positions", "--rpc-url", chain.url, "--owner", chain.addresses["safe"],
            "--position-manager", chain.addresses["position_manager"]]


def test_json_lists_every_position_with_exact_integers(devchain: DevChain) -> None:
    out = run(*base_args(devchain), "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    npm = devchain.contract("NonfungiblePositionManager", devchain.addresses["position_manager"])
    assert {r["token_id"] for r in rows} >= set(devchain.position_ids)
    for r in rows:
        for key in ("token_id", "pool", "tick_lower", "tick_upper", "liquidity", "amount0", "amount1",
                    "fees0", "fees1", "in_range", "value_usd", "delta", "gamma_1pct", "base", "quote", "price",
                    "orientation"):
            assert key in r
        assert isinstance(r["amount0"], int) and isinstance(r["liquidity"], int)
        assert r["liquidity"] == npm.functions.positions(r["token_id"]).call()[7]


def test_table_names_pairs_and_ranges(devchain: DevChain) -> None:
    out = run(*base_args(devchain))
    assert out.returncode == 0, out.stderr
    # pairs as traders quote them (ETH/USDC for the USDC/WETH pool), not the pool's token order
    assert "ETH/USDC" in out.stdout and "positions on chain 31337" in out.stdout


def test_record_stores_exact_snapshots(devchain: DevChain, tmp_path: Path) -> None:
    db = tmp_path / "lp.db"
    out = run(*base_args(devchain), "--record", env={"LPHEDGE_DB_PATH": str(db)})
    assert out.returncode == 0, out.stderr
    rows = json.loads(run(*base_args(devchain), "--json").stdout)
    with Session(open_engine(f"sqlite:///{db}")) as s:
        snaps = {int(x.token_id): x for x in s.exec(select(PositionSnapshot)).all()}
        watched = s.exec(select(WatchedPosition)).all()
    assert len(watched) == len(rows)
    for r in rows:  # uint128/uint256 survive the database exactly
        assert int(snaps[r["token_id"]].liquidity) == r["liquidity"]
        assert int(snaps[r["token_id"]].amount0) == r["amount0"]


def _assert_one_line_error(out: Run, needle: str) -> None:
    assert out.returncode != 0
    assert "Traceback" not in out.stderr + out.stdout
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("--owner", "0x1234", "--owner: '0x1234' is not an address (0x and 40 hex digits)"),
        ("--owner", "vitalik", "--owner"),
        ("--position-manager", "0xZZ", "--position-manager"),
    ],
)
def test_malformed_address(devchain: DevChain, field: str, value: str, needle: str) -> None:
    args = base_args(devchain)
    args[args.index(field) + 1] = value
    _assert_one_line_error(run(*args), needle)


def test_non_contract_position_manager(devchain: DevChain) -> None:
    args = base_args(devchain)
    args[args.index("--position-manager") + 1] = "0x" + "11" * 20
    _assert_one_line_error(run(*args), "no contract at this address on chain 31337")


def test_contract_that_is_not_a_position_manager(devchain: DevChain) -> None:
    args = base_args(devchain)
    args[args.index("--position-manager") + 1] = devchain.addresses["safe"]
    _assert_one_line_error(run(*args), "not a NonfungiblePositionManager")


def test_wrong_chain(devchain: DevChain) -> None:
    _assert_one_line_error(run(*base_args(devchain), "--chain-id", "1"), "wrong chain: the RPC serves chain 31337, expected 1")


def test_unreachable_rpc() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    out = run("positions", "--rpc-url", url, "--owner", "0x" + "11" * 20, "--position-manager", "0x" + "22" * 20)
    _assert_one_line_error(out, "cannot reach any RPC endpoint")


def test_rpc_url_with_key_is_not_printed() -> None:
    url = f"http://127.0.0.1:{free_port()}/v3/SECRETKEY123"
    out = run("positions", "--rpc-url", url, "--owner", "0x" + "11" * 20, "--position-manager", "0x" + "22" * 20)
    _assert_one_line_error(out, "cannot reach any RPC endpoint")
    assert "SECRETKEY123" not in out.stderr + out.stdout


def test_missing_rpc_url() -> None:
    out = run("positions", "--owner", "0x" + "11" * 20, "--position-manager", "0x" + "22" * 20)
    _assert_one_line_error(out, "--rpc-url")


def test_owner_without_positions_is_an_empty_list(devchain: DevChain) -> None:
    args = base_args(devchain)
    args[args.index("--owner") + 1] = "0x" + "77" * 20
    out = run(*args, "--json")
    assert out.returncode == 0 and json.loads(out.stdout) == []
    out = run(*args)
    assert out.returncode == 0 and "no positions" in out.stdout


def test_settings_from_env(devchain: DevChain) -> None:
    env = {
        "LPHEDGE_RPC_URLS": f"http://127.0.0.1:{free_port()},{devchain.url}",
        "LPHEDGE_OWNER": devchain.addresses["safe"],
        "LPHEDGE_POSITION_MANAGER": devchain.addresses["position_manager"],
    }
    out = run("positions", "--json", env=env)
    assert out.returncode == 0, out.stderr  # failed over past the dead first URL
    assert {r["token_id"] for r in json.loads(out.stdout)} >= set(devchain.position_ids)


def test_bad_setting_is_one_line() -> None:
    out = run("positions", "--json", env={"LPHEDGE_RPC_TIMEOUT": "-3"})
    _assert_one_line_error(out, "LPHEDGE_RPC_TIMEOUT")
