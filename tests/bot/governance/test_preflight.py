"""Pre-flight checks before the bot proposes or anyone signs (Bybit 2025, Radiant 2024):
hashes computed locally, CALL only (delegatecall only to a decoded MultiSendCallOnly),
allowlisted targets+selectors, calldata decoded with known ABIs, simulation first, and the
Safe's singleton/owners/threshold/modules/guard unchanged afterwards."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safe_eth.safe.multi_send import MultiSend, MultiSendOperation, MultiSendTx

from adapters.anvil import Anvil
from adapters.evm import safe as S
from bot import governance as G
from bot import preflight as P
from bot.audit_store import AuditStore
from bot.devchain import DevChain
from tests.bot.governance.conftest import RolesEnv, refresh_fork

pytestmark = pytest.mark.xdist_group("governance")


def enc(fn: Any) -> bytes:
    return bytes.fromhex(fn._encode_transaction_data()[2:])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    to=st.binary(min_size=20, max_size=20), value=st.integers(0, 2**256 - 1),
    data=st.binary(max_size=100), op=st.integers(0, 1), nonce=st.integers(0, 2**64),
)
def test_safe_tx_hash_local_equals_safe_eth_py_equals_chain(
    safe: S.SafeAdapter, to: bytes, value: int, data: bytes, op: int, nonce: int
) -> None:
    tx = safe.build_tx("0x" + to.hex(), value, data, op, nonce)
    h = S.verified_safe_tx_hash(tx, safe)  # raises on any disagreement
    assert h == safe.onchain_tx_hash(tx) == bytes(tx.safe_tx_hash)


@pytest.fixture
def sim(gov_chain: DevChain, gov_fork: Anvil, safe: S.SafeAdapter) -> Any:
    refresh_fork(gov_fork, gov_chain.url)
    return P.fork_simulator(gov_fork.url, safe.address)


def _setup_allowlist(gov_chain: DevChain, roles_env: RolesEnv) -> P.Allowlist:
    return P.roles_setup_allowlist(gov_chain.addresses["safe"], roles_env.roles)


def test_delegatecall_to_arbitrary_contract_refused(gov_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv, sim: Any, store: AuditStore) -> None:
    # Bybit: a delegatecall dressed up as a transfer.
    npm = gov_chain.addresses["position_manager"]
    tx = safe.build_tx(npm, 0, bytes.fromhex("a9059cbb") + b"\0" * 64, operation=1)
    with pytest.raises(G.PreflightRefused, match=r"delegatecall to .* refused"):
        P.preflight_safe_tx(safe, tx, _setup_allowlist(gov_chain, roles_env), multisend_call_only=gov_chain.addresses["multisend_call_only"], simulate=sim, store=store)
    assert store.events(event="refusal")[-1].subject_hash == "0x" + bytes(tx.safe_tx_hash).hex()


def test_delegatecall_to_full_multisend_refused(gov_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv, sim: Any) -> None:
    a = gov_chain.addresses
    inner = [S.enable_module_call(a["safe"], roles_env.roles)]
    tx = S.multisend_call_only_tx(safe, a["multisend"], inner)  # MultiSend (can delegatecall), not CallOnly
    with pytest.raises(G.PreflightRefused, match="only MultiSendCallOnly"):
        P.preflight_safe_tx(safe, tx, _setup_allowlist(gov_chain, roles_env), multisend_call_only=a["multisend_call_only"], simulate=sim)
    # even if someone configures the MultiSend address as "call only", its code gives it away
    with pytest.raises(G.PreflightRefused, match="is not MultiSendCallOnly"):
        P.preflight_safe_tx(safe, tx, _setup_allowlist(gov_chain, roles_env), multisend_call_only=a["multisend"], simulate=sim)


def test_nested_delegatecall_in_batch_refused(gov_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv, sim: Any) -> None:
    a = gov_chain.addresses
    to, data = S.enable_module_call(a["safe"], roles_env.roles)
    payload = MultiSend(safe.client, to_checksum_address(a["multisend_call_only"])).build_tx_data(
        [MultiSendTx(MultiSendOperation.DELEGATE_CALL, to_checksum_address(to), 0, data)]
    )
    tx = safe.build_tx(a["multisend_call_only"], 0, bytes(payload), operation=1)
    with pytest.raises(G.PreflightRefused, match="nested delegatecall"):
        P.preflight_safe_tx(safe, tx, _setup_allowlist(gov_chain, roles_env), multisend_call_only=a["multisend_call_only"], simulate=sim)


def test_target_or_selector_not_allowlisted_refused(gov_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv, sim: Any) -> None:
    a = gov_chain.addresses
    # Radiant: an ownership change presented as routine.
    to, data = S.swap_owner_call(safe, safe.owners()[0], Account.create().address)
    with pytest.raises(G.PreflightRefused, match="not on the allowlist"):
        P.preflight_safe_tx(safe, safe.build_tx(to, 0, data), _setup_allowlist(gov_chain, roles_env), multisend_call_only=a["multisend_call_only"], simulate=sim)
    weth = gov_chain.tokens["WETH"].address
    erc = gov_chain.contract("ERC20", weth)
    tx = safe.build_tx(weth, 0, enc(erc.functions.transfer(Account.create().address, 1)))
    with pytest.raises(G.PreflightRefused, match="not on the allowlist"):
        P.preflight_safe_tx(safe, tx, _setup_allowlist(gov_chain, roles_env), multisend_call_only=a["multisend_call_only"], simulate=sim)


def test_calldata_with_trailing_bytes_refused(gov_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv, sim: Any) -> None:
    to, data = S.enable_module_call(gov_chain.addresses["safe"], Account.create().address)
    tx = safe.build_tx(to, 0, data + b"\xde\xad\xbe\xef")
    with pytest.raises(G.PreflightRefused, match="extra or non-canonical bytes"):
        P.preflight_safe_tx(safe, tx, _setup_allowlist(gov_chain, roles_env), multisend_call_only=None, simulate=sim)
    tx = safe.build_tx(to, 0, data[:20])
    with pytest.raises(G.PreflightRefused, match="does not decode"):
        P.preflight_safe_tx(safe, tx, _setup_allowlist(gov_chain, roles_env), multisend_call_only=None, simulate=sim)


def test_invariant_change_refused_after_simulation(gov_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv, sim: Any) -> None:
    # enableModule is on the allowlist, but an unexpected module changes the Safe's invariants.
    to, data = S.enable_module_call(gov_chain.addresses["safe"], Account.create().address)
    tx = safe.build_tx(to, 0, data)
    with pytest.raises(G.PreflightRefused, match="invariants would change: modules"):
        P.preflight_safe_tx(safe, tx, _setup_allowlist(gov_chain, roles_env), multisend_call_only=None, simulate=sim)
    # The same transaction passes when that module change is what the owners intend.
    new_module = P.decode_safe_tx(gov_chain.w3, tx, _setup_allowlist(gov_chain, roles_env), None)[0].args["module"]
    rep = P.preflight_safe_tx(safe, tx, _setup_allowlist(gov_chain, roles_env), multisend_call_only=None, simulate=sim, expected_module_changes=[new_module])
    assert rep.simulation is not None and rep.simulation.success and rep.simulation.gas_used > 0
    assert safe.invariants().modules == (roles_env.roles,)  # the live chain is untouched


def test_failing_simulation_refused(gov_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv, sim: Any) -> None:
    to, data = S.enable_module_call(gov_chain.addresses["safe"], roles_env.roles)  # already enabled: GS102
    with pytest.raises(G.PreflightRefused, match="simulation failed"):
        P.preflight_safe_tx(safe, safe.build_tx(to, 0, data), _setup_allowlist(gov_chain, roles_env), multisend_call_only=None, simulate=sim)


def test_no_simulator_refused(gov_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv) -> None:
    to, data = S.enable_module_call(gov_chain.addresses["safe"], Account.create().address)
    with pytest.raises(G.PreflightRefused, match="no simulation"):
        P.preflight_safe_tx(safe, safe.build_tx(to, 0, data), _setup_allowlist(gov_chain, roles_env), multisend_call_only=None, simulate=None)


def test_wrong_nonce_refused_by_simulation(gov_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv, sim: Any) -> None:
    to, data = S.enable_module_call(gov_chain.addresses["safe"], Account.create().address)
    tx = safe.build_tx(to, 0, data, nonce=safe.nonce() + 5)
    with pytest.raises(G.PreflightRefused, match="not the Safe's next nonce"):
        P.preflight_safe_tx(safe, tx, _setup_allowlist(gov_chain, roles_env), multisend_call_only=None, simulate=sim, expected_module_changes=[to])


def test_multisend_payload_with_bytes_the_decoder_skips_refused(gov_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv, sim: Any) -> None:
    # safe-eth-py's decoder ignores bytes after the ABI-encoded batch; the signed payload must
    # be exactly the batch that was inspected, so anything extra is refused.
    a = gov_chain.addresses
    good = S.multisend_call_only_tx(safe, a["multisend_call_only"], [S.enable_module_call(a["safe"], Account.create().address)])
    assert len(P.decode_safe_tx(gov_chain.w3, good, _setup_allowlist(gov_chain, roles_env), a["multisend_call_only"])) == 1
    padded = safe.build_tx(a["multisend_call_only"], 0, bytes(good.data) + b"\xde\xad\xbe\xef" * 8, operation=1)
    assert len(MultiSend.from_transaction_data(bytes(padded.data))) == 1  # the library alone does not see it
    with pytest.raises(G.PreflightRefused, match="MultiSendCallOnly payload has extra or non-canonical bytes"):
        P.preflight_safe_tx(safe, padded, _setup_allowlist(gov_chain, roles_env), multisend_call_only=a["multisend_call_only"], simulate=sim)


def test_allowlisted_call_sending_ether_refused(gov_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv, sim: Any) -> None:
    a = gov_chain.addresses
    to, data = S.enable_module_call(a["safe"], Account.create().address)
    with pytest.raises(G.PreflightRefused, match="sends 1 wei"):
        P.preflight_safe_tx(safe, safe.build_tx(to, 1, data), _setup_allowlist(gov_chain, roles_env), multisend_call_only=None, simulate=sim)
    payload = MultiSend(safe.client, to_checksum_address(a["multisend_call_only"]), call_only=True).build_tx_data(
        [MultiSendTx(MultiSendOperation.CALL, to_checksum_address(to), 10**18, data)]
    )
    batch = safe.build_tx(a["multisend_call_only"], 0, bytes(payload), operation=1)
    with pytest.raises(G.PreflightRefused, match=f"sends {10**18} wei"):
        P.preflight_safe_tx(safe, batch, _setup_allowlist(gov_chain, roles_env), multisend_call_only=a["multisend_call_only"], simulate=sim)


def test_malformed_safe_txs_refused_each_with_its_reason(gov_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv, sim: Any) -> None:
    a = gov_chain.addresses
    allow = _setup_allowlist(gov_chain, roles_env)
    to, data = S.enable_module_call(a["safe"], Account.create().address)
    cases = [
        (safe.build_tx(to, 0, b""), "without a function selector"),
        (safe.build_tx(to, 0, data, operation=2), "unknown operation 2"),
        (S.multisend_call_only_tx(safe, a["multisend_call_only"], [(to, data)]), None),  # value set below
        (safe.build_tx(a["multisend_call_only"], 0, bytes.fromhex("8d80ff0a") + b"\x01" * 40, operation=1), "does not decode"),
    ]
    ms = cases[2][0]
    cases[2] = (safe.build_tx(ms.to, 1, bytes(ms.data), operation=1), "delegatecall with value refused")
    for tx, why in cases:
        with pytest.raises(G.PreflightRefused, match=str(why)):
            P.preflight_safe_tx(safe, tx, allow, multisend_call_only=a["multisend_call_only"], simulate=sim)


def test_service_answering_another_hash_is_refused(gov_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv, sim: Any, store: AuditStore) -> None:
    class LyingService:
        def propose(self, tx: Any, proposer: Any) -> bytes:
            return b"\x11" * 32

    a = gov_chain.addresses
    module = Account.create().address
    to, data = S.enable_module_call(a["safe"], module)
    bot = Account.from_key(gov_chain.bot_key)
    with pytest.raises(G.PreflightRefused, match=r"proposed hash 0x(11){32} differs"):
        P.propose_safe_tx(safe, LyingService(), safe.build_tx(to, 0, data), bot, _setup_allowlist(gov_chain, roles_env),
                          multisend_call_only=None, simulate=sim, expected_module_changes=[module], store=store)
    assert store.events(event="proposal") == []
    assert "differs from the pre-flighted one" in store.events(event="refusal")[-1].reason
