"""Safe Transaction Service client against a loopback server speaking the service's API:
delegate proposal, owner confirmations, pending by nonce; forged answers detected."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from hexbytes import HexBytes

from adapters.evm import safe as S
from adapters.safe_tx_service import ForgedAnswer, SafeTxServiceClient, TxServiceError
from bot.devchain import DevChain
from tests.bot.governance.tx_service_server import TxServiceServer

S_EXECUTION_SUCCESS = bytes(keccak(text="ExecutionSuccess(bytes32,uint256)"))  # derived here, not imported

pytestmark = pytest.mark.xdist_group("governance")


@pytest.fixture
def service(gov_chain: DevChain) -> Iterator[TxServiceServer]:
    server = TxServiceServer(gov_chain.url, gov_chain.chain_id).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(service: TxServiceServer, safe: S.SafeAdapter) -> SafeTxServiceClient:
    return SafeTxServiceClient(service.url, safe)


def _tx(gov_chain: DevChain, safe: S.SafeAdapter, nonce_offset: int = 0) -> Any:
    weth = gov_chain.tokens["WETH"].address
    erc = gov_chain.contract("ERC20", weth)
    data = bytes.fromhex(erc.functions.approve(gov_chain.addresses["swap_router"], 10**18)._encode_transaction_data()[2:])
    return safe.build_tx(weth, 0, data, nonce=safe.nonce() + nonce_offset)


def test_delegate_proposes_owners_confirm_then_it_executes(
    clean_chain: DevChain, safe: S.SafeAdapter, owners: list[LocalAccount], client: SafeTxServiceClient, service: TxServiceServer
) -> None:
    bot = Account.from_key(clean_chain.bot_key)
    with pytest.raises(TxServiceError, match="not an owner or delegate"):
        client.propose(_tx(clean_chain, safe), bot)  # not yet a delegate
    client.add_delegate(bot.address, owners[0])
    tx = _tx(clean_chain, safe)
    h = client.propose(tx, bot)
    assert h == safe.onchain_tx_hash(tx)
    got = client.get(h)
    assert got.safe_tx_hash == h and got.proposer == bot.address
    assert got.confirmations == ()  # the delegate's signature is no confirmation
    client.confirm(h, owners[0], preflight=lambda tx: None)  # (the pre-flight path: test_finding_7_*)
    client.confirm(h, owners[2], preflight=lambda tx: None)
    got = client.get(h)
    assert {c.owner for c in got.confirmations} == {owners[0].address, owners[2].address}
    # The verified confirmations are enough for the Safe itself.
    sigs = S.pack_signatures([(c.owner, c.signature) for c in got.confirmations])
    assert safe.contract.functions.checkSignatures(h, bytes(got.safe_tx.data), sigs).call() == []
    got.safe_tx.signatures = sigs
    tx_hash, _ = got.safe_tx.execute(clean_chain.deployer.key.hex())
    assert clean_chain.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1
    assert ("POST", f"/api/v2/safes/{safe.address}/multisig-transactions/") in service.requests


def test_pending_by_nonce(safe: S.SafeAdapter, owners: list[LocalAccount], client: SafeTxServiceClient, gov_chain: DevChain) -> None:
    hashes = [client.propose(_tx(gov_chain, safe, k), owners[1]) for k in (2, 0, 1)]
    pending = client.pending()
    assert [p.nonce - safe.nonce() for p in pending] == [0, 1, 2]
    assert {p.safe_tx_hash for p in pending} == set(hashes)
    assert all(p.confirmations[0].owner == owners[1].address for p in pending)  # owner proposer confirms
    assert [p.nonce for p in client.pending(safe.nonce() + 2)] == [safe.nonce() + 2]


def test_forged_answer_detected_and_refused(safe: S.SafeAdapter, owners: list[LocalAccount], client: SafeTxServiceClient,
                                            service: TxServiceServer, gov_chain: DevChain) -> None:
    h = client.propose(_tx(gov_chain, safe), owners[1])
    attacker = Account.create().address
    # The service now shows the same safeTxHash with a different target (a Bybit-style swap).
    service.tamper(h, to=attacker)
    with pytest.raises(ForgedAnswer):
        client.get(h)
    with pytest.raises(ForgedAnswer, match="forged answer"):
        client.pending()
    # Changing only the operation to DELEGATECALL is caught the same way.
    service.tamper(h, to=gov_chain.tokens["WETH"].address, operation=1)
    with pytest.raises(ForgedAnswer):
        client.pending()


def test_forged_confirmation_does_not_count(safe: S.SafeAdapter, owners: list[LocalAccount], client: SafeTxServiceClient,
                                            service: TxServiceServer, gov_chain: DevChain) -> None:
    h = client.propose(_tx(gov_chain, safe), owners[1])
    stranger = Account.create()
    forged = [
        # a real owner's name on a stranger's signature
        {"owner": owners[0].address, "signature": "0x" + bytes(stranger.unsafe_sign_hash(h).signature).hex(),
         "signatureType": "EOA", "submissionDate": None, "transactionHash": None},
        # a non-owner's genuine signature
        {"owner": stranger.address, "signature": "0x" + bytes(stranger.unsafe_sign_hash(h).signature).hex(),
         "signatureType": "EOA", "submissionDate": None, "transactionHash": None},
    ]
    junk = [{"owner": "0xnot-an-address", "signature": forged[1]["signature"]},
            {"owner": owners[2].address, "signature": "0xzz"}]
    service.txs["0x" + h.hex()]["confirmations"] += forged
    got = client.get(h)
    assert [c.owner for c in got.confirmations] == [owners[1].address]
    assert len(got.ignored) == 2 and "was made by" in got.ignored[0] and "not a current owner" in got.ignored[1]
    # junk in a confirmation: never a crash; listed as unusable (pending) or the answer refused (get)
    service.txs["0x" + h.hex()]["confirmations"] += junk
    [pending] = client.pending()
    assert [c.owner for c in pending.confirmations] == [owners[1].address]
    assert len(pending.ignored) == 4 and all("unusable confirmation" in i for i in pending.ignored[2:])
    with pytest.raises(ForgedAnswer, match="malformed answer"):
        client.get(h)


def test_service_refuses_proposal_with_wrong_hash(safe: S.SafeAdapter, owners: list[LocalAccount], service: TxServiceServer, gov_chain: DevChain) -> None:
    import requests

    tx = _tx(gov_chain, safe)
    sig = tx.sign(owners[0].key.hex())
    body = {
        "to": tx.to, "value": tx.value, "data": "0x" + bytes(tx.data).hex(), "operation": tx.operation,
        "gasToken": tx.gas_token, "safeTxGas": 0, "baseGas": 0, "gasPrice": 0, "refundReceiver": tx.refund_receiver,
        "nonce": tx.safe_nonce + 1,  # fields no longer match the hash below
        "contractTransactionHash": "0x" + bytes(tx.safe_tx_hash).hex(), "sender": owners[0].address,
        "signature": "0x" + sig.hex(), "origin": "test",
    }
    resp = requests.post(f"{service.url}/api/v2/safes/{safe.address}/multisig-transactions/", json=body, timeout=5)
    assert resp.status_code == 422 and "does not match" in resp.text
    body["nonce"] = tx.safe_nonce
    assert requests.post(f"{service.url}/api/v2/safes/{safe.address}/multisig-transactions/", json=body, timeout=5).status_code == 201


def test_bot_proposes_only_after_preflight(safe: S.SafeAdapter, client: SafeTxServiceClient, service: TxServiceServer,
                                           gov_chain: DevChain, gov_fork: Any, owners: list[LocalAccount], tmp_path: Any) -> None:
    from bot import governance as G
    from bot import preflight as P
    from bot.audit_store import AuditStore
    from tests.bot.governance.conftest import refresh_fork

    store = AuditStore(f"sqlite:///{tmp_path / 'a.db'}")
    bot = Account.from_key(gov_chain.bot_key)
    client.add_delegate(bot.address, owners[1])
    a = gov_chain.addresses
    allow = P.bot_scope_allowlist(a["position_manager"], a["swap_router"], [t.address for t in gov_chain.tokens.values()])
    refresh_fork(gov_fork, gov_chain.url)
    sim = P.fork_simulator(gov_fork.url, safe.address)
    rep = P.propose_safe_tx(safe, client, _tx(gov_chain, safe), bot, allow, multisend_call_only=None, simulate=sim, store=store)
    assert client.get(rep.safe_tx_hash).proposer == bot.address
    assert [e.event for e in store.events(subject_hash=rep.safe_tx_hash)] == ["verification", "proposal"]
    # a transfer out is not on the allowlist: refused before anything reaches the service
    erc = gov_chain.contract("ERC20", gov_chain.tokens["WETH"].address)
    bad = safe.build_tx(erc.address, 0, bytes.fromhex(erc.functions.transfer(bot.address, 1)._encode_transaction_data()[2:]))
    n = len(service.txs)
    with pytest.raises(G.PreflightRefused, match="not on the allowlist"):
        P.propose_safe_tx(safe, client, bad, bot, allow, multisend_call_only=None, simulate=sim, store=store)
    assert len(service.txs) == n and store.events(event="refusal")


def test_unknown_foreign_and_duplicated_answers(safe: S.SafeAdapter, owners: list[LocalAccount], client: SafeTxServiceClient,
                                               service: TxServiceServer, gov_chain: DevChain) -> None:
    with pytest.raises(TxServiceError, match="has no transaction"):
        client.get(b"\x22" * 32)
    h = client.propose(_tx(gov_chain, safe), owners[1])
    client.confirm(h, owners[2], preflight=lambda tx: None)
    # the same owner's confirmation listed twice counts once
    stored = service.txs["0x" + h.hex()]
    stored["confirmations"].append(dict(stored["confirmations"][-1]))
    got = client.get(h)
    assert [c.owner for c in got.confirmations] == [owners[1].address, owners[2].address]
    assert got.ignored == (f"{owners[2].address}: duplicate confirmation",)
    # an answer about another Safe is refused outright
    other = Account.create().address
    service.tamper(h, safe=other)
    with pytest.raises(ForgedAnswer, match=f"answer is for Safe {other}"):
        client._verify(service.txs["0x" + h.hex()])


def test_service_rejects_non_checksummed_safe_in_path_like_the_real_one(safe: S.SafeAdapter, service: TxServiceServer) -> None:
    import requests

    resp = requests.get(f"{service.url}/api/v2/safes/{safe.address.lower()}/multisig-transactions/", timeout=5)
    assert resp.status_code == 422 and resp.json()["message"] == "Checksum address validation failed"
    ok = requests.get(f"{service.url}/api/v2/safes/{safe.address}/multisig-transactions/", timeout=5).json()
    assert set(ok) == {"count", "next", "previous", "results", "countUniqueNonce"}


def test_eth_sign_confirmation_counts_and_the_safe_agrees(clean_chain: DevChain, safe: S.SafeAdapter, owners: list[LocalAccount],
                                                         client: SafeTxServiceClient, service: TxServiceServer) -> None:
    # Some wallets confirm through Safe{Wallet} with eth_sign: v + 4 over EIP-191(safeTxHash).
    from eth_account.messages import encode_defunct

    h = client.propose(_tx(clean_chain, safe), owners[1])
    signed = owners[0].sign_message(encode_defunct(primitive=h))
    sig = bytes(signed.signature)[:64] + bytes([bytes(signed.signature)[64] + 4])
    service.txs["0x" + h.hex()]["confirmations"].append(
        {"owner": owners[0].address, "signature": "0x" + sig.hex(), "signatureType": "ETH_SIGN",
         "submissionDate": None, "transactionHash": None})
    got = client.get(h)
    assert {c.owner for c in got.confirmations} == {owners[0].address, owners[1].address} and got.ignored == ()
    packed = S.pack_signatures([(c.owner, c.signature) for c in got.confirmations])
    assert safe.contract.functions.checkSignatures(h, bytes(got.safe_tx.data), packed).call() == []
    # the same bytes with v 27/28 over the raw hash would be someone else: not counted
    wrong = sig[:64] + bytes([sig[64] - 4])
    service.txs["0x" + h.hex()]["confirmations"][-1]["signature"] = "0x" + wrong.hex()
    assert [c.owner for c in client.get(h).confirmations] == [owners[1].address]


# ------------------------------------------------------------------ issue 9, finding 7
def _bot_allowlist(chain: DevChain) -> Any:
    from bot import preflight as P

    a = chain.addresses
    return P.bot_scope_allowlist(a["position_manager"], a["swap_router"], [t.address for t in chain.tokens.values()])


def _confirm(chain: DevChain, safe: S.SafeAdapter, client: SafeTxServiceClient, h: bytes, owner: LocalAccount,
             fork: Any, store: Any, allowlist: Any = None) -> Any:
    from bot import preflight as P
    from tests.bot.governance.conftest import refresh_fork

    refresh_fork(fork, chain.url)
    return P.confirm_safe_tx(safe, client, h, owner, allowlist or _bot_allowlist(chain),
                             multisend_call_only=chain.addresses["multisend_call_only"],
                             simulate=P.fork_simulator(fork.url, safe.address), store=store)


def test_finding_7_delegate_posted_add_owner_is_refused_before_any_owner_signs(
    clean_chain: DevChain, safe: S.SafeAdapter, owners: list[LocalAccount], client: SafeTxServiceClient,
    service: TxServiceServer, gov_fork: Any, tmp_path: Any,
) -> None:
    from bot import governance as G
    from bot import preflight as P
    from bot.audit_store import AuditStore

    store = AuditStore(f"sqlite:///{tmp_path / 'a.db'}")
    bot = Account.from_key(clean_chain.bot_key)
    client.add_delegate(bot.address, owners[0])
    # The attack: the bot, as a delegate, posts addOwnerWithThreshold(bot, 1) straight to the
    # service (skipping its own pre-flight), and an owner is asked to confirm it.
    data = bytes(HexBytes(safe.contract.functions.addOwnerWithThreshold(bot.address, 1)._encode_transaction_data()))
    attack = safe.build_tx(safe.address, 0, data)
    h = client.propose(attack, bot)
    # ... also wrapped in a MultiSendCallOnly batch next to a harmless approve
    msco = clean_chain.addresses["multisend_call_only"]
    weth = clean_chain.tokens["WETH"].address
    approve = bytes(_tx(clean_chain, safe).data)
    batch = S.multisend_call_only_tx(safe, msco, [(weth, approve), (safe.address, data)])
    batch.safe_nonce = safe.nonce() + 1
    hb = client.propose(batch, bot)
    for target, allow in ((h, None), (h, P.roles_setup_allowlist(safe.address, clean_chain.addresses["safe"])),
                          (hb, None)):
        with pytest.raises(G.PreflightRefused, match=r"not on the allowlist") as refused:
            _confirm(clean_chain, safe, client, target, owners[0], gov_fork, store, allow)
        assert "addOwnerWithThreshold" in str(refused.value) or "0x0d582f13" in str(refused.value)
        assert store.events(event="refusal", subject_hash=target)[-1].reason == str(refused.value)
        # nothing was signed: the service holds no owner's confirmation
        assert client.get(target).confirmations == ()
    assert not store.events(event="signature")
    assert safe.owners() == [o.address for o in owners] and safe.threshold() == 2


def test_confirm_after_preflight_and_execution_read_from_the_chain(
    clean_chain: DevChain, safe: S.SafeAdapter, owners: list[LocalAccount], client: SafeTxServiceClient,
    service: TxServiceServer, gov_fork: Any, tmp_path: Any,
) -> None:
    from bot.audit_store import AuditStore

    store = AuditStore(f"sqlite:///{tmp_path / 'a.db'}")
    bot = Account.from_key(clean_chain.bot_key)
    client.add_delegate(bot.address, owners[0])
    tx = _tx(clean_chain, safe)
    # a competing transaction for the same nonce
    other = safe.build_tx(clean_chain.tokens["USDC"].address, 0, bytes(tx.data), nonce=tx.safe_nonce)
    h, h_other = client.propose(tx, bot), client.propose(other, bot)
    for o in (owners[0], owners[2]):
        report = _confirm(clean_chain, safe, client, h, o, gov_fork, store)
        assert report.safe_tx_hash == h and report.simulation is not None and report.simulation.success
    assert [e.actor for e in store.events(event="signature", subject_hash=h)] == [owners[0].address, owners[2].address]
    got = client.get(h)
    assert got.execution == "pending" and {c.owner for c in got.confirmations} == {owners[0].address, owners[2].address}
    # A service lying "executed" about a pending transaction is not believed, and cannot hide it.
    service.tamper(h, isExecuted=True, isSuccessful=True, blockNumber=1, transactionHash="0x" + "ab" * 32)
    got = client.get(h)
    assert got.service_says_executed and got.execution == "pending" and not got.is_executed
    assert h in {p.safe_tx_hash for p in client.pending()}
    # executed on the chain with the verified confirmations
    got.safe_tx.signatures = S.pack_signatures([(c.owner, c.signature) for c in got.confirmations])
    tx_hash, _ = got.safe_tx.execute(clean_chain.deployer.key.hex())
    receipt = clean_chain.w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    # the service now lies the other way ("not executed"): the chain's event decides
    service.tamper(h, isExecuted=False, isSuccessful=None, blockNumber=None, transactionHash=None)
    got = client.get(h)
    assert (got.execution, got.is_executed, got.service_says_executed) == ("success", True, False)
    [event] = [log for log in receipt["logs"] if bytes(log["topics"][0]) == S_EXECUTION_SUCCESS]
    assert bytes(event["topics"][1]) == h  # the Safe's own ExecutionSuccess(txHash) names this hash
    assert client.pending() == []
    # the competitor for the used nonce can never execute; confirming either is refused
    assert client.get(h_other).execution == "replaced"
    for target, state in ((h, "success"), (h_other, "replaced")):
        with pytest.raises(TxServiceError, match=f"the chain shows it {state}"):
            _confirm(clean_chain, safe, client, target, owners[1], gov_fork, store)
        assert f"the chain shows it {state}" in store.events(event="refusal", subject_hash=target)[-1].reason
