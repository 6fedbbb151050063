"""Issue 9, finding 2: whoever answers the RPC no longer decides governance.

Two loopback JSON-RPC proxies in front of the real anvil (tests/support/rpc_proxy.py's
CountingProxy, forwarding bytes): one forges the Safe's answers (getOwners, getThreshold,
isValidSignature, checkNSignatures), one serves the chain one block behind. Each attack
of the review is rebuilt and refused with a clear reason."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from adapters.evm import safe as S
from adapters.evm.chain import ChainConnection
from bot import governance as G
from bot.audit_store import AuditStore
from bot.devchain import DevChain
from tests.bot.governance.conftest import POLICY_TEXT, execute_with_owners, pins_of
from tests.support.rpc_proxy import CountingProxy

pytestmark = pytest.mark.xdist_group("governance")

NOW = 1_800_000_000
SEL_OWNERS = keccak(text="getOwners()")[:4].hex()
SEL_THRESHOLD = keccak(text="getThreshold()")[:4].hex()
SEL_IS_VALID = keccak(text="isValidSignature(bytes32,bytes)")[:4].hex()
SEL_CHECK_N = keccak(text="checkNSignatures(bytes32,bytes,bytes,uint256)")[:4].hex()


@dataclass
class ForgingProxy(CountingProxy):
    """Forwards everything, but lies about the Safe where told to."""

    safe: str = ""
    owners: list[str] = field(default_factory=list)  # forged getOwners ([]: honest)
    threshold: int = 0  # forged getThreshold (0: honest)
    forge_signatures: bool = False  # isValidSignature -> magic, checkNSignatures -> success

    async def _handle(self, request: web.Request) -> web.Response:
        payload = json.loads(await request.read())
        items = payload if isinstance(payload, list) else [payload]
        answers = [await self._answer(item) for item in items]
        return web.json_response(answers if isinstance(payload, list) else answers[0])

    def _result(self, item: dict[str, Any], data: bytes) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": item["id"], "result": "0x" + data.hex()}

    async def _answer(self, item: dict[str, Any]) -> Any:
        answer = await self._post(json.dumps(item).encode())
        if item["method"] != "eth_call":
            return answer
        call = item["params"][0]
        if str(call.get("to", "")).lower() != self.safe.lower():
            return answer
        selector = str(call.get("data") or call.get("input") or "")[2:10]
        if selector == SEL_OWNERS and self.owners:
            return self._result(item, abi_encode(["address[]"], [self.owners]))
        if selector == SEL_THRESHOLD and self.threshold:
            return self._result(item, abi_encode(["uint256"], [self.threshold]))
        if selector == SEL_IS_VALID and self.forge_signatures:
            return self._result(item, bytes.fromhex("1626ba7e").ljust(32, b"\0"))
        if selector == SEL_CHECK_N and self.forge_signatures:
            return self._result(item, b"")
        return answer


@dataclass
class LaggingProxy(CountingProxy):
    """Serves the chain one block behind the node: "latest" is the block before."""

    async def _handle(self, request: web.Request) -> web.Response:
        payload = json.loads(await request.read())
        items = payload if isinstance(payload, list) else [payload]
        answers = [await self._answer(item) for item in items]
        return web.json_response(answers if isinstance(payload, list) else answers[0])

    async def _answer(self, item: dict[str, Any]) -> Any:
        head = await self._post(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []}).encode())
        behind = hex(int(head["result"], 16) - 1)  # type: ignore[index]
        if item["method"] == "eth_blockNumber":
            return {"jsonrpc": "2.0", "id": item["id"], "result": behind}
        params = [behind if p in ("latest", "pending") else p for p in item.get("params", [])]
        return await self._post(json.dumps({**item, "params": params}).encode())


class Running:
    """An aiohttp proxy on its own event loop thread (the code under test is sync)."""

    def __init__(self, proxy: CountingProxy) -> None:
        self.proxy = proxy
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(proxy.start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def forging(gov_chain: DevChain) -> Iterator[ForgingProxy]:
    running = Running(ForgingProxy(gov_chain.url, safe=gov_chain.addresses["safe"]))
    try:
        yield running.proxy  # type: ignore[misc]
    finally:
        running.stop()


@pytest.fixture
def lagging(gov_chain: DevChain) -> Iterator[LaggingProxy]:
    running = Running(LaggingProxy(gov_chain.url))
    try:
        yield running.proxy  # type: ignore[misc]
    finally:
        running.stop()


def adapter(chain: DevChain, *urls: str, max_block_age: float | None = None, max_block_lag: int = 0) -> S.SafeAdapter:
    conn = ChainConnection(list(urls), chain_id=chain.chain_id)
    return S.SafeAdapter.from_connection(conn, chain.addresses["safe"], max_block_age=max_block_age,
                                         max_block_lag=max_block_lag)


def policy(chain: DevChain, pins: str) -> bytes:
    return POLICY_TEXT.format(tighten="false", pool=chain.pools["WETH/USDC/500"], pins=pins).encode()


def sign_all(content: bytes, safe: S.SafeAdapter, *accounts: LocalAccount) -> list[dict[str, Any]]:
    return [G.sign_policy(content, a, safe.chain_id, safe.address) for a in accounts]


def test_forged_owners_cannot_approve_the_attackers_policy_against_the_policy_in_force(
    gov_chain: DevChain, safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, forging: ForgingProxy
) -> None:
    real = policy(gov_chain, pins_of(gov_chain, 1))
    G.PolicyGate(safe, store).approve(real, sign_all(real, safe, *owners[:2]))
    attacker = Account.create()
    forging.owners, forging.threshold, forging.forge_signatures = [attacker.address], 1, True
    lying = adapter(gov_chain, forging.url)
    assert lying.owners() == [attacker.address]  # the proxy really lies
    evil = policy(gov_chain, f'sequence = 9\nowners = ["{attacker.address}"]\nthreshold = 1')
    with pytest.raises(G.PolicyNotApproved, match=r"policy in force 0x[0-9a-f]{64}: 0 of the pinned owners signed, 2 required"):
        G.PolicyGate(lying, store).approve(evil, sign_all(evil, lying, attacker))
    # and the policy in force is refused too while the node shows another Safe than it pins
    with pytest.raises(G.PolicyNotApproved, match="the Safe differs from the policy's pins: owners on chain"):
        G.PolicyGate(lying, store).in_force()


def test_forging_node_is_outvoted_by_a_second_rpc(
    gov_chain: DevChain, owners: list[LocalAccount], store: AuditStore, forging: ForgingProxy
) -> None:
    # No policy yet (first approval): the pins cannot help; a second endpoint does.
    attacker = Account.create()
    forging.owners, forging.threshold, forging.forge_signatures = [attacker.address], 1, True
    two = adapter(gov_chain, forging.url, gov_chain.url)
    evil = policy(gov_chain, f'sequence = 1\nowners = ["{attacker.address}"]\nthreshold = 1')
    with pytest.raises(G.PolicyNotApproved, match=r"RPC endpoints disagree on isValidSignature at block \d+"):
        G.PolicyGate(two, store).approve(evil, sign_all(evil, two, attacker))
    with pytest.raises(S.UntrustedRpc, match=r"RPC endpoints disagree on getOwners at block \d+"), two.pinned_reads():
        two.owners()
    assert store.policy_approvals(two.chain_id, two.address) == []


def test_forged_signature_check_cannot_make_a_non_owners_override_apply(
    gov_chain: DevChain, safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, forging: ForgingProxy
) -> None:
    real = policy(gov_chain, pins_of(gov_chain, 1))
    G.PolicyGate(safe, store).approve(real, sign_all(real, safe, *owners[:2]))
    loaded = G.PolicyGate(safe, store).in_force()
    stranger = Account.create()
    forging.forge_signatures = True  # owners honest, every signature check says yes
    lying = adapter(gov_chain, forging.url)
    p = G.propose_override("disable_hedging", {}, "r", lying.chain_id, lying.address, 1, NOW + 3600,
                           policy_hash=loaded.policy_hash)
    docs = [json.loads(json.dumps(G.sign_override(p, a))) for a in (owners[0], stranger)]
    with pytest.raises(G.OverrideRefused, match=f"non-owner signer {stranger.address}"):
        G.OverrideGate.for_policy(lying, store, loaded).apply(docs, now=NOW)
    # forged owners too (stranger listed as owner): the pinned owners refuse it
    forging.owners = [owners[0].address, stranger.address, owners[2].address]
    with pytest.raises(G.OverrideRefused, match="the Safe differs from the approved policy's pins: owners on chain"):
        G.OverrideGate.for_policy(lying, store, loaded).apply(docs, now=NOW)
    assert store.active_overrides(lying.chain_id, lying.address, NOW) == []


def _swap_out(chain: DevChain, safe: S.SafeAdapter, old: str) -> None:
    to, data = S.swap_owner_call(safe, old, Account.create().address)
    execute_with_owners(safe, safe.build_tx(to, 0, data), chain.owner_keys[1:3], chain.deployer.key.hex())


def test_lagging_node_is_caught_by_the_second_rpc(
    clean_chain: DevChain, safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, lagging: LaggingProxy
) -> None:
    # The attack: a node one block behind the swapOwner that removed owner 0 lets his signature count.
    p = G.propose_override("disable_hedging", {}, "r", safe.chain_id, safe.address, 1, NOW + 3600)
    docs = [json.loads(json.dumps(G.sign_override(p, a))) for a in owners[:2]]
    _swap_out(clean_chain, safe, owners[0].address)
    behind = adapter(clean_chain, lagging.url)
    assert owners[0].address in behind.owners()  # the lagging node still shows him
    two = adapter(clean_chain, lagging.url, clean_chain.url, max_block_lag=0)
    with pytest.raises(G.OverrideRefused, match=r"lagging RPC: pinned block \d+ is 1 block\(s\) behind endpoint 2 \(limit 0\)"):
        G.OverrideGate(two, store, G.STRICT).apply(docs, now=NOW)
    assert "lagging RPC" in store.events(event="refusal")[-1].reason
    assert store.active_overrides(safe.chain_id, safe.address, NOW) == []


def test_lagging_node_alone_is_caught_by_the_block_age(
    clean_chain: DevChain, safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, lagging: LaggingProxy
) -> None:
    # One URL only: the block the lagging node serves is older than the bound, by the local
    # clock (here fixed at the swap block's own timestamp: no wall-clock timing).
    clean_chain.w3.provider.make_request("evm_increaseTime", [600])  # type: ignore[arg-type]
    _swap_out(clean_chain, safe, owners[0].address)
    head = clean_chain.w3.eth.get_block("latest")
    behind = adapter(clean_chain, lagging.url, max_block_age=60)
    with pytest.raises(S.UntrustedRpc, match=r"stale RPC: block \d+ is \d+ s old \(limit 60 s\)"):
        behind.pin(now=int(head["timestamp"]))
    content = policy(clean_chain, pins_of(clean_chain, 1))
    gate = G.PolicyGate(behind, store, clock=lambda: int(head["timestamp"]))
    with pytest.raises(G.PolicyNotApproved, match="stale RPC"):
        gate.approve(content, sign_all(content, behind, owners[0], owners[1]))
    # the honest node's head is fresh: the same bound lets it through
    fresh = adapter(clean_chain, clean_chain.url, max_block_age=60)
    assert fresh.pin(now=int(head["timestamp"])).number == head["number"]


def test_pinned_modules_and_guard_are_compared(
    gov_chain: DevChain, safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore
) -> None:
    inv = safe.invariants()
    wrong_module = policy(gov_chain, pins_of(gov_chain, 1) + '\nmodules = ["0x' + "77" * 20 + '"]')
    with pytest.raises(G.PolicyNotApproved, match=r"modules on chain \[.*\] differ from the pinned \[0x7777"):
        G.PolicyGate(safe, store).approve(wrong_module, sign_all(wrong_module, safe, *owners[:2]))
    wrong_guard = policy(gov_chain, pins_of(gov_chain, 1) + '\nguard = "0x' + "88" * 20 + '"')
    with pytest.raises(G.PolicyNotApproved, match=r"guard on chain 0x0{40} differs from the pinned 0x8888"):
        G.PolicyGate(safe, store).approve(wrong_guard, sign_all(wrong_guard, safe, *owners[:2]))
    mods = ", ".join(f'"{m}"' for m in inv.modules)
    right = policy(gov_chain, pins_of(gov_chain, 1) + f'\nmodules = [{mods}]\nguard = "{inv.guard}"')
    assert G.PolicyGate(safe, store).approve(right, sign_all(right, safe, *owners[:2])).sequence == 1


def test_cli_enforces_the_settings_chain_id(gov_chain: DevChain, capsys: Any, monkeypatch: Any, tmp_path: Path) -> None:
    import sys

    from bot.cli import main

    monkeypatch.setenv("LPHEDGE_CHAIN_ID", str(gov_chain.chain_id + 1))
    monkeypatch.setattr(sys, "argv", ["lphedge", "override", "list", "--rpc-url", gov_chain.url, "--safe",
                                      gov_chain.addresses["safe"], "--db", f"sqlite:///{tmp_path / 'a.db'}"])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code != 0 and str(gov_chain.chain_id + 1) in err and err.count("\n") == 1
