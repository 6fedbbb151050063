"""Governance fixtures: one real chain with Zodiac Roles (code size limit lifted), a Safe
1.4.1 2-of-3 from the harness, the Roles modifier set up by a real threshold-signed SafeTx."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from adapters.anvil import Anvil
from adapters.evm import roles as R
from adapters.evm import safe as S
from bot import preflight as P
from bot.audit_store import AuditStore
from bot.devchain import DevChain

POLICY_TEXT = """\
version = "1"
name = "governance test"

[governance]
single_owner_may_tighten = {tighten}
override_max_ttl_hours = 48
{pins}

[[coverage]]
underlying = "ETH"
pool = "{pool}"
underlying_token = "token0"
"""


@dataclass
class RolesEnv:
    roles: str
    key: bytes
    bot: LocalAccount
    scope: R.BotScope
    setup_report: P.PreflightReport


@pytest.fixture(scope="session")
def gov_chain() -> Iterator[DevChain]:
    chain = DevChain.start(code_size_limit=True)
    try:
        yield chain
    finally:
        chain.close()


@pytest.fixture(scope="session")
def safe(gov_chain: DevChain) -> S.SafeAdapter:
    return S.SafeAdapter(gov_chain.w3, gov_chain.addresses["safe"], gov_chain.url)


@pytest.fixture(scope="session")
def owners(gov_chain: DevChain) -> list[LocalAccount]:
    return [Account.from_key(k) for k in gov_chain.owner_keys]


@pytest.fixture(scope="session")
def gov_fork(gov_chain: DevChain) -> Iterator[Anvil]:
    fork = Anvil(fork_url=gov_chain.url, chain_id=gov_chain.chain_id, code_size_limit=True).start()
    try:
        yield fork
    finally:
        fork.stop()


def refresh_fork(fork: Anvil, origin_url: str) -> None:
    """Move the fork to the origin's head (what a bot does before each simulation)."""
    fork.rpc("anvil_reset", [{"forking": {"jsonRpcUrl": origin_url}}])


def execute_with_owners(safe: S.SafeAdapter, tx: object, keys: list[str], sender_key: str) -> None:
    for k in keys:
        tx.sign(k)  # type: ignore[attr-defined]
    tx_hash, _ = tx.execute(sender_key)  # type: ignore[attr-defined]
    receipt = safe.w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 1


@pytest.fixture(scope="session")
def roles_env(gov_chain: DevChain, safe: S.SafeAdapter, gov_fork: Anvil) -> RolesEnv:
    a = gov_chain.addresses
    roles = R.deploy_roles(gov_chain.w3, gov_chain.deployer.key.hex(), a["safe"], a["safe"], a["safe"])
    bot = Account.from_key(gov_chain.bot_key)
    key = R.role_key("lphedge-bot")
    scope = R.BotScope(a["position_manager"], a["swap_router"], tuple(t.address for t in gov_chain.tokens.values()))
    calls = [S.enable_module_call(a["safe"], roles), *R.scope_calls(gov_chain.w3, roles, bot.address, key, scope)]
    tx = S.multisend_call_only_tx(safe, a["multisend_call_only"], calls)
    refresh_fork(gov_fork, gov_chain.url)
    report = P.preflight_safe_tx(
        safe, tx, P.roles_setup_allowlist(a["safe"], roles),
        multisend_call_only=a["multisend_call_only"],
        simulate=P.fork_simulator(gov_fork.url, a["safe"]),
        expected_module_changes=[roles],
    )
    execute_with_owners(safe, tx, gov_chain.owner_keys[:2], gov_chain.deployer.key.hex())
    return RolesEnv(roles, key, bot, scope, report)


@pytest.fixture
def clean_chain(gov_chain: DevChain, roles_env: RolesEnv) -> Iterator[DevChain]:
    """A test that changes the chain (owners, balances) gets it back afterwards."""
    snap = gov_chain.snapshot()
    try:
        yield gov_chain
    finally:
        gov_chain.revert(snap)


@pytest.fixture
def store(tmp_path: Path) -> AuditStore:
    return AuditStore(f"sqlite:///{tmp_path / 'audit.db'}")


@pytest.fixture(scope="session")
def policy_text(gov_chain: DevChain) -> str:
    return POLICY_TEXT.format(tighten="false", pool=gov_chain.pools["WETH/USDC/500"], pins=pins_of(gov_chain))


def pins_of(chain: DevChain, sequence: int = 0) -> str:
    """The [governance] lines pinning the dev Safe as it is (2 of 3 owners) and a sequence."""
    owners = [Account.from_key(k).address for k in chain.owner_keys]
    return f"sequence = {sequence}\nowners = {owners!r}\nthreshold = 2".replace("'", '"')
