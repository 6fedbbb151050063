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
from policies.errors import Refused


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


def confirm_safe_tx(
    adapter: SafeAdapter,
    service: Any,
    safe_tx_hash: bytes,
    owner: LocalAccount,
    allowlist: Allowlist,
    *,
    multisend_call_only: str | None,
    simulate: Callable[[SafeTx], SimulationResult] | None,
    expected_module_changes: Iterable[str] = (),
    store: AuditStore | None = None,
) -> PreflightReport:
    """An owner confirms a transaction the Transaction Service holds (issue 9, finding 7):
    only after the transaction, rebuilt from the service's fields and hashed locally, passed
    the same pre-flight as a direct execution (allowlist + decode + the permission table's
    conditions, simulation, Safe invariants) and is still pending on the chain. A delegate's
    addOwnerWithThreshold(bot, 1) is refused here with an audit row; nothing is signed."""
    reports: list[PreflightReport] = []

    def check(tx: SafeTx) -> None:
        reports.append(preflight_safe_tx(
            adapter, tx, allowlist, multisend_call_only=multisend_call_only, simulate=simulate,
            expected_module_changes=expected_module_changes, store=store))

    try:
        service.confirm(safe_tx_hash, owner, preflight=check)
    except PreflightRefused:
        raise  # preflight_safe_tx recorded the refusal
    except Refused as exc:  # the chain shows it executed, the service's answer forged, ...
        if store is not None:
            store.record("refusal", "safe_tx", safe_tx_hash, adapter.chain_id, adapter.address,
                         actor=owner.address, reason=str(exc))
        raise
    if store is not None:
        store.record("signature", "safe_tx", reports[0].safe_tx_hash, adapter.chain_id, adapter.address,
                     actor=owner.address, detail=reports[0].to_json())
    return reports[0]


# ------------------------------------------------------------- the Roles setup transaction
@dataclass(frozen=True)
class RolesSetup:
    """What a Roles setup SafeTx must do, exactly: enable ``roles`` on the Safe and give
    ``bot`` (and no one else) the bounded scope of the approved policy, whose Custom
    condition is the OracleBoundCondition at ``scope.bounds.condition`` built with
    ``factory``, ``feeds`` and ``max_oracle_age_s``."""

    roles: str
    bot: str
    key: bytes
    scope: Any  # permissions.BotScope, with bounds
    factory: str
    feeds: dict[str, str]
    max_oracle_age_s: int

    def calls(self, w3: Web3, safe: str) -> list[tuple[str, bytes]]:
        """The batch the permission table produces (adapters/evm/permissions.py)."""
        from adapters.evm import roles as R

        return [safe_mod.enable_module_call(safe, self.roles),
                *R.scope_calls(w3, self.roles, self.bot, self.key, self.scope)]


def expected_setup_data(w3: Web3, calls: list[tuple[str, bytes]]) -> bytes:
    """multiSend(bytes) calldata of ``calls`` as plain CALLs with value 0 (MultiSendCallOnly)."""
    from safe_eth.safe.multi_send import MultiSendTx

    packed = b"".join(bytes(MultiSendTx(MultiSendOperation.CALL, to_checksum_address(to), 0, data).encoded_data)
                      for to, data in calls)
    return bytes(HexBytes(get_multi_send_contract(w3).functions.multiSend(packed)._encode_transaction_data()))


def check_setup_batch(w3: Web3, tx: SafeTx, safe: str, setup: RolesSetup, multisend_call_only: str) -> None:
    """Refuse unless ``tx`` is, byte for byte, the batch the permission table produces: a
    DELEGATECALL to MultiSendCallOnly, no value, no refund (gas price, token, receiver all
    zero: a refund is ether out), and exactly the table's calls in order. Names are not
    enough (issue 9, finding 4: assignRoles to a second member, allowFunction on WETH
    transfer with delegatecall and ether passed a name check)."""
    if setup.scope.bounds is None:
        raise PreflightRefused("the scope is shape-only; the setup needs the approved policy's bounded [scope]")
    if to_checksum_address(tx.to) != to_checksum_address(multisend_call_only) \
            or tx.operation != SafeOperationEnum.DELEGATE_CALL.value:
        raise PreflightRefused("the setup must be one DELEGATECALL to MultiSendCallOnly")
    if tx.value or tx.gas_price or int(tx.gas_token, 16) or int(tx.refund_receiver, 16) \
            or tx.safe_tx_gas or tx.base_gas:
        raise PreflightRefused("the setup must send no ether and pay no refund "
                               "(value, safeTxGas, baseGas, gasPrice, gasToken, refundReceiver all 0)")
    want = setup.calls(w3, safe)
    if bytes(tx.data) == expected_setup_data(w3, want):
        return
    try:
        got = MultiSend.from_transaction_data(bytes(tx.data))
    except Exception:  # eth_abi's DecodingError family on a hostile payload
        got = []
    for i, item in enumerate(got):
        if i >= len(want):
            raise PreflightRefused(f"setup call {i} is not in the permission table's batch "
                                   f"({len(got)} calls, the table has {len(want)})")
        to, data = want[i]
        if (item.operation, to_checksum_address(item.to), item.value, bytes(item.data)) \
                != (MultiSendOperation.CALL, to_checksum_address(to), 0, data):
            raise PreflightRefused(f"setup call {i} differs from the permission table's batch "
                                   f"(to {item.to}, operation {item.operation.value}, value {item.value}, "
                                   f"data 0x{bytes(item.data)[:4].hex()}...)")
    raise PreflightRefused(f"the setup batch differs from the permission table's ({len(got)} calls decoded, "
                           f"the table has {len(want)})")


@dataclass(frozen=True)
class Probe:
    """A call the bot must not be able to make once the setup is in place."""

    label: str
    to: str
    data: bytes
    value: int = 0
    operation: int = 0
    direct: bool = False  # from the bot straight to ``to``, not through its role


def forbidden_probes(safe: str, setup: RolesSetup, attacker: str) -> list[Probe]:
    """The fixed list of issue 9 (deliverable 5): transfer out, another recipient, another
    spender, delegatecall, ether, self-role changes, new members, a non-listed pool."""
    from safe_eth.eth.contracts import get_safe_V1_4_1_contract

    from adapters.evm import roles as R

    w3 = Web3()
    sc, b = setup.scope, setup.scope.bounds
    bot, attacker, safe = to_checksum_address(setup.bot), to_checksum_address(attacker), to_checksum_address(safe)
    erc20 = R.ERC20_APPROVE_ABI
    router = w3.eth.contract(address=to_checksum_address(sc.swap_router), abi=R.uniswap_abi("SwapRouter"))
    npm = w3.eth.contract(address=to_checksum_address(sc.position_manager),
                          abi=R.uniswap_abi("NonfungiblePositionManager"))
    roles = w3.eth.contract(address=to_checksum_address(setup.roles), abi=R.roles_artifacts()["Roles"]["abi"])
    safe_c = get_safe_V1_4_1_contract(w3, safe)

    def enc(fn: Any) -> bytes:
        return bytes(HexBytes(fn._encode_transaction_data()))

    tokens = [to_checksum_address(t) for t in sc.tokens] or [to_checksum_address(b.routes[0][0])]
    if b.routes:
        t_in, t_out, fee = b.routes[0]
    else:
        t_in, t_out, fee = tokens[0], tokens[-1], 500
    listed = {(to_checksum_address(x), to_checksum_address(y), f) for x, y, f in b.routes}
    other_fee = next(f for f in (100, 500, 3000, 10000, 2500, 200) if (t_in, t_out, f) not in listed)

    def swap(recipient: str, fee_: int) -> bytes:
        return enc(router.functions.exactInputSingle((t_in, t_out, fee_, recipient, 2**40, 1, 2**128, 0)))

    out: list[Probe] = []
    for t in tokens:
        tok = w3.eth.contract(address=t, abi=erc20)
        out.append(Probe(f"transfer {t} out", t, enc(tok.functions.transfer(attacker, 1))))
        out.append(Probe(f"approve {t} to another spender", t, enc(tok.functions.approve(attacker, 1))))
    out += [
        Probe("swap to another recipient", router.address, swap(attacker, fee)),
        Probe(f"swap in a non-listed pool (fee {other_fee})", router.address, swap(safe, other_fee)),
        Probe("collect to another recipient", npm.address,
              enc(npm.functions.collect((1, attacker, 2**128 - 1, 2**128 - 1)))),
        Probe("delegatecall", tokens[0], enc(w3.eth.contract(address=tokens[0], abi=erc20)
                                              .functions.approve(router.address, 0)), operation=1),
        Probe("ether out", attacker, b"", value=1),
        Probe("ether with an allowed call", tokens[0], enc(w3.eth.contract(address=tokens[0], abi=erc20)
                                                            .functions.approve(router.address, 0)), value=1),
        Probe("self-role change through the role", roles.address,
              enc(roles.functions.scopeTarget(setup.key, attacker))),
        Probe("new member through the role", roles.address,
              enc(roles.functions.assignRoles(attacker, [setup.key], [True]))),
        Probe("new member, bot as caller", roles.address,
              enc(roles.functions.assignRoles(attacker, [setup.key], [True])), direct=True),
        Probe("self-role change, bot as caller", roles.address,
              enc(roles.functions.allowTarget(setup.key, tokens[0], 3)), direct=True),
        Probe("Safe owner change through the role", safe, enc(safe_c.functions.addOwnerWithThreshold(bot, 1))),
        Probe("Safe module change through the role", safe, enc(safe_c.functions.enableModule(attacker))),
    ]
    return out


def run_probes(fork_w3: Web3, setup: RolesSetup, probes: Iterable[Probe]) -> list[str]:
    """eth_call each probe from the bot on the fork (where the setup was executed); returns
    the labels of those that did NOT revert (each must). Calls through the role must be
    refused by Roles itself (a Roles error), not by some later failure."""
    from web3.exceptions import ContractCustomError, ContractLogicError

    from adapters.evm import roles as R

    roles = fork_w3.eth.contract(address=to_checksum_address(setup.roles), abi=R.roles_artifacts()["Roles"]["abi"])
    bot = to_checksum_address(setup.bot)
    passed = []
    for p in probes:
        if p.direct:
            tx: dict[str, Any] = {"from": bot, "to": to_checksum_address(p.to), "data": HexBytes(p.data)}
        else:
            fn = roles.functions.execTransactionWithRole(to_checksum_address(p.to), p.value, p.data, p.operation,
                                                         setup.key, True)
            tx = {"from": bot, "to": roles.address, "data": HexBytes(fn._encode_transaction_data())}
        try:
            fork_w3.eth.call(tx)  # type: ignore[arg-type]
        except (ContractCustomError, ContractLogicError) as exc:
            raw = exc.data if isinstance(exc.data, str) else ""
            name = R.decode_roles_revert(bytes.fromhex(raw[2:])) if raw.startswith("0x") else None
            # ModuleTransactionFailed: Roles let the call through and the Safe's call failed
            # (e.g. no balance to move): the permission is there, so it counts as passed
            if p.direct or (name is not None and name != "ModuleTransactionFailed"):
                continue
            passed.append(f"{p.label} (reverted, but not by Roles: {R.decode_roles_error(fork_w3, exc)})")
            continue
        passed.append(p.label)
    return passed


def setup_fork_simulator(fork_url: str, safe: str, setup: RolesSetup,
                         attacker: str = "0x000000000000000000000000000000000000dEaD") -> Callable[[SafeTx], SimulationResult]:
    """Simulate the setup on the fork, then, on that state, try every forbidden call of
    ``forbidden_probes`` with the bot's address: the simulation fails unless each reverts.
    The fork is reverted afterwards."""

    def run(tx: SafeTx) -> SimulationResult:
        from adapters.evm.chain import ChainConnection

        fork = ChainConnection([fork_url], timeout=60)
        snap = fork.rpc("evm_snapshot")
        try:
            sim = safe_mod.simulate_on_fork(fork.w3, safe, tx)
            if not sim.success:
                return sim
            passed = run_probes(fork.w3, setup, forbidden_probes(safe, setup, attacker))
            if passed:
                return replace(sim, success=False,
                               reason="after the setup the bot could still: " + "; ".join(passed))
            return sim
        finally:
            fork.rpc("evm_revert", [snap])
            fork.close()

    return run


def preflight_roles_setup(
    adapter: SafeAdapter,
    tx: SafeTx,
    setup: RolesSetup,
    *,
    multisend_call_only: str,
    fork_url: str | None,
    store: AuditStore | None = None,
) -> PreflightReport:
    """The pre-flight of the Roles setup SafeTx: the condition contract is OracleBoundCondition
    with the policy's settings (verify_oracle_condition), the batch equals byte for byte the
    one the permission table produces, then the generic checks and a fork simulation after
    which every forbidden call must revert."""
    from adapters.evm import roles as R

    def refuse(reason: str) -> NoReturn:
        if store is not None:
            store.record("refusal", "roles", bytes(tx.safe_tx_hash), adapter.chain_id, adapter.address, reason=reason)
        raise PreflightRefused(reason)

    try:
        if setup.scope.bounds is None:
            raise PreflightRefused("the scope is shape-only; the setup needs the approved policy's bounded [scope]")
        R.verify_oracle_condition(adapter.w3, setup.scope.bounds.condition,
                                  position_manager=setup.scope.position_manager, factory=setup.factory,
                                  max_oracle_age_s=setup.max_oracle_age_s, feeds=setup.feeds)
        check_setup_batch(adapter.w3, tx, adapter.address, setup, multisend_call_only)
    except (PreflightRefused, R.RolesError) as exc:
        refuse(str(exc))
    return preflight_safe_tx(
        adapter, tx, roles_setup_allowlist(adapter.address, setup.roles), multisend_call_only=multisend_call_only,
        simulate=None if fork_url is None else setup_fork_simulator(fork_url, adapter.address, setup),
        expected_module_changes=[setup.roles], store=store,
    )
