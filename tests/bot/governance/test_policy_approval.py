"""Approved policy: the Safe's own EIP-1271 verdict decides, with the current owners."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.evm import safe as S
from bot import governance as G
from bot.audit_store import AuditStore
from bot.devchain import DevChain
from tests.bot.governance.conftest import execute_with_owners

pytestmark = pytest.mark.xdist_group("governance")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=st.binary(min_size=0, max_size=200))
def test_safe_message_hash_equals_the_safes_own_getMessageHash(safe: S.SafeAdapter, message: bytes) -> None:
    local = S.safe_message_hash(safe.chain_id, safe.address, message)
    assert local == safe.get_message_hash(message)  # CompatibilityFallbackHandler on-chain
    assert local == bytes(safe.safe.get_message_hash(message))  # safe-eth-py, independently


# Safe 1.4.1 constants, written out (CompatibilityFallbackHandler.SAFE_MSG_TYPEHASH,
# Safe.DOMAIN_SEPARATOR_TYPEHASH): the reference below does not use the code under test.
SAFE_MSG_TYPEHASH = bytes.fromhex("60b3cbf8b4a223d68d641b3b6ddf9a298e7f33710cf3d3a9d1146b5a6150fbca")
DOMAIN_SEPARATOR_TYPEHASH = bytes.fromhex("47e79534a245952e8b16893a336b85a3d9ea9fa8c573f3d803afb92a79469218")


def test_safe_message_hash_by_hand_matches_local_and_chain(safe: S.SafeAdapter) -> None:
    # What Safe{Wallet} computes for a message: EIP-712 over SafeMessage(bytes message) in the
    # Safe's domain {chainId, verifyingContract}, derived here byte by byte.
    assert keccak(text="SafeMessage(bytes message)") == SAFE_MSG_TYPEHASH
    assert keccak(text="EIP712Domain(uint256 chainId,address verifyingContract)") == DOMAIN_SEPARATOR_TYPEHASH
    domain = keccak(DOMAIN_SEPARATOR_TYPEHASH + safe.chain_id.to_bytes(32, "big") + bytes.fromhex(safe.address[2:]).rjust(32, b"\0"))
    assert domain == bytes(safe.contract.functions.domainSeparator().call())
    for message in (b"", b"\x01" * 32, b"lphedge: approve policy 0x00"):
        by_hand = keccak(b"\x19\x01" + domain + keccak(SAFE_MSG_TYPEHASH + keccak(message)))
        assert S.safe_message_hash(safe.chain_id, safe.address, message) == by_hand == safe.get_message_hash(message)
    other_chain = keccak(DOMAIN_SEPARATOR_TYPEHASH + (safe.chain_id + 1).to_bytes(32, "big") + bytes.fromhex(safe.address[2:]).rjust(32, b"\0"))
    assert S.safe_message_hash(safe.chain_id + 1, safe.address, b"") == keccak(b"\x19\x01" + other_chain + keccak(SAFE_MSG_TYPEHASH + keccak(b"")))


def test_text_message_is_wrapped_like_safe_wallet(safe: S.SafeAdapter) -> None:
    # Safe{Wallet}: safeMessageHash = getMessageHash(hashMessage(text)); hashMessage is EIP-191.
    text = "lphedge: approve policy 0x" + "ab" * 32
    reference = keccak(b"\x19Ethereum Signed Message:\n" + str(len(text)).encode() + text.encode())
    assert S.text_message_hash(text) == reference
    req = G.approval_request(bytes.fromhex("ab" * 32), safe.chain_id, safe.address)
    assert req.text == text and req.data_hash == reference
    assert safe.get_message_hash(reference) == req.safe_message_hash


def test_one_signature_refused_two_accepted(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, policy_text: str) -> None:
    content = policy_text.encode()
    gate = G.PolicyGate(safe, store)
    one = [G.sign_policy(content, owners[0], safe.chain_id, safe.address)]
    with pytest.raises(G.PolicyNotApproved, match="GS020"):
        gate.approve(content, one)
    two = [*one, G.sign_policy(content, owners[2], safe.chain_id, safe.address)]
    approval = gate.approve(content, two)
    assert approval.policy_hash == "0x" + G.policy_hash_of_bytes(content).hex()
    loaded = gate.load_bytes(content)
    assert loaded.from_file and loaded.policy_hash.hex() == approval.policy_hash[2:]
    events = [e.event for e in store.events()]
    assert events == ["verification", "refusal", "verification", "approval"]


def test_edited_policy_refused_last_approved_kept(
    safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, policy_text: str, tmp_path: Path
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(policy_text)
    gate = G.PolicyGate(safe, store)
    with pytest.raises(G.PolicyNotApproved, match="not approved by the Safe"):
        gate.load(path)  # nothing approved yet: refuse outright
    content = path.read_bytes()
    gate.approve(content, [G.sign_policy(content, o, safe.chain_id, safe.address) for o in owners[:2]])
    assert gate.load(path).from_file
    path.write_text(policy_text.replace('name = "governance test"', 'name = "edited by one person"'))
    loaded = gate.load(path)
    assert not loaded.from_file
    assert loaded.content == content  # still the approved bytes
    assert "is not approved by the Safe" in loaded.warning and "last approved" in loaded.warning
    assert store.events(event="refusal")[-1].subject_hash == "0x" + G.policy_hash_of_bytes(path.read_bytes()).hex()


def test_signature_for_another_policy_refused(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, policy_text: str) -> None:
    content = policy_text.encode()
    other = policy_text.replace("governance test", "other").encode()
    sigs = [G.sign_policy(other, o, safe.chain_id, safe.address) for o in owners[:2]]
    with pytest.raises(G.PolicyNotApproved, match="signature is for policy"):
        G.PolicyGate(safe, store).approve(content, sigs)


def test_after_swap_owner_removed_owners_signature_no_longer_counts(
    clean_chain: DevChain, safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, policy_text: str
) -> None:
    content = policy_text.encode()
    gate = G.PolicyGate(safe, store)
    sigs = {o.address: G.sign_policy(content, o, safe.chain_id, safe.address) for o in owners}
    gate.approve(content, [sigs[owners[0].address], sigs[owners[1].address]])
    assert gate.load_bytes(content).from_file

    newcomer = Account.create()
    to, data = S.swap_owner_call(safe, owners[0].address, newcomer.address)
    swap = safe.build_tx(to, 0, data)
    execute_with_owners(safe, swap, clean_chain.owner_keys[1:3], clean_chain.deployer.key.hex())
    assert owners[0].address not in safe.owners() and newcomer.address in safe.owners()

    # The recorded approval relied on the removed owner: no longer valid on-chain.
    with pytest.raises(G.PolicyNotApproved, match="GS026"):
        gate.load_bytes(content)
    with pytest.raises(G.PolicyNotApproved, match="GS026"):
        gate.approve(content, [sigs[owners[0].address], sigs[owners[2].address]])
    # The policy pins the old owners (issue 9): two current owners re-approving it are refused,
    # since the chain no longer shows what it pins...
    with pytest.raises(G.PolicyNotApproved, match="pins a Safe the chain does not show"):
        gate.approve(content, [sigs[owners[2].address], G.sign_policy(content, newcomer, safe.chain_id, safe.address)])
    # ...a new policy (higher sequence) pinning the new owners, signed by two current owners
    # who were also owners under the policy in force: accepted.
    from tests.bot.governance.conftest import POLICY_TEXT

    pins = f"sequence = 1\nowners = {[o for o in safe.owners()]!r}\nthreshold = 2".replace("'", '"')
    rotated = POLICY_TEXT.format(tighten="false", pool=clean_chain.pools["WETH/USDC/500"], pins=pins).encode()
    with pytest.raises(G.PolicyNotApproved, match="1 of the pinned owners signed, 2 required"):
        gate.approve(rotated, [G.sign_policy(rotated, a, safe.chain_id, safe.address) for a in (owners[2], newcomer)])
    gate.approve(rotated, [G.sign_policy(rotated, a, safe.chain_id, safe.address) for a in (owners[1], owners[2])])
    assert gate.load_bytes(rotated).from_file and gate.load_bytes(rotated).sequence == 1


def test_bad_and_duplicate_policy_signatures_refused_and_logged(
    safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, policy_text: str
) -> None:
    content = policy_text.encode()
    gate = G.PolicyGate(safe, store)
    s0 = G.sign_policy(content, owners[0], safe.chain_id, safe.address)
    phash = "0x" + G.policy_hash_of_bytes(content).hex()
    with pytest.raises(G.PolicyNotApproved, match=f"duplicate signer {owners[0].address}"):
        gate.approve(content, [s0, dict(s0)])
    with pytest.raises(G.PolicyNotApproved, match="signature file 2: missing field 'signature'"):
        gate.approve(content, [s0, {"policy_hash": phash}])
    with pytest.raises(G.PolicyNotApproved, match="signature file 1: unusable signature"):
        gate.approve(content, [{**s0, "signature": "0x" + "11" * 64}])  # 64 bytes, not 65
    reasons = [e.reason for e in store.events(event="refusal")]
    assert len(reasons) == 3 and all(e.subject_hash == phash for e in store.events(event="refusal"))
    assert store.policy_approvals(safe.chain_id, safe.address) == []


def test_policy_signed_on_chain_by_the_safe_is_accepted(
    clean_chain: DevChain, safe: S.SafeAdapter, store: AuditStore, policy_text: str
) -> None:
    # Safe{Wallet}'s on-chain message signing: a threshold-signed DELEGATECALL to SignMessageLib
    # (bytecode shipped in safe-eth-py) marks the SafeMessage hash signed; isValidSignature with
    # an empty signature then answers the magic value.
    from safe_eth.eth.contracts import get_sign_message_lib_contract

    content = policy_text.encode()
    gate = G.PolicyGate(safe, store)
    with pytest.raises(G.PolicyNotApproved, match="not approved by the Safe"):
        gate.load_bytes(content)
    lib = get_sign_message_lib_contract(clean_chain.w3)
    lib_address = clean_chain.transact(lib.constructor())["contractAddress"]
    req = G.approval_request(G.policy_hash_of_bytes(content), safe.chain_id, safe.address)
    data = bytes.fromhex(lib.functions.signMessage(req.data_hash)._encode_transaction_data()[2:])
    tx = safe.build_tx(lib_address, 0, data, operation=1)
    execute_with_owners(safe, tx, clean_chain.owner_keys[:2], clean_chain.deployer.key.hex())
    assert safe.contract.functions.signedMessages(req.safe_message_hash).call() == 1  # the Safe's own record
    loaded = gate.load_bytes(content)
    assert loaded.from_file and loaded.policy_hash == req.policy_hash
    # and only that message: an edited policy is still refused (the on-chain approval, now
    # recorded with its sequence, is what keeps running)
    edited = gate.load_bytes(content.replace(b"governance test", b"edited"))
    assert not edited.from_file and edited.content == content
    assert "not approved by the Safe" in edited.warning


def test_tampered_stored_policy_bytes_are_never_run(
    safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, policy_text: str
) -> None:
    # Someone with write access to the database swaps the approved bytes behind the recorded
    # hash and signatures: the fallback to "last approved" must not hand them to the bot.
    from sqlmodel import Session

    from bot.audit_store import PolicyApproval

    content = policy_text.encode()
    gate = G.PolicyGate(safe, store)
    gate.approve(content, [G.sign_policy(content, o, safe.chain_id, safe.address) for o in owners[:2]])
    evil = content.replace(b"single_owner_may_tighten = false", b"single_owner_may_tighten = true")
    assert evil != content
    with Session(store.engine) as session:
        row = session.get(PolicyApproval, store.policy_approvals(safe.chain_id, safe.address)[0].id)
        assert row is not None
        row.content = evil
        session.add(row)
        session.commit()
    with pytest.raises(G.PolicyNotApproved, match="not approved by the Safe"):
        gate.load_bytes(evil)  # neither as the file...
    with pytest.raises(G.PolicyNotApproved, match="not approved by the Safe"):
        gate.load_bytes(content.replace(b"governance test", b"edited"))  # ...nor as the fallback


class _WrongChainId:
    """A Safe view that believes it is on another chain (misconfigured RPC or chain id)."""

    def __init__(self, safe: S.SafeAdapter) -> None:
        self._safe = safe
        self.chain_id = safe.chain_id + 1

    def __getattr__(self, name: str) -> object:
        return getattr(self._safe, name)


def test_local_message_hash_disagreeing_with_the_safe_is_refused(
    safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, policy_text: str
) -> None:
    content = policy_text.encode()
    sigs = [G.sign_policy(content, o, safe.chain_id, safe.address) for o in owners[:2]]
    with pytest.raises(G.PolicyNotApproved, match="differs from the Safe's getMessageHash"):
        G.PolicyGate(_WrongChainId(safe), store).approve(content, sigs)  # type: ignore[arg-type]
    assert "getMessageHash" in store.events(event="refusal")[-1].reason


def test_edited_file_that_no_longer_parses_keeps_the_last_approved(
    safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, policy_text: str, tmp_path: Path
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(policy_text)
    content = path.read_bytes()
    gate = G.PolicyGate(safe, store)
    gate.approve(content, [G.sign_policy(content, o, safe.chain_id, safe.address) for o in owners[1:]])
    for broken in ("this is [not toml", policy_text.replace("override_max_ttl_hours = 48", "override_max_ttl_hours = -1")):
        path.write_text(broken)
        loaded = gate.load(path)
        assert not loaded.from_file and loaded.content == content
        assert "is refused: policy file invalid" in loaded.warning and "last approved" in loaded.warning
        assert store.events(event="refusal")[-1].subject_hash == "0x" + keccak(broken.encode()).hex()
    # and with nothing approved, the same file is refused outright, one line
    with pytest.raises(G.PolicyNotApproved, match="policy file invalid"):
        G.PolicyGate(safe, AuditStore(f"sqlite:///{tmp_path / 'empty.db'}")).load(path)
