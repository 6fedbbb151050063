"""Issue 9, finding 3: an old approved policy cannot come back, and the rules for applying
overrides come only from the approved policy in force (never a --policy path)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from adapters.evm import safe as S
from bot import governance as G
from bot.audit_store import AuditStore
from bot.cli import main
from bot.devchain import DevChain
from tests.bot.governance.conftest import POLICY_TEXT, pins_of

pytestmark = pytest.mark.xdist_group("governance")


def policy(chain: DevChain, sequence: int, *, ttl: int = 48, tighten: str = "false", name: str = "governance test",
           expiry: int | None = None) -> bytes:
    pins = pins_of(chain, sequence) + (f"\napproval_expiry = {expiry}" if expiry else "")
    text = POLICY_TEXT.format(tighten=tighten, pool=chain.pools["WETH/USDC/500"], pins=pins)
    return text.replace("override_max_ttl_hours = 48", f"override_max_ttl_hours = {ttl}") \
               .replace('name = "governance test"', f'name = "{name}"').encode()


def approve(gate: G.PolicyGate, content: bytes, signers: list[LocalAccount]) -> None:
    safe = gate.safe
    gate.approve(content, [G.sign_policy(content, o, safe.chain_id, safe.address) for o in signers])


def test_sequence_is_part_of_the_signed_hash(gov_chain: DevChain) -> None:
    assert G.policy_hash_of_bytes(policy(gov_chain, 1)) != G.policy_hash_of_bytes(policy(gov_chain, 2))


def test_older_approved_policy_copied_back_is_refused_and_the_newer_keeps_running(
    gov_chain: DevChain, safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, tmp_path: Path
) -> None:
    # The attack: v1 (loose, 600 h overrides) and v2 (strict) were both approved; someone copies
    # v1 back over the policy file. Before: "approved". Now: refused, v2 keeps running.
    loose, strict = policy(gov_chain, 1, ttl=600, tighten="true"), policy(gov_chain, 2, ttl=24)
    gate = G.PolicyGate(safe, store)
    approve(gate, loose, owners[:2])
    approve(gate, strict, owners[1:])
    path = tmp_path / "policy.toml"
    path.write_bytes(loose)
    loaded = gate.load(path)
    assert not loaded.from_file and loaded.content == strict and loaded.sequence == 2
    assert "approved but not in force: sequence 1 is superseded by sequence 2" in loaded.warning
    assert loaded.governance.override_max_ttl_hours == 24 and not loaded.governance.single_owner_may_tighten
    assert "superseded" in store.events(event="refusal")[-1].reason
    # and a fresh approval of the old one (even with valid signatures) is refused
    with pytest.raises(G.PolicyNotApproved, match="sequence 1 is lower than sequence 2 already approved"):
        approve(gate, loose, owners[:2])
    # a different policy at the same sequence cannot take the place of the one in force
    with pytest.raises(G.PolicyNotApproved, match="sequence 2 is already used by approved policy"):
        approve(gate, policy(gov_chain, 2, name="other"), owners[:2])
    assert [a.sequence for a in store.policy_approvals(safe.chain_id, safe.address)] == [2, 1]


def test_a_newer_approval_supersedes_every_older_one(
    gov_chain: DevChain, safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore
) -> None:
    gate = G.PolicyGate(safe, store)
    for seq in (1, 2, 5):
        approve(gate, policy(gov_chain, seq), owners[:2])
    assert gate.in_force().sequence == 5
    for seq in (1, 2):
        loaded = gate.load_bytes(policy(gov_chain, seq))
        assert not loaded.from_file and loaded.sequence == 5
    assert gate.load_bytes(policy(gov_chain, 5)).from_file


def test_expired_approval_is_not_run(
    gov_chain: DevChain, safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore
) -> None:
    content = policy(gov_chain, 1, expiry=1_900_000_000)
    gate = G.PolicyGate(safe, store, clock=lambda: 1_800_000_000)
    approve(gate, content, owners[:2])
    assert gate.load_bytes(content).from_file
    late = G.PolicyGate(safe, store, clock=lambda: 1_900_000_000)
    with pytest.raises(G.PolicyNotApproved, match="approval expired at 1900000000"):
        late.load_bytes(content)
    with pytest.raises(G.PolicyNotApproved, match="approval_expiry 1900000000 has passed"):
        approve(late, policy(gov_chain, 2, expiry=1_900_000_000), owners[:2])


def test_policy_without_pins_is_not_approved(
    gov_chain: DevChain, safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore
) -> None:
    content = POLICY_TEXT.format(tighten="false", pool=gov_chain.pools["WETH/USDC/500"], pins="").encode()
    with pytest.raises(G.PolicyNotApproved, match=r"must pin the Safe's owners and threshold"):
        approve(G.PolicyGate(safe, store), content, owners[:2])
    assert store.policy_approvals(safe.chain_id, safe.address) == []


class Cli:
    def __init__(self, capsys: Any, monkeypatch: Any, base: list[str]) -> None:
        self.capsys, self.monkeypatch, self.base = capsys, monkeypatch, base

    def __call__(self, *args: str) -> tuple[int, str, str]:
        base = {"approve": self.base[:4], "sign": []}.get(args[1], self.base)
        self.monkeypatch.setattr(sys, "argv", ["lphedge", *args, *base])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = self.capsys.readouterr()
        return code, out.out, out.err


def test_cli_one_owner_emergency_exit_with_loose_policy_path_is_refused(
    capsys: Any, monkeypatch: Any, gov_chain: DevChain, owners: list[LocalAccount], tmp_path: Path
) -> None:
    # The attack: the strict policy (no single-owner tightening, 48 h) is approved; one owner
    # points `override apply --policy` at loose.toml (single owner may tighten, 600 h).
    gov_chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]  # fresh head (max_block_age)
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    cli = Cli(capsys, monkeypatch, ["--rpc-url", gov_chain.url, "--safe", gov_chain.addresses["safe"], "--db", db])
    strict = tmp_path / "policy.toml"
    strict.write_bytes(policy(gov_chain, 3))
    loose = tmp_path / "loose.toml"
    loose.write_bytes(policy(gov_chain, 1, ttl=600, tighten="true"))
    key = tmp_path / "owner0.key"
    key.write_text(gov_chain.owner_keys[0])
    sigs = []
    for i, o in enumerate(gov_chain.owner_keys[:2]):
        (tmp_path / f"k{i}").write_text(o)
        p = tmp_path / f"ps{i}.json"
        code, _, err = cli("policy", "approve", str(strict), "--key-file", str(tmp_path / f"k{i}"), "--out", str(p))
        assert code == 0, err
        sigs.append(str(p))
    code, out, err = cli("policy", "verify", str(strict), *sigs)
    assert code == 0 and "sequence 3 in force" in out, err
    code, out, err = cli("policy", "verify", str(strict), "--json")
    assert code == 0 and json.loads(out)["sequence"] == 3

    prop = tmp_path / "exit.json"
    code, out, err = cli("override", "propose", "--kind", "emergency_exit", "--reason", "panic", "--ttl-hours", "600",
                         "--out", str(prop))
    assert code == 0, err
    assert json.loads(out)["typed_data"]["message"]["policyHash"] == "0x" + G.policy_hash_of_bytes(strict.read_bytes()).hex()
    s0 = tmp_path / "s0.json"
    code, _, err = cli("override", "sign", str(prop), "--key-file", str(key), "--out", str(s0))
    assert code == 0, err
    code, _, err = cli("override", "apply", str(prop), str(s0), "--policy", str(loose))
    assert code == 2 and "--policy is not accepted" in err and err.count("\n") == 1
    # without the path, the rules in force apply: 600 h is beyond 48 h, one owner is not enough
    code, _, err = cli("override", "apply", str(prop), str(s0))
    assert code == 2 and "further than 48.0 h ahead" in err, err
    # within the lifetime, one owner is still one too few: tightening needs the threshold here
    prop2, s1 = tmp_path / "exit2.json", tmp_path / "s1.json"
    assert cli("override", "propose", "--kind", "emergency_exit", "--reason", "panic", "--ttl-hours", "2",
               "--out", str(prop2))[0] == 0
    assert cli("override", "sign", str(prop2), "--key-file", str(key), "--out", str(s1))[0] == 0
    code, _, err = cli("override", "apply", str(prop2), str(s1))
    assert code == 2 and "under threshold: 1 of 2 owner signature(s) for tightening override emergency_exit" in err
    code, out, _ = cli("override", "list", "--json")
    assert json.loads(out) == []
    reasons = [r.reason for r in AuditStore(db).events(event="refusal")]
    assert any("further than 48.0 h ahead" in r for r in reasons) and "under threshold" in reasons[-1]
