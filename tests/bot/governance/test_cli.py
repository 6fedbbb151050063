"""The governance CLI end to end, through bot.cli.main (one-line errors, exit 2, no keys in output)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from adapters.anvil import Anvil
from adapters.evm import safe as S
from bot import governance as G
from bot.cli import main
from bot.devchain import DevChain
from tests.bot.governance.conftest import POLICY_TEXT, RolesEnv, pins_of, refresh_fork
from tests.bot.governance.test_setup_preflight import deploy_feeds, scope_section

pytestmark = pytest.mark.xdist_group("governance")


class Cli:
    def __init__(self, capsys: Any, monkeypatch: Any, base: list[str], db: list[str]) -> None:
        self.capsys, self.monkeypatch, self.base, self.db = capsys, monkeypatch, base, db

    def __call__(self, *args: str, chain: bool = True, db: bool = True) -> tuple[int, str, str]:
        argv = ["lphedge", *args, *(self.base if chain else []), *(self.db if chain and db else [])]
        self.monkeypatch.setattr(sys, "argv", argv)
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = self.capsys.readouterr()
        return code, out.out, out.err


@pytest.fixture
def cli(capsys: Any, monkeypatch: Any, gov_chain: DevChain, tmp_path: Path) -> Cli:
    gov_chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]  # a fresh head: reads refuse a block older than max_block_age
    return Cli(capsys, monkeypatch, ["--rpc-url", gov_chain.url, "--safe", gov_chain.addresses["safe"]],
               ["--db", f"sqlite:///{tmp_path / 'cli.db'}"])


@pytest.fixture
def keys(gov_chain: DevChain, tmp_path: Path, monkeypatch: Any) -> list[Path]:
    paths = []
    for i, k in enumerate(gov_chain.owner_keys):
        p = tmp_path / f"owner{i}.key"
        p.write_text(k + "\n")
        paths.append(p)
    monkeypatch.setenv("OWNER2_KEY", gov_chain.owner_keys[2])
    return paths


def _no_keys(gov_chain: DevChain, *texts: str) -> None:
    for k in [*gov_chain.owner_keys, gov_chain.bot_key, gov_chain.deployer.key.hex()]:
        for t in texts:
            assert k[2:] not in t


def test_override_propose_sign_apply(cli: Cli, keys: list[Path], gov_chain: DevChain, safe: S.SafeAdapter, tmp_path: Path) -> None:
    prop, s0, s2 = tmp_path / "prop.json", tmp_path / "s0.json", tmp_path / "s2.json"
    code, out, _ = cli("override", "propose", "--kind", "pause_layer", "--param", "layer=short",
                       "--reason", "vol spike, manual", "--ttl-hours", "2", "--out", str(prop))
    assert code == 0
    doc = json.loads(out)
    recomputed = G.proposal_from_typed_data(doc["typed_data"])
    assert doc["override_hash"] == "0x" + recomputed.override_hash.hex()
    assert doc["safe_message_hash"] == "0x" + safe.get_message_hash(recomputed.override_hash).hex()
    assert doc["typed_data"]["message"]["params"] == '{"layer":"short"}'

    code, out0, err0 = cli("override", "sign", str(prop), "--key-file", str(keys[0]), "--out", str(s0), chain=False)
    assert code == 0 and json.loads(out0)["signer"] in safe.owners()
    code, out2, err2 = cli("override", "sign", str(prop), "--key-env", "OWNER2_KEY", "--out", str(s2), chain=False)
    assert code == 0
    _no_keys(gov_chain, out0, err0, out2, err2)

    code, _, err = cli("override", "apply", str(s0))
    assert code == 2 and err.startswith("error: under threshold: 1 of 2") and err.count("\n") == 1
    code, out, _ = cli("override", "apply", str(prop), str(s0), str(s2), "--json")
    assert code == 0
    res = json.loads(out)
    assert res["applied"] and res["kind"] == "pause_layer" and res["required"] == 2 and len(res["signers"]) == 2
    code, _, err = cli("override", "apply", str(s0), str(s2))
    assert code == 2 and err.startswith("error: replayed") and "Traceback" not in err
    code, out, _ = cli("override", "list", "--json")
    assert [o["kind"] for o in json.loads(out)] == ["pause_layer"]
    # every audit row (proposal, signatures, verification, refusals, application): no key in any column
    from bot.audit_store import AuditStore

    events = {e.event for e in AuditStore(f"sqlite:///{tmp_path / 'cli.db'}").events()}
    assert {"proposal", "signature", "verification", "refusal", "application"} <= events
    db = (tmp_path / "cli.db").read_bytes()
    for k in [*gov_chain.owner_keys, gov_chain.bot_key, gov_chain.deployer.key.hex()]:
        assert k[2:].encode() not in db.lower() and bytes.fromhex(k[2:]) not in db


def test_rpc_url_secret_never_printed(cli: Cli) -> None:
    code, _, err = cli("override", "list", "--rpc-url", "http://127.0.0.1:9/v2/SECRETAPIKEY123", "--safe", "0x" + "11" * 20, chain=False)
    assert code == 2 and "unreachable" in err and "SECRETAPIKEY123" not in err and err.count("\n") == 1


def test_policy_approve_and_verify(cli: Cli, keys: list[Path], gov_chain: DevChain, safe: S.SafeAdapter, policy_text: str, tmp_path: Path) -> None:
    pol = tmp_path / "policy.toml"
    pol.write_text(policy_text)
    code, out, _ = cli("policy", "approve", str(pol), db=False)
    req = json.loads(out)
    assert code == 0 and req["message"].startswith("lphedge: approve policy 0x")
    assert req["safe_message_hash"] == "0x" + safe.get_message_hash(bytes.fromhex(req["message_hash"][2:])).hex()
    sigs = []
    for i in (0, 1):
        p = tmp_path / f"psig{i}.json"
        code, out, err = cli("policy", "approve", str(pol), "--key-file", str(keys[i]), "--out", str(p), db=False)
        assert code == 0
        _no_keys(gov_chain, out, err)
        sigs.append(str(p))
    code, _, err = cli("policy", "verify", str(pol), sigs[0])
    assert code == 2 and "GS020" in err and err.count("\n") == 1
    code, out, _ = cli("policy", "verify", str(pol), *sigs, "--json")
    assert code == 0 and json.loads(out)["policy_hash"] == req["policy_hash"]
    code, out, _ = cli("policy", "verify", str(pol))
    assert code == 0 and "approved" in out
    pol.write_text(policy_text.replace("override_max_ttl_hours = 48", "override_max_ttl_hours = 700"))
    code, _, err = cli("policy", "verify", str(pol))
    assert code == 2 and "is not approved by the Safe" in err and "last approved" in err


def test_bad_inputs_are_one_line_errors(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("0xnot-a-key-at-all\n")
    prop = tmp_path / "p.json"
    prop.write_text("{}")
    cases = [
        (["override", "propose", "--kind", "withdraw_all", "--reason", "x"], "unknown override kind"),
        (["override", "propose", "--kind", "pause_layer", "--reason", "x"], "needs params: layer"),
        (["override", "sign", str(prop), "--key-file", str(bad)], "not an lphedge Override"),
        (["override", "apply", str(tmp_path / "missing.json")], "cannot read"),
    ]
    for args, msg in cases:
        code, _, err = cli(*args, chain=args[1] != "sign")
        assert code == 2, (args, err)
        assert err.startswith("error: ") and msg in err and err.count("\n") == 1 and "Traceback" not in err
    good = G.propose_override("disable_hedging", {}, "r", 1, "0x" + "11" * 20, 0, 2**40).to_json()
    prop.write_text(json.dumps(good))
    code, _, err = cli("override", "sign", str(prop), "--key-file", str(bad), chain=False)
    assert code == 2 and "does not hold a valid private key" in err and "not-a-key" not in err


def test_roles_deploy_and_setup_cli(cli: Cli, gov_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv,
                                    gov_fork: Anvil, monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setenv("DEPLOYER_KEY", gov_chain.deployer.key.hex())
    code, out, err = cli("roles", "deploy", "--key-env", "DEPLOYER_KEY", "--json", db=False)
    assert code == 0, err
    new_roles = json.loads(out)["roles"]
    _no_keys(gov_chain, out, err)
    a = gov_chain.addresses
    args = ["roles", "setup", "--roles", new_roles, "--bot", roles_env.bot.address,
            "--position-manager", a["position_manager"], "--swap-router", a["swap_router"],
            "--multisend-call-only", a["multisend_call_only"], "--factory", a["factory"],
            "--key-env", "DEPLOYER_KEY", "--fork-url", gov_fork.url]
    code, _, err = cli(*args)  # the scope comes from the approved policy's [scope]: none yet
    assert code == 2 and "no approved policy in force" in err and err.count("\n") == 1
    pol = tmp_path / "policy.toml"  # an approved policy with a [scope] section (issue 9)
    pol.write_text(POLICY_TEXT.format(tighten="false", pool=gov_chain.pools["WETH/USDC/500"], pins=pins_of(gov_chain))
                   + scope_section(gov_chain, deploy_feeds(gov_chain)))
    for i, k in enumerate(gov_chain.owner_keys[:2]):
        (tmp_path / f"o{i}.key").write_text(k)
        code, _, err = cli("policy", "approve", str(pol), "--key-file", str(tmp_path / f"o{i}.key"),
                           "--out", str(tmp_path / f"s{i}.json"), db=False)
        assert code == 0, err
    code, _, err = cli("policy", "verify", str(pol), str(tmp_path / "s0.json"), str(tmp_path / "s1.json"))
    assert code == 0, err
    refresh_fork(gov_fork, gov_chain.url)
    code, out, err = cli(*args)
    assert code == 0, err
    doc = json.loads(out)
    tx = safe.build_tx(doc["to"], doc["value"], bytes.fromhex(doc["data"][2:]), doc["operation"], doc["nonce"])
    assert doc["safe_tx_hash"] == "0x" + safe.onchain_tx_hash(tx).hex()
    assert doc["operation"] == 1 and doc["to"] == a["multisend_call_only"]
    assert doc["simulation"]["success"] and doc["calls"][0].startswith(f"CALL {safe.address}.enableModule")
    assert new_roles in doc["invariants_after"]["modules"] and new_roles not in safe.invariants().modules
    assert any(".setAllowance(" in c for c in doc["calls"])  # the bounded table: allowances, conditions
    cond = doc["condition"]  # deployed by setup, verified by its pre-flight; reused as is
    args[args.index("--key-env"):args.index("--key-env") + 2] = ["--condition", cond]
    refresh_fork(gov_fork, gov_chain.url)
    code, out2, err = cli(*args)
    assert code == 0, err
    assert json.loads(out2)["data"] == doc["data"]
    args[args.index("--condition") + 1] = new_roles  # not an OracleBoundCondition
    code, _, err = cli(*args)
    assert code == 2 and "is not OracleBoundCondition" in err and err.count("\n") == 1
    args[args.index("--condition") + 1] = cond
    code, out3, err = cli("roles", "deploy", "--key-env", "DEPLOYER_KEY", "--condition", "--position-manager",
                          a["position_manager"], "--factory", a["factory"], "--json")  # the policy's condition too
    assert code == 0, err
    deployed = json.loads(out3)
    assert deployed["condition"] != cond and deployed["roles"] != new_roles
    args[args.index("--condition") + 1] = deployed["condition"]
    args[args.index("--roles") + 1] = deployed["roles"]
    refresh_fork(gov_fork, gov_chain.url)
    code, out4, err = cli(*args)
    assert code == 0, err
    assert json.loads(out4)["condition"] == deployed["condition"] and json.loads(out4)["simulation"]["success"]
    owner: LocalAccount = __import__("eth_account").Account.from_key(gov_chain.owner_keys[0])
    args[args.index("--bot") + 1] = owner.address
    code, _, err = cli(*args)
    assert code == 2 and "is an owner of the Safe" in err


def test_roles_setup_refuses_an_approved_policy_without_scope(cli: Cli, keys: list[Path], gov_chain: DevChain,
                                                              policy_text: str, tmp_path: Path) -> None:
    """The bot's scope comes only from the approved policy's [scope]: none, no setup."""
    pol = tmp_path / "policy.toml"
    pol.write_text(policy_text)  # approved, but no [scope] section
    for i in (0, 1):
        code, _, err = cli("policy", "approve", str(pol), "--key-file", str(keys[i]),
                           "--out", str(tmp_path / f"s{i}.json"), db=False)
        assert code == 0, err
    code, _, err = cli("policy", "verify", str(pol), str(tmp_path / "s0.json"), str(tmp_path / "s1.json"))
    assert code == 0, err
    a = gov_chain.addresses
    code, out, err = cli("roles", "setup", "--roles", a["safe"], "--bot", "0x" + "b0" * 20,
                         "--position-manager", a["position_manager"], "--swap-router", a["swap_router"],
                         "--multisend-call-only", a["multisend_call_only"], "--factory", a["factory"],
                         "--condition", a["safe"])
    assert code == 2 and out == "" and err.count("\n") == 1 and "has no [scope] section" in err, err


def test_bad_database_url_is_one_line_without_password(cli: Cli, gov_chain: DevChain) -> None:
    # bot.db's own line: the URL with its password hidden, and the reason, not just a class name
    for url, reason in (("not a url at all", "Could not parse SQLAlchemy URL"),
                        ("postgresql://bot:hunter2pw@127.0.0.1:9/audit", "Connection refused")):
        code, _, err = cli("override", "list", "--db", url, db=False)
        assert code == 2 and err.startswith("error: database ") and reason in err, err
        assert "InvalidInput" not in err
        assert "hunter2pw" not in err and err.count("\n") == 1
