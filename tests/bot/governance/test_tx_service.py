"""Safe Transaction Service client against a loopback server speaking the service's API:
delegate proposal, owner confirmations, pending by nonce; forged answers detected."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from adapters.evm import safe as S
from adapters.safe_tx_service import ForgedAnswer, SafeTxServiceClient, TxServiceError
from bot.devchain import DevChain
from tests.bot.governance.tx_service_server import TxServiceServer

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
    client.confirm(h, owners[0])
    client.confirm(h, owners[2])
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
    client.confirm(h, owners[2])
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
