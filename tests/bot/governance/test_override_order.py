"""Issue 9, findings 5 and 8: overrides cannot be replayed or reordered, are bound to the
policy in force, can be cancelled (with the threshold), and carry exactly their kind's params."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from adapters.evm import safe as S
from bot import governance as G
from bot.audit_store import AuditStore
from bot.devchain import DevChain
from policies import policy_file
from tests.bot.governance.conftest import POLICY_TEXT, execute_with_owners, pins_of

pytestmark = pytest.mark.xdist_group("governance")

NOW = 1_800_000_000
STRICT = policy_file.Governance(single_owner_may_tighten=False, override_max_ttl_hours=48)
LENIENT = policy_file.Governance(single_owner_may_tighten=True, override_max_ttl_hours=48)


def prop(safe: S.SafeAdapter, kind: str, params: dict[str, Any], nonce: int, policy_hash: bytes = G.NO_POLICY,
         expiry: int = NOW + 3600) -> G.OverrideProposal:
    return G.propose_override(kind, params, "test", safe.chain_id, safe.address, nonce, expiry,
                              policy_hash=policy_hash)


def signed(p: G.OverrideProposal, *accounts: LocalAccount) -> list[dict[str, Any]]:
    return [json.loads(json.dumps(G.sign_override(p, a))) for a in accounts]


def test_held_back_older_resume_after_newer_pause_is_refused(
    safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore
) -> None:
    # The attack: resume (nonce 20) signed, held back; pause (nonce 21) applied; then the old
    # resume is applied and both show as in force.
    resume = prop(safe, "resume_layer", {"layer": "short"}, 20)
    pause = prop(safe, "pause_layer", {"layer": "short"}, 21)
    gate = G.OverrideGate(safe, store, STRICT)
    gate.apply(signed(pause, owners[0], owners[1]), now=NOW)
    with pytest.raises(G.OverrideRefused, match=r"^out of order: nonce 20 is not above the last applied nonce 21"):
        gate.apply(signed(resume, owners[0], owners[1]), now=NOW)
    assert [(o.kind, o.nonce) for o in store.active_overrides(safe.chain_id, safe.address, NOW)] == [("pause_layer", 21)]
    assert store.events(event="refusal")[-1].reason.startswith("out of order: nonce 20")


def test_new_approval_retires_overrides_bound_to_the_older_policy(
    gov_chain: DevChain, safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, tmp_path: Path
) -> None:
    pool = gov_chain.pools["WETH/USDC/500"]
    v1 = POLICY_TEXT.format(tighten="false", pool=pool, pins=pins_of(gov_chain, 1)).encode()
    v2 = POLICY_TEXT.format(tighten="false", pool=pool, pins=pins_of(gov_chain, 2)).encode()
    pg = G.PolicyGate(safe, store, clock=lambda: NOW)
    pg.approve(v1, [G.sign_policy(v1, o, safe.chain_id, safe.address) for o in owners[:2]])
    loaded1 = pg.in_force()
    pause = prop(safe, "pause_layer", {"layer": "short"}, 1, loaded1.policy_hash)
    G.OverrideGate.for_policy(safe, store, loaded1).apply(signed(pause, owners[0], owners[1]), now=NOW)
    assert [r.nonce for r in G.OverrideGate.for_policy(safe, store, loaded1).in_force(NOW)] == [1]

    pg.approve(v2, [G.sign_policy(v2, o, safe.chain_id, safe.address) for o in owners[1:]])
    loaded2 = pg.in_force()
    assert loaded2.sequence == 2
    assert G.OverrideGate.for_policy(safe, store, loaded2).in_force(NOW) == []  # retired
    # an override signed against v1 cannot be applied under v2, on this or a fresh database
    late = prop(safe, "pause_layer", {"layer": "intermediate"}, 2, loaded1.policy_hash)
    for db in (store, AuditStore(f"sqlite:///{tmp_path / 'fresh.db'}")):
        with pytest.raises(G.OverrideRefused, match="wrong policy: override is bound to policy 0x"):
            G.OverrideGate.for_policy(safe, db, loaded2).apply(signed(late, owners[0], owners[1]), now=NOW)
    # one without any policy binding neither
    with pytest.raises(G.OverrideRefused, match="wrong policy"):
        G.OverrideGate.for_policy(safe, store, loaded2).apply(
            signed(prop(safe, "disable_hedging", {}, 3), owners[0], owners[1]), now=NOW)


def test_cancel_needs_the_threshold_and_retires_the_override(
    safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore
) -> None:
    gate = G.OverrideGate(safe, store, LENIENT)
    exit_ = prop(safe, "emergency_exit", {}, 5)
    gate.apply(signed(exit_, owners[0]), now=NOW)  # tightening: one owner (policy allows)
    cancel = prop(safe, "cancel_override", {"nonce": 5}, 6)
    with pytest.raises(G.OverrideRefused, match=r"under threshold: 1 of 2 .* loosening override cancel_override"):
        gate.apply(signed(cancel, owners[0]), now=NOW)  # cancelling is loosening
    assert [r.nonce for r in gate.in_force(NOW)] == [5]
    gate.apply(signed(cancel, owners[0], owners[2]), now=NOW)
    assert gate.in_force(NOW) == [] and store.active_overrides(safe.chain_id, safe.address, NOW) == []
    # cancelling what was never applied (or a cancel) is refused
    for n, target in ((7, 99), (8, 6)):
        with pytest.raises(G.OverrideRefused, match=f"cancel: no applied override with nonce {target}"):
            gate.apply(signed(prop(safe, "cancel_override", {"nonce": target}, n), owners[0], owners[1]), now=NOW)


def test_override_reverified_when_used_after_a_signer_is_removed(
    clean_chain: DevChain, safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore
) -> None:
    gate = G.OverrideGate(safe, store, STRICT)
    gate.apply(signed(prop(safe, "disable_hedging", {}, 1), owners[0], owners[1]), now=NOW)
    assert [r.nonce for r in gate.in_force(NOW)] == [1]
    to, data = S.swap_owner_call(safe, owners[0].address, Account.create().address)
    execute_with_owners(safe, safe.build_tx(to, 0, data), clean_chain.owner_keys[1:3], clean_chain.deployer.key.hex())
    assert gate.in_force(NOW) == []  # owner 0's signature no longer counts
    assert "no longer in force: non-owner signer " + owners[0].address in store.events(event="refusal")[-1].reason


def test_emergency_exit_with_slippage_and_swap_to_is_refused(
    safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore
) -> None:
    extra = {"max_slippage_bps": 10000, "swap_to": "0x" + "66" * 20}
    with pytest.raises(G.OverrideRefused, match=r"^emergency_exit takes no param max_slippage_bps, swap_to \(allowed: none\)$"):
        prop(safe, "emergency_exit", extra, 1)
    # built by hand (not through propose) and signed by two owners: refused at apply, logged
    p = prop(safe, "emergency_exit", {}, 1)
    td = json.loads(json.dumps(p.typed_data))
    td["message"]["params"] = G.canonical_params(extra)
    forged = G.OverrideProposal(td, S.typed_data_hash(td), S.safe_message_hash(safe.chain_id, safe.address, S.typed_data_hash(td)))
    with pytest.raises(G.OverrideRefused, match="emergency_exit takes no param"):
        G.OverrideGate(safe, store, LENIENT).apply(signed(forged, owners[0], owners[1]), now=NOW)
    assert "emergency_exit takes no param max_slippage_bps, swap_to" in store.events(event="refusal")[-1].reason
    for kind, params, why in (
        ("change_cap", {"cap": "hedge_ratio", "value": "2"}, "not a fraction in"),
        ("change_cap", {"cap": "anything", "value": "0.5"}, "cap must be one of"),
        ("pause_layer", {"layer": "short", "all": "yes"}, "pause_layer takes no param all"),
        ("cancel_override", {"nonce": "0x10"}, "nonce must be a non-negative integer"),
    ):
        with pytest.raises(G.OverrideRefused, match=why):
            prop(safe, kind, params, 2)


def test_expiry_as_hex_string_is_a_one_line_refusal_with_an_audit_row(
    safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, capsys: Any, monkeypatch: Any,
    gov_chain: DevChain, tmp_path: Path
) -> None:
    p = prop(safe, "pause_layer", {"layer": "short"}, 1)
    docs = signed(p, owners[0], owners[1])
    for d in docs:
        d["typed_data"]["message"]["expiry"] = hex(NOW + 3600)
    with pytest.raises(G.OverrideRefused) as refused:
        G.OverrideGate(safe, store, STRICT).apply(docs, now=NOW)
    assert str(refused.value) == f"override typed data: expiry must be a non-negative integer, got '{hex(NOW + 3600)}'"
    assert store.events(event="refusal")[-1].reason == str(refused.value)
    # through the CLI: exit 2, one line, no traceback, and the row in the audit table
    from bot.cli import main

    gov_chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]  # fresh head (max_block_age)
    f = tmp_path / "hex.json"
    f.write_text(json.dumps(docs[0]))
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setattr(sys, "argv", ["lphedge", "override", "apply", str(f), "--rpc-url", gov_chain.url,
                                      "--safe", safe.address, "--db", db])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and "expiry must be a non-negative integer" in err
    assert "Traceback" not in err
    assert "expiry must be" in AuditStore(db).events(event="refusal")[-1].reason
