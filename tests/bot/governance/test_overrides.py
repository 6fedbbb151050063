"""Overrides: EIP-712 typed messages, verified by the Safe against current owners/threshold.
One test per refusal; each refusal is also in the audit table with its reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.evm import safe as S
from bot import governance as G
from bot.audit_store import AuditStore
from policies import overrides as override_rules
from policies import policy_file

pytestmark = pytest.mark.xdist_group("governance")

NOW = 1_800_000_000
STRICT = policy_file.Governance(single_owner_may_tighten=False, override_max_ttl_hours=48)
LENIENT = policy_file.Governance(single_owner_may_tighten=True, override_max_ttl_hours=48)


def proposal(safe: S.SafeAdapter, kind: str = "disable_hedging", params: dict[str, Any] | None = None,
             nonce: int = 0, expiry: int = NOW + 3600, chain_id: int | None = None, safe_addr: str | None = None) -> G.OverrideProposal:
    return G.propose_override(
        kind, params or {}, "test: manual intervention", chain_id or safe.chain_id,
        safe_addr or safe.address, nonce, expiry,
    )


def signed(p: G.OverrideProposal, *accounts: LocalAccount) -> list[dict[str, Any]]:
    # round-trip through JSON like files on disk
    return [json.loads(json.dumps(G.sign_override(p, a))) for a in accounts]


def refusal_reasons(store: AuditStore) -> list[str]:
    return [e.reason for e in store.events(event="refusal")]


def test_typed_data_hash_is_eth_account_eip712_and_safe_wraps_it(safe: S.SafeAdapter) -> None:
    p = proposal(safe, "pause_layer", {"layer": "short"})
    from eth_account.messages import encode_typed_data

    msg = encode_typed_data(full_message=p.typed_data)
    assert p.override_hash == S.eip191_hash(msg)
    assert p.safe_message_hash == safe.get_message_hash(p.override_hash)  # the Safe agrees
    assert p.message["params"] == '{"layer":"short"}'


def test_override_hash_by_hand(safe: S.SafeAdapter) -> None:
    # EIP-712 written out with keccak and eth_abi, not eth-account: what a hardware wallet or
    # Safe{Wallet} (hashTypedData) computes for the typed data `override propose` prints.
    from eth_abi.abi import encode as abi_encode
    from eth_utils.crypto import keccak

    p = proposal(safe, "change_cap", {"value": "0.5", "cap": "session_budget_fraction"}, nonce=42, expiry=NOW + 60)
    domain_type = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    override_type = keccak(text="Override(string kind,string params,string reason,uint256 chainId,address safe,bytes32 policyHash,uint256 nonce,uint256 expiry)")
    domain = keccak(abi_encode(["bytes32", "bytes32", "bytes32", "uint256", "address"],
                               [domain_type, keccak(b"lphedge"), keccak(b"1"), safe.chain_id, safe.address]))
    params = '{"cap":"session_budget_fraction","value":"0.5"}'  # canonical: sorted keys, no spaces
    struct = keccak(abi_encode(
        ["bytes32", "bytes32", "bytes32", "bytes32", "uint256", "address", "bytes32", "uint256", "uint256"],
        [override_type, keccak(b"change_cap"), keccak(params.encode()), keccak(b"test: manual intervention"),
         safe.chain_id, safe.address, b"\0" * 32, 42, NOW + 60],
    ))
    by_hand = keccak(b"\x19\x01" + domain + struct)
    assert p.message["params"] == params
    assert p.override_hash == by_hand
    assert p.safe_message_hash == safe.get_message_hash(by_hand)  # what the owners sign, per the Safe


def test_two_owners_apply_once(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore) -> None:
    p = proposal(safe, "pause_layer", {"layer": "structural"})
    gate = G.OverrideGate(safe, store, STRICT)
    applied = gate.apply([p.to_json(), *signed(p, owners[0], owners[1])], now=NOW)
    assert applied.required == 2
    assert sorted(applied.signers) == sorted([owners[0].address, owners[1].address])
    active = store.active_overrides(safe.chain_id, safe.address, NOW)
    assert [o.kind for o in active] == ["pause_layer"] and active[0].params == '{"layer":"structural"}'
    assert store.active_overrides(safe.chain_id, safe.address, NOW + 3600) == []  # expired
    events = [e.event for e in store.events(subject_hash=p.override_hash)]
    assert events == ["signature", "signature", "verification", "application"]


def test_refused_replayed(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore) -> None:
    p = proposal(safe)
    gate = G.OverrideGate(safe, store, STRICT)
    docs = signed(p, owners[0], owners[1])
    gate.apply(docs, now=NOW)
    with pytest.raises(G.OverrideRefused, match=f"replayed: override 0x{p.override_hash.hex()} was already applied"):
        gate.apply(docs, now=NOW + 1)
    # Same nonce, different content: also a replay of the nonce.
    q = proposal(safe, "emergency_exit", nonce=0)
    with pytest.raises(G.OverrideRefused, match="nonce 0 was already used"):
        gate.apply(signed(q, owners[0], owners[1]), now=NOW)
    assert len(store.active_overrides(safe.chain_id, safe.address, NOW)) == 1
    assert sum("replayed" in r for r in refusal_reasons(store)) == 2


def test_refused_expired(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore) -> None:
    p = proposal(safe, expiry=NOW)
    with pytest.raises(G.OverrideRefused, match="expired"):
        G.OverrideGate(safe, store, STRICT).apply(signed(p, owners[0], owners[1]), now=NOW)
    assert "expired" in refusal_reasons(store)[-1]


def test_refused_expiry_beyond_policy_ttl(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore) -> None:
    p = proposal(safe, expiry=NOW + 49 * 3600)
    with pytest.raises(G.OverrideRefused, match="further than 48"):
        G.OverrideGate(safe, store, STRICT).apply(signed(p, owners[0], owners[1]), now=NOW)
    assert "further than 48" in refusal_reasons(store)[-1]
    # one second inside the limit is accepted
    q = proposal(safe, expiry=NOW + 48 * 3600)
    assert G.OverrideGate(safe, store, STRICT).apply(signed(q, owners[0], owners[1]), now=NOW).record.expiry == NOW + 48 * 3600


def test_refused_wrong_chain(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore) -> None:
    p = proposal(safe, chain_id=1)
    with pytest.raises(G.OverrideRefused, match="wrong chain: override is for chain 1"):
        G.OverrideGate(safe, store, STRICT).apply(signed(p, owners[0], owners[1]), now=NOW)
    assert "wrong chain" in refusal_reasons(store)[-1]


def test_refused_wrong_safe(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore) -> None:
    other = Account.create().address
    p = proposal(safe, safe_addr=other)
    with pytest.raises(G.OverrideRefused, match="wrong Safe"):
        G.OverrideGate(safe, store, STRICT).apply(signed(p, owners[0], owners[1]), now=NOW)
    assert "wrong Safe" in refusal_reasons(store)[-1]


def test_refused_non_owner(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore) -> None:
    stranger = Account.create()
    p = proposal(safe)
    with pytest.raises(G.OverrideRefused, match=f"non-owner signer {stranger.address}"):
        G.OverrideGate(safe, store, STRICT).apply(signed(p, owners[0], stranger), now=NOW)
    assert store.events(event="refusal")[-1].actor == stranger.address


def test_refused_bot_key_is_not_an_owner(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, gov_chain: Any) -> None:
    bot = Account.from_key(gov_chain.bot_key)
    assert bot.address not in safe.owners()
    p = proposal(safe)
    with pytest.raises(G.OverrideRefused, match="non-owner"):
        G.OverrideGate(safe, store, STRICT).apply(signed(p, owners[0], bot), now=NOW)


def test_refused_under_threshold(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore) -> None:
    p = proposal(safe, "change_cap", {"cap": "session_budget_fraction", "value": "0.5"})
    with pytest.raises(G.OverrideRefused, match="under threshold: 1 of 2"):
        G.OverrideGate(safe, store, STRICT).apply(signed(p, owners[2]), now=NOW)
    assert "under threshold" in refusal_reasons(store)[-1]


def test_refused_duplicate_signer(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore) -> None:
    p = proposal(safe)
    docs = signed(p, owners[1], owners[1])
    with pytest.raises(G.OverrideRefused, match=f"duplicate signer {owners[1].address}"):
        G.OverrideGate(safe, store, STRICT).apply(docs, now=NOW)
    assert store.events(event="refusal")[-1].reason == f"duplicate signer {owners[1].address}"
    # and the Safe itself agrees the doubled signature is invalid (GS026)
    sig = bytes.fromhex(docs[0]["signature"][2:])
    assert not safe.is_valid_signature(p.override_hash, sig + sig).valid


def test_tightening_with_one_owner_only_if_policy_allows(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore) -> None:
    p = proposal(safe, "emergency_exit", nonce=7)
    with pytest.raises(G.OverrideRefused, match=r"under threshold: 1 of 2 .*tightening"):
        G.OverrideGate(safe, store, STRICT).apply(signed(p, owners[0]), now=NOW)
    assert "tightening" in refusal_reasons(store)[-1]
    applied = G.OverrideGate(safe, store, LENIENT).apply(signed(p, owners[0]), now=NOW)
    assert applied.required == 1 and applied.signers == [owners[0].address]
    ver = store.events(event="verification")[-1]
    assert "checkNSignatures" in ver.reason  # verified by the Safe on-chain, 1 current owner


@pytest.mark.parametrize("kind, params", [("pause_new_risk", {}), ("emergency_exit", {}), ("add_protection", {"layer": "short"})])
def test_each_tightening_kind_one_owner_when_policy_allows(kind: str, params: dict[str, Any], safe: S.SafeAdapter,
                                                          owners: list[LocalAccount], store: AuditStore) -> None:
    p = proposal(safe, kind, params, nonce=30)
    with pytest.raises(G.OverrideRefused, match="under threshold: 1 of 2"):
        G.OverrideGate(safe, store, STRICT).apply(signed(p, owners[2]), now=NOW)
    assert G.OverrideGate(safe, store, LENIENT).apply(signed(p, owners[2]), now=NOW).required == 1


def test_tightening_single_signature_still_checked_on_chain(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore) -> None:
    stranger = Account.create()
    p = proposal(safe, "pause_new_risk", nonce=8)
    with pytest.raises(G.OverrideRefused, match="non-owner"):
        G.OverrideGate(safe, store, LENIENT).apply(signed(p, stranger), now=NOW)


def test_loosening_always_needs_threshold(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore) -> None:
    # The tightening kinds, written out; every other kind is loosening.
    assert {"pause_new_risk", "emergency_exit", "add_protection"} == G.TIGHTENING_KINDS
    sample = {"layer": "intermediate", "cap": "hedge_ratio", "value": "1", "nonce": 0}
    loosening = [(k, {p: sample[p] for p in need}) for k, need in G.OVERRIDE_KINDS.items() if k not in G.TIGHTENING_KINDS]
    assert {k for k, _ in loosening} >= {"disable_hedging", "close_protection_early", "pause_layer", "resume_layer", "change_cap"}
    for kind, params in loosening:
        p = proposal(safe, kind, params, nonce=20)
        with pytest.raises(G.OverrideRefused, match=r"under threshold: 1 of 2 .*loosening"):
            G.OverrideGate(safe, store, LENIENT).apply(signed(p, owners[0]), now=NOW)
        assert refusal_reasons(store)[-1].endswith(f"loosening override {kind}")


def test_forged_hash_in_file_refused(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore) -> None:
    p = proposal(safe, "pause_layer", {"layer": "short"})
    docs = signed(p, owners[0], owners[1])
    for d in docs:  # someone edits the fields but keeps the hash and signatures
        d["typed_data"]["message"]["params"] = '{"layer":"structural"}'
    with pytest.raises(G.OverrideRefused, match="claims hash"):
        G.OverrideGate(safe, store, STRICT).apply(docs, now=NOW)


def test_signature_claimed_by_someone_else_refused(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore) -> None:
    p = proposal(safe)
    docs = signed(p, owners[0], owners[1])
    docs[1]["signer"] = owners[2].address
    with pytest.raises(G.OverrideRefused, match="was made by"):
        G.OverrideGate(safe, store, STRICT).apply(docs, now=NOW)


def test_bad_kind_and_params_refused(safe: S.SafeAdapter) -> None:
    with pytest.raises(G.OverrideRefused, match="unknown override kind"):
        proposal(safe, "withdraw_everything")
    with pytest.raises(G.OverrideRefused, match="needs params: layer"):
        proposal(safe, "pause_layer", {})
    with pytest.raises(G.OverrideRefused, match="layer must be one of"):
        proposal(safe, "pause_layer", {"layer": "weekly"})


def test_malformed_files_refused_with_the_field_named_and_logged(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore) -> None:
    p = proposal(safe)
    gate = G.OverrideGate(safe, store, STRICT)
    good = signed(p, owners[0], owners[1])
    cases: list[tuple[list[Any], str]] = []
    no_sig = json.loads(json.dumps(good[0]))
    del no_sig["signature"]
    cases.append(([no_sig, good[1]], "missing field 'signature'"))
    bad_hex = json.loads(json.dumps(good[0]))
    bad_hex["signature"] = "0xnothex"
    cases.append(([bad_hex, good[1]], "malformed value"))
    bad_signer = json.loads(json.dumps(good[0]))
    bad_signer["signer"] = "0x1234"
    cases.append(([bad_signer, good[1]], "malformed value"))
    no_nonce = json.loads(json.dumps(good[0]))
    del no_nonce["typed_data"]["message"]["nonce"]
    cases.append(([no_nonce], "nonce"))
    bad_expiry = json.loads(json.dumps(good[0]))
    bad_expiry["typed_data"]["message"]["expiry"] = "tomorrow"
    cases.append(([bad_expiry], "expiry must be a non-negative integer, got 'tomorrow'"))
    no_typed = {"type": "lphedge.override-signature", "signature": good[0]["signature"]}
    cases.append(([no_typed], "missing field 'typed_data'"))
    cases.append(([["not", "a", "dict"]], "not an override file"))
    for docs, why in cases:
        with pytest.raises(G.OverrideRefused, match=why) as refused:
            gate.apply(docs, now=NOW)
        assert refusal_reasons(store)[-1] == str(refused.value)
    assert len(refusal_reasons(store)) == len(cases)
    assert store.active_overrides(safe.chain_id, safe.address, NOW) == []


class _StaleOwners:
    """A Safe view whose owner list is stale (read before a swapOwner): the local checks pass,
    only the Safe's own on-chain verdict can refuse."""

    def __init__(self, safe: S.SafeAdapter, owners: list[str]) -> None:
        self._safe, self._owners = safe, owners

    def owners(self) -> list[str]:
        return list(self._owners)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._safe, name)


@pytest.mark.parametrize("kind, settings_", [("disable_hedging", STRICT), ("emergency_exit", LENIENT)])
def test_the_safes_onchain_verdict_decides_over_a_stale_owner_list(
    kind: str, settings_: policy_file.Governance, clean_chain: Any, safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore
) -> None:
    from tests.bot.governance.conftest import execute_with_owners

    stale = safe.owners()
    to, data = S.swap_owner_call(safe, owners[0].address, Account.create().address)
    execute_with_owners(safe, safe.build_tx(to, 0, data), clean_chain.owner_keys[1:3], clean_chain.deployer.key.hex())
    assert owners[0].address not in safe.owners()
    p = proposal(safe, kind, nonce=99)
    gate = G.OverrideGate(_StaleOwners(safe, stale), store, settings_)
    with pytest.raises(G.OverrideRefused, match="the Safe rejected the signatures: GS026"):
        gate.apply(signed(p, owners[0], owners[1]) if settings_ is STRICT else signed(p, owners[0]), now=NOW)
    assert "GS026" in refusal_reasons(store)[-1]
    assert store.active_overrides(safe.chain_id, safe.address, NOW) == []


def test_single_owner_path_checks_the_safes_own_message_hash(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore) -> None:
    # An RPC that lies about the chain id: the override and its signature agree with the lie, so
    # every local check passes; the Safe's getMessageHash (its real domain) must decide.
    lying = S.SafeAdapter(safe.w3, safe.address, safe.rpc_url)
    lying.chain_id = safe.chain_id + 1
    p = proposal(safe, "emergency_exit", nonce=50, chain_id=lying.chain_id)
    with pytest.raises(G.OverrideRefused, match="differs from the Safe's getMessageHash"):
        G.OverrideGate(lying, store, LENIENT).apply(signed(p, owners[0]), now=NOW)
    assert store.active_overrides(lying.chain_id, safe.address, NOW) == []


_text = st.text(st.characters(codec="utf-8"), max_size=20)


@settings(max_examples=60, deadline=None)
@given(cap=st.sampled_from(sorted(override_rules.CAPS)), value=st.decimals(0, 1, places=4).map(str),
       reason=_text.filter(str.strip),
       chain_id=st.integers(1, 2**64), nonce=st.integers(0, 2**256 - 1), expiry=st.integers(0, 2**256 - 1))
def test_override_files_round_trip_and_hash_ignores_param_order(
    cap: str, value: str, reason: str, chain_id: int, nonce: int, expiry: int
) -> None:
    # (issue 9: each kind has a strict schema, so no extra params; two params to reorder)
    safe_addr = "0x" + "ab" * 20
    params = {"value": value, "cap": cap}
    p = G.propose_override("change_cap", params, reason, chain_id, safe_addr, nonce, expiry)
    again = G.proposal_from_typed_data(json.loads(json.dumps(p.to_json()))["typed_data"])
    assert again.override_hash == p.override_hash and again.safe_message_hash == p.safe_message_hash
    reordered = dict(reversed(list(params.items())))
    assert G.propose_override("change_cap", reordered, reason, chain_id, safe_addr, nonce, expiry).override_hash == p.override_hash
    # a non-canonical params string (same meaning, other bytes) is refused, never re-hashed silently
    spaced = json.loads(json.dumps(p.typed_data))
    spaced["message"]["params"] = json.dumps(params, sort_keys=True)  # ", " and ": " separators
    if spaced["message"]["params"] != p.message["params"]:
        with pytest.raises(G.OverrideRefused, match="canonical JSON"):
            G.proposal_from_typed_data(spaced)
    # every signed field matters
    for field, changed_value in (("nonce", (nonce + 1) % 2**256), ("expiry", (expiry + 1) % 2**256),
                                 ("reason", reason + "!"), ("policyHash", "0x" + "11" * 32)):
        changed = json.loads(json.dumps(p.typed_data))
        changed["message"][field] = changed_value
        assert G.proposal_from_typed_data(changed).override_hash != p.override_hash


def test_two_processes_racing_apply_once(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Two bots on one database both pass the read-side replay checks (the race window); the
    # unique constraints in the store still let exactly one application through.
    other = AuditStore(store.engine)
    p = proposal(safe, "pause_new_risk", nonce=77)
    docs = signed(p, owners[0], owners[1])
    G.OverrideGate(safe, store, STRICT).apply(docs, now=NOW)
    monkeypatch.setattr(other, "override_by_hash", lambda h: None)
    monkeypatch.setattr(other, "override_by_nonce", lambda c, s, n: None)
    monkeypatch.setattr(other, "next_override_nonce", lambda c, s: 0)  # read before the other's write
    with pytest.raises(G.OverrideRefused, match=r"replayed: override 0x[0-9a-f]{64} or nonce 77 already applied"):
        G.OverrideGate(safe, other, STRICT).apply(docs, now=NOW)
    q = proposal(safe, "emergency_exit", nonce=77)  # another override, same nonce
    with pytest.raises(G.OverrideRefused, match="nonce 77 already applied"):
        G.OverrideGate(safe, other, STRICT).apply(signed(q, owners[0], owners[1]), now=NOW)
    assert [o.kind for o in store.active_overrides(safe.chain_id, safe.address, NOW)] == ["pause_new_risk"]
