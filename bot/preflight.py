"""Checks before the bot proposes or executes anything (the Bybit 2025 and Radiant 2024
lessons): hashes computed locally, CALL only (delegatecall only to a decoded
MultiSendCallOnly), target and selector on an allowlist, calldata decoded with known
ABIs, simulated first, and the Safe's singleton, owners, threshold, modules and guard
unchanged afterwards. Also the bot's executor through its Roles scope.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.abi import collapse_if_tuple
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from safe_eth.eth.contracts import get_multi_send_contract
from safe_eth.safe import SafeOperationEnum, SafeTx
from safe_eth.safe.multi_send import MultiSend, MultiSendOperation
from web3 import Web3

from adapters.evm import safe as safe_mod
from adapters.evm.safe import SafeAdapter, SafeInvariants, SimulationResult
from bot.audit_store import AuditStore
from bot.governance import PreflightRefused


# ------------------------------------------------------------------------------- preflight
@dataclass(frozen=True)
class DecodedCall:
    target: str
    selector: str
    function: str
    args: dict[str, Any]
    operation: int = 0
    value: int = 0

    def describe(self) -> str:
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.args.items())
        return f"{'DELEGATECALL' if self.operation else 'CALL'} {self.target}.{self.function}({args})"


def _short(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


@dataclass
class Allowlist:
    """Known (target, selector) pairs, each with the ABI used to decode its calldata and,
    for the bot's scope, the permission whose parameter conditions the arguments must meet
    (adapters/evm/permissions.py: the table the Roles scope comes from too)."""

    entries: dict[tuple[str, bytes], dict[str, Any]] = field(default_factory=dict)
    grants: dict[tuple[str, bytes], Any] = field(default_factory=dict)  # permissions.Grant
    context: Any = None  # permissions.Context (the scope's addresses, the Safe if known)

    def allow(self, target: str, abi: list[dict[str, Any]], names: Iterable[str]) -> Allowlist:
        from eth_utils.abi import function_abi_to_4byte_selector

        wanted = set(names)
        found = set()
        for item in abi:
            if item.get("type") == "function" and item.get("name") in wanted:
                self.entries[(to_checksum_address(target), bytes(function_abi_to_4byte_selector(item)))] = item  # type: ignore[arg-type]
                found.add(item["name"])
        if found != wanted:
            raise ValueError(f"ABI lacks {sorted(wanted - found)}")
        return self

    def decode(self, target: str, data: bytes, operation: int = 0, value: int = 0,
               *, avatar: str | None = None) -> DecodedCall:
        if len(data) < 4:
            raise PreflightRefused(f"call to {target} without a function selector")
        key = (to_checksum_address(target), bytes(data[:4]))
        abi = self.entries.get(key)
        if abi is None:
            raise PreflightRefused(f"target {key[0]} selector 0x{key[1].hex()} is not on the allowlist")
        if value:
            raise PreflightRefused(f"call to {key[0]}.{abi['name']} sends {value} wei; no allowlisted call sends ether")
        contract = Web3().eth.contract(address=key[0], abi=[abi])
        types = [collapse_if_tuple(dict(i)) for i in abi["inputs"]]
        try:
            _, args = contract.decode_function_input(data)
            values = abi_decode(types, bytes(data[4:]))
            reencoded = bytes(data[:4]) + abi_encode(types, values)
        except Exception as exc:
            raise PreflightRefused(f"calldata for {abi['name']} does not decode: {exc}") from exc
        if reencoded != bytes(data):
            raise PreflightRefused(f"calldata for {abi['name']} has extra or non-canonical bytes")
        grant = self.grants.get(key)
        if grant is not None:
            from adapters.evm.permissions import check_arguments

            ctx = self.context if avatar is None else replace(self.context, avatar=to_checksum_address(avatar))
            why = check_arguments(grant, dict(args), ctx)
            if why is not None:
                raise PreflightRefused(f"arguments outside the bot's permissions: {why}")
        return DecodedCall(key[0], "0x" + key[1].hex(), str(abi["name"]), dict(args), operation, value)


@dataclass
class PreflightReport:
    safe_tx_hash: bytes
    calls: list[DecodedCall]
    simulation: SimulationResult | None
    invariants_before: SafeInvariants | None = None
    invariants_after: SafeInvariants | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "safe_tx_hash": "0x" + self.safe_tx_hash.hex(),
            "calls": [c.describe() for c in self.calls],
            "simulation": None if self.simulation is None else {
                "success": self.simulation.success, "gas_used": self.simulation.gas_used,
                "reason": self.simulation.reason,
            },
            "invariants_before": self.invariants_before.to_json() if self.invariants_before else None,
            "invariants_after": self.invariants_after.to_json() if self.invariants_after else None,
        }


def is_multisend_call_only(w3: Web3, address: str) -> bool:
    """The code at ``address`` is MultiSendCallOnly 1.4.1: its creation code, run by eth_call,
    returns exactly the deployed runtime (no trust in a configured address alone)."""
    from safe_eth.eth.contracts import get_multi_send_call_only_V1_4_1_contract

    creation = get_multi_send_call_only_V1_4_1_contract(w3).bytecode
    if not creation:
        return False
    runtime = w3.eth.call({"data": HexBytes(creation)})
    return bool(runtime) and bytes(runtime) == bytes(w3.eth.get_code(to_checksum_address(address)))


def decode_safe_tx(w3: Web3, tx: SafeTx, allowlist: Allowlist, multisend_call_only: str | None) -> list[DecodedCall]:
    """CALL only; DELEGATECALL only to a verified MultiSendCallOnly whose inner calls are
    each CALLs on the allowlist. Every calldata is decoded with a known ABI."""
    if tx.operation == SafeOperationEnum.CALL.value:
        return [allowlist.decode(tx.to, bytes(tx.data), 0, tx.value)]
    if tx.operation != SafeOperationEnum.DELEGATE_CALL.value:
        raise PreflightRefused(f"unknown operation {tx.operation}")
    if multisend_call_only is None or to_checksum_address(tx.to) != to_checksum_address(multisend_call_only):
        raise PreflightRefused(f"delegatecall to {tx.to} refused (only MultiSendCallOnly is allowed)")
    if not is_multisend_call_only(w3, tx.to):
        raise PreflightRefused(f"code at {tx.to} is not MultiSendCallOnly 1.4.1")
    if tx.value:
        raise PreflightRefused("delegatecall with value refused")
    try:
        inner = MultiSend.from_transaction_data(bytes(tx.data))
    except Exception:  # eth_abi raises its own DecodingError family on hostile payloads
        inner = []
    if not inner:
        raise PreflightRefused("MultiSendCallOnly payload does not decode")
    # The decoded batch must re-encode to the exact bytes that would be signed: no trailing
    # bytes, no legacy encoding the contract would read differently from the decoder.
    packed = b"".join(bytes(item.encoded_data) for item in inner)
    canonical = bytes(HexBytes(get_multi_send_contract(w3).functions.multiSend(packed)._encode_transaction_data()))
    if canonical != bytes(tx.data):
        raise PreflightRefused("MultiSendCallOnly payload has extra or non-canonical bytes")
    out = []
    for item in inner:
        if item.operation != MultiSendOperation.CALL:
            raise PreflightRefused(f"nested delegatecall to {item.to} refused")
        out.append(allowlist.decode(item.to, bytes(item.data), 0, item.value))
    return out


def preflight_safe_tx(
    adapter: SafeAdapter,
    tx: SafeTx,
    allowlist: Allowlist,
    *,
    multisend_call_only: str | None,
    simulate: Callable[[SafeTx], SimulationResult] | None,
    expected_module_changes: Iterable[str] = (),
    store: AuditStore | None = None,
) -> PreflightReport:
    """Everything checked before the bot proposes a SafeTx or anyone signs it."""

    def refuse(reason: str, h: bytes = b"") -> NoReturn:
        if store is not None:
            store.record("refusal", "safe_tx", h, adapter.chain_id, adapter.address, reason=reason)
        raise PreflightRefused(reason)

    if tx.operation not in (SafeOperationEnum.CALL.value, SafeOperationEnum.DELEGATE_CALL.value):
        refuse(f"unknown operation {tx.operation}")
    try:
        h = safe_mod.verified_safe_tx_hash(tx, adapter)
    except safe_mod.SafeError as exc:
        refuse(str(exc))
    try:
        calls = decode_safe_tx(adapter.w3, tx, allowlist, multisend_call_only)
    except PreflightRefused as exc:
        refuse(str(exc), h)
    if simulate is None:
        refuse("refused: no simulation available (a fork is required before proposing)", h)
    sim = simulate(tx)
    if not sim.success:
        refuse(f"simulation failed: {sim.reason}", h)
    expected = tuple(sorted({*sim.before.modules, *(to_checksum_address(m) for m in expected_module_changes)}))
    changed = replace(sim.before, modules=expected).diff(sim.after)
    if changed:
        refuse("Safe invariants would change: " + "; ".join(changed), h)
    if store is not None:
        store.record(
            "verification", "safe_tx", h, adapter.chain_id, adapter.address,
            reason="preflight passed", detail={"calls": [c.describe() for c in calls], "gas": sim.gas_used},
        )
    return PreflightReport(h, calls, sim, sim.before, sim.after)


def fork_simulator(fork_url: str, safe: str) -> Callable[[SafeTx], SimulationResult]:
    """A simulator over an anvil fork at ``fork_url``: snapshot, run, revert."""

    def run(tx: SafeTx) -> SimulationResult:
        from adapters.evm.chain import ChainConnection

        fork = ChainConnection([fork_url], timeout=60)
        snap = fork.rpc("evm_snapshot")
        try:
            return safe_mod.simulate_on_fork(fork.w3, safe, tx)
        finally:
            fork.rpc("evm_revert", [snap])
            fork.close()

    return run


class BotExecutor:
    """The bot's on-chain actions: allowlist + decode, CALL only, simulate, send, and check
    the Safe's invariants are unchanged afterwards. Goes through the Roles modifier only."""

    def __init__(self, adapter: SafeAdapter, executor: Any, allowlist: Allowlist, store: AuditStore | None = None) -> None:
        self.adapter = adapter
        self.executor = executor  # adapters.evm.roles.RolesExecutor
        self.allowlist = allowlist
        self.store = store

    def _refuse(self, reason: str, h: bytes) -> NoReturn:
        if self.store is not None:
            self.store.record("refusal", "roles", h, self.adapter.chain_id, self.adapter.address,
                              actor=str(self.executor.address), reason=reason)
        raise PreflightRefused(reason)

    def execute(self, to: str, data: bytes, *, operation: int = 0, value: int = 0) -> DecodedCall:
        from adapters.evm.roles import RolesError

        h = keccak(bytes.fromhex(to_checksum_address(to)[2:]) + data)
        if operation != 0:
            self._refuse(f"operation {operation} refused: the bot only CALLs", h)
        if value != 0:
            self._refuse("the bot never sends ether", h)
        try:
            call = self.allowlist.decode(to, data, avatar=self.adapter.address)
        except PreflightRefused as exc:
            self._refuse(str(exc), h)
        before = self.adapter.invariants()
        try:
            self.executor.simulate(to, data)
        except RolesError as exc:
            self._refuse(f"simulation refused by Roles: {exc}", h)
        try:
            self.executor.execute(to, data)
        except RolesError as exc:
            self._refuse(f"execution failed: {exc}", h)
        after = self.adapter.invariants()
        if before.diff(after):
            self._refuse("Safe invariants changed after execution: " + "; ".join(before.diff(after)), h)
        if self.store is not None:
            self.store.record("application", "roles", h, self.adapter.chain_id, self.adapter.address,
                              actor=str(self.executor.address), detail={"call": call.describe()})
        return call


def bot_scope_allowlist(position_manager: str, swap_router: str, tokens: Iterable[str],
                        avatar: str | None = None, *, bounds: Any = None) -> Allowlist:
    """The bot's allowlist, derived from the permission table its Roles scope comes from:
    the same (target, selector) pairs and the same parameter conditions (the Safe as
    recipient is checked when ``avatar`` is given here or by the executor). With ``bounds``
    (permissions.ScopeBounds) the bounded table: routes, allowance caps; the oracle floor
    and the allowances left are Roles' to check."""
    from adapters.evm import permissions as perm

    scope = perm.BotScope(position_manager, swap_router, tuple(tokens), bounds)
    al = Allowlist(context=perm.Context(scope, to_checksum_address(avatar) if avatar else None))
    for g in perm.grants(scope):
        al.allow(g.target, [g.abi], [g.permission.function])
        al.grants[(g.target, g.selector)] = g
    return al


def roles_setup_allowlist(safe: str, roles: str) -> Allowlist:
    """What a Roles setup SafeTx may contain: enableModule on the Safe and role scoping
    (the functions the permission table's setup calls use)."""
    from safe_eth.eth.contracts import get_safe_V1_4_1_contract

    from adapters.evm.permissions import SETUP_FUNCTIONS
    from adapters.evm.roles import roles_artifacts

    al = Allowlist()
    al.allow(safe, [dict(i) for i in get_safe_V1_4_1_contract(Web3()).abi], SETUP_FUNCTIONS["safe"])
    al.allow(roles, roles_artifacts()["Roles"]["abi"], SETUP_FUNCTIONS["roles"])
    return al


def propose_safe_tx(
    adapter: SafeAdapter,
    service: Any,
    tx: SafeTx,
    proposer: LocalAccount,
    allowlist: Allowlist,
    *,
    multisend_call_only: str | None,
    simulate: Callable[[SafeTx], SimulationResult] | None,
    expected_module_changes: Iterable[str] = (),
    store: AuditStore | None = None,
) -> PreflightReport:
    """Pre-flight first, then post to the Transaction Service (adapters.safe_tx_service) as a
    delegate; the owners confirm there. Nothing is proposed that failed a check."""
    report = preflight_safe_tx(
        adapter, tx, allowlist, multisend_call_only=multisend_call_only, simulate=simulate,
        expected_module_changes=expected_module_changes, store=store,
    )
    posted = service.propose(tx, proposer)
    if posted != report.safe_tx_hash:
        reason = f"the proposed hash 0x{bytes(posted).hex()} differs from the pre-flighted one"
        if store is not None:
            store.record("refusal", "safe_tx", report.safe_tx_hash, adapter.chain_id, adapter.address,
                         actor=proposer.address, reason=reason)
        raise PreflightRefused(reason)
    if store is not None:
        store.record("proposal", "safe_tx", report.safe_tx_hash, adapter.chain_id, adapter.address,
                     actor=proposer.address, detail=report.to_json())
    return report
