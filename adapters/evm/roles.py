"""Zodiac Roles v2: the only door through which the bot touches the Safe's assets.

Bytecode comes from the npm package ``zodiac-roles-sdk`` (Roles, Integrity, Packer;
Roles is linked against the two libraries here) and the ERC-2470 singleton factory's
keyless deployment transaction from ``@gnosis.pm/zodiac`` (Roles stores scoped conditions
through that factory). Roles exceeds 24 KiB: anvil needs ``--disable-code-size-limit``.

The bot's role allows only (the table in adapters/evm/permissions.py, from which both
these Roles calls and the pre-flight allowlist are derived):
- NonfungiblePositionManager.decreaseLiquidity (the NPM itself only lets the Safe touch
  positions it owns or is approved for) and .collect with ``recipient == avatar`` (the Safe);
- SwapRouter.exactInputSingle with ``recipient == avatar``;
- ERC20.approve on the listed tokens with spender NPM or SwapRouter;
- no ether sent, no delegatecall (ExecutionOptions.None everywhere).
Changing the role needs the Roles owner: the Safe, i.e. the owners' threshold.
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.abi import function_abi_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError

from adapters.anvil import PROJECT_ROOT
from adapters.evm.permissions import (
    BotScope as BotScope,  # re-exported: callers know it as roles.BotScope
)
from adapters.evm.tx import TxReverted, TxSender, decode_standard_revert
from policies.errors import Refused

NODE_MODULES = PROJECT_ROOT / "node_modules"
SINGLETON_FACTORY = to_checksum_address("0xce0042b868300000d44a59004da54a005ffdcf9f")
_SINGLETON_DEPLOYER = to_checksum_address("0xBb6e024b9cFFACB947A71991E386681B1Cd1477D")
_SINGLETON_FUNDING = 24_700_000_000_000_000  # 0.0247 ether: gas 247000 * 100 gwei

# Roles v2 Status enum (zodiac-roles-deployments); the other enums are in permissions.py.
ROLES_STATUS = (
    "Ok", "DelegateCallNotAllowed", "TargetAddressNotAllowed", "FunctionNotAllowed",
    "SendNotAllowed", "OrViolation", "NorViolation", "ParameterNotAllowed",
    "ParameterLessThanAllowed", "ParameterGreaterThanAllowed", "ParameterNotAMatch",
    "NotEveryArrayElementPasses", "NoArrayElementPasses", "ParameterNotSubsetOfAllowed",
    "BitmaskOverflow", "BitmaskNotAllowed", "CustomConditionViolation", "AllowanceExceeded",
    "CallAllowanceExceeded", "EtherAllowanceExceeded",
)

UNISWAP_ABIS = {
    "NonfungiblePositionManager": "@uniswap/v3-periphery/artifacts/contracts/"
    "NonfungiblePositionManager.sol/NonfungiblePositionManager.json",
    "SwapRouter": "@uniswap/v3-periphery/artifacts/contracts/SwapRouter.sol/SwapRouter.json",
}
ERC20_APPROVE_ABI: list[dict[str, Any]] = [
    {
        "name": "approve", "type": "function", "stateMutability": "nonpayable",
        "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
    {
        "name": "transfer", "type": "function", "stateMutability": "nonpayable",
        "inputs": [{"name": "to", "type": "address"}, {"name": "amount", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
]


class RolesError(Refused):
    """The modifier refused / reverted, or it cannot be set up as asked (artifacts missing,
    a role name too long): either way, no scoped call goes out."""


def role_key(name: str) -> bytes:
    """A readable bytes32 role key (ethers' encodeBytes32String): ASCII, right-padded."""
    raw = name.encode()
    if len(raw) > 31:
        raise RolesError(f"role name {name!r} longer than 31 bytes")
    return raw.ljust(32, b"\0")


@cache
def roles_artifacts() -> dict[str, dict[str, Any]]:
    """abi/bytecode of Roles (unlinked), Integrity and Packer from zodiac-roles-sdk (via node)."""
    script = (
        'const t=require("zodiac-roles-sdk/typechain");const o={};'
        'for (const n of ["Roles","Integrity","Packer"]) {const f=t[n+"__factory"];'
        "o[n]={abi:f.abi,bytecode:f.bytecode};}"
        "process.stdout.write(JSON.stringify(o));"
    )
    try:
        out = subprocess.run(
            ["node", "-e", script], cwd=PROJECT_ROOT, capture_output=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RolesError(
            "cannot read zodiac-roles-sdk artifacts (node + `npm ci` needed)"
        ) from exc
    data: dict[str, dict[str, Any]] = json.loads(out)
    return data


@cache
def singleton_factory_tx() -> bytes:
    """The ERC-2470 keyless deployment transaction, as shipped by @gnosis.pm/zodiac."""
    path = NODE_MODULES / "@gnosis.pm/zodiac/dist/cjs/factory/singletonFactory.js"
    if not path.exists():
        raise RolesError(f"{path} missing: run `npm ci`")
    match = re.search(r'broadcastTransaction\("(0x[0-9a-fA-F]+)"\)', path.read_text())
    if not match:
        raise RolesError("ERC-2470 deployment transaction not found in @gnosis.pm/zodiac")
    return bytes.fromhex(match.group(1)[2:])


def link_placeholder(fully_qualified_name: str) -> str:
    """Solidity's library placeholder: __$ + keccak(name)[:17 bytes] hex + $__."""
    return "__$" + keccak(text=fully_qualified_name).hex()[:34] + "$__"


def linked_roles_bytecode(integrity: str, packer: str) -> str:
    code = str(roles_artifacts()["Roles"]["bytecode"])
    for name, address in (
        ("contracts/Integrity.sol:Integrity", integrity),
        ("contracts/packers/Packer.sol:Packer", packer),
    ):
        placeholder = link_placeholder(name)
        if placeholder not in code:
            raise RolesError(f"placeholder for {name} not found in Roles bytecode")
        code = code.replace(placeholder, address[2:].lower())
    if "__$" in code:
        raise RolesError("Roles bytecode still has unlinked libraries")
    return code


def _sender(w3: Web3, account: LocalAccount) -> TxSender:
    return TxSender(w3, account, decoders=(decode_roles_revert, decode_standard_revert))


def _send(w3: Web3, account: LocalAccount, tx: dict[str, Any]) -> Any:
    """One transaction through the project's sender (adapters/evm/tx.py); RolesError on revert."""
    try:
        return _sender(w3, account).send(tx)
    except TxReverted as exc:
        raise RolesError(str(exc)) from None


def ensure_singleton_factory(w3: Web3, funder: LocalAccount) -> str:
    """Put the ERC-2470 factory at its canonical address (no-op where it exists)."""
    if w3.eth.get_code(SINGLETON_FACTORY):
        return SINGLETON_FACTORY
    _send(w3, funder, {"to": _SINGLETON_DEPLOYER, "value": _SINGLETON_FUNDING})
    try:  # keyless: signed once by its publisher, with its own gas and price
        _sender(w3, funder).send_raw(singleton_factory_tx())
    except TxReverted as exc:
        raise RolesError(f"ERC-2470 deployment: {exc}") from None
    if not w3.eth.get_code(SINGLETON_FACTORY):
        raise RolesError("ERC-2470 singleton factory did not deploy at its canonical address")
    return SINGLETON_FACTORY


def deploy_roles(w3: Web3, deployer_key: str, owner: str, avatar: str, target: str) -> str:
    """Deploy Integrity, Packer and a linked Roles modifier (owner, avatar, target); returns it.

    For a local chain or a fork. On a live chain use the canonical mastercopy through the
    ModuleProxyFactory instead; the setup transaction below is the same either way.
    """
    account: LocalAccount = Account.from_key(deployer_key)
    ensure_singleton_factory(w3, account)
    arts = roles_artifacts()
    libs = {}
    for name in ("Integrity", "Packer"):
        receipt = _send(w3, account, {"data": arts[name]["bytecode"]})
        libs[name] = to_checksum_address(receipt["contractAddress"])
    factory = w3.eth.contract(
        abi=arts["Roles"]["abi"], bytecode=linked_roles_bytecode(libs["Integrity"], libs["Packer"])
    )
    data = factory.constructor(
        to_checksum_address(owner), to_checksum_address(avatar), to_checksum_address(target)
    ).data_in_transaction
    receipt = _send(w3, account, {"data": data})
    return to_checksum_address(receipt["contractAddress"])


@cache
def uniswap_abi(name: str) -> list[dict[str, Any]]:
    path = NODE_MODULES / UNISWAP_ABIS[name]
    if not path.exists():
        raise RolesError(f"{path} missing: run `npm ci`")
    abi: list[dict[str, Any]] = json.loads(path.read_text())["abi"]
    return abi


def selector(contract: Contract | type[Contract], fn_name: str) -> bytes:
    """4-byte selector of the (single) function of that name in the contract's ABI."""
    matches = [i for i in contract.abi if i.get("type") == "function" and i.get("name") == fn_name]
    if len(matches) != 1:
        raise RolesError(f"{fn_name}: {len(matches)} ABI entries")
    return bytes(function_abi_to_4byte_selector(matches[0]))


def scope_calls(
    w3: Web3, roles: str, bot: str, key: bytes, scope: BotScope
) -> list[tuple[str, bytes]]:
    """The Roles calls (target, calldata) that give ``bot`` exactly the bot scope, derived
    from the permission table (adapters/evm/permissions.py).

    Sent by the Roles owner (the Safe), batched with enableModule in one MultiSendCallOnly.
    """
    from adapters.evm.permissions import roles_scope_calls

    r = w3.eth.contract(address=to_checksum_address(roles), abi=roles_artifacts()["Roles"]["abi"])
    return roles_scope_calls(r, bot, key, scope)


def decode_roles_revert(raw: bytes) -> str | None:
    """Name a Roles v2 custom error from revert data: ConditionViolation(status) -> its
    Status name; None when the data is not a Roles error."""
    for item in roles_artifacts()["Roles"]["abi"]:
        if item.get("type") != "error":
            continue
        sig = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
        if raw[:4] == keccak(text=sig)[:4]:
            if item["name"] == "ConditionViolation" and len(raw) >= 36:
                status = int.from_bytes(raw[4:36], "big")
                name = ROLES_STATUS[status] if status < len(ROLES_STATUS) else str(status)
                info = raw[36:68].rstrip(b"\0")
                if info and all(32 <= c < 127 for c in info):  # a custom condition's reason
                    return f"ConditionViolation({name}: {info.decode()})"
                return f"ConditionViolation({name})"
            return str(item["name"])
    return None


def decode_roles_error(w3: Web3, exc: Exception) -> str:
    """Name a Roles revert: ConditionViolation(status) -> its Status name, else the error."""
    data = None
    if isinstance(exc, ContractCustomError | ContractLogicError):
        data = exc.data if isinstance(exc.data, str) else None
    if not data:
        return str(exc).splitlines()[0][:200]
    raw = bytes.fromhex(data[2:]) if data.startswith("0x") else b""
    return decode_roles_revert(raw) or decode_standard_revert(raw) or f"revert 0x{raw[:4].hex()}"


class RolesExecutor:
    """The bot's only on-chain path: execTransactionWithRole on the Roles modifier."""

    def __init__(self, w3: Web3, roles: str, bot_key: str, key: bytes) -> None:
        self.w3 = w3
        self.roles = w3.eth.contract(address=to_checksum_address(roles), abi=roles_artifacts()["Roles"]["abi"])
        self._account: LocalAccount = Account.from_key(bot_key)
        self.key = key
        self.sender = _sender(w3, self._account)

    @property
    def address(self) -> ChecksumAddress:
        return self._account.address

    def _fn(self, to: str, data: bytes, value: int, operation: int) -> Any:
        return self.roles.functions.execTransactionWithRole(
            to_checksum_address(to), value, data, operation, self.key, True
        )

    def simulate(self, to: str, data: bytes, value: int = 0, operation: int = 0) -> None:
        """eth_call from the bot; raises RolesError naming the Roles refusal."""
        try:
            self._fn(to, data, value, operation).call({"from": self.address})
        except (ContractCustomError, ContractLogicError) as exc:
            raise RolesError(decode_roles_error(self.w3, exc)) from exc

    def execute(self, to: str, data: bytes, value: int = 0, operation: int = 0) -> Any:
        """Simulate, then send through the project's sender (gas = estimate x1.25 + 50k: the
        including block can cost more than the state the estimate ran on, e.g. a pool's
        oracle write once the timestamp moved on); the receipt (status 1) or RolesError."""
        self.simulate(to, data, value, operation)
        fn = self._fn(to, data, value, operation)
        try:
            return self.sender.call(fn)
        except TxReverted as exc:
            raise RolesError(f"execTransactionWithRole {exc}") from None

    def send_unchecked(self, to: str, data: bytes, value: int = 0, operation: int = 0) -> Any:
        """Send without simulating (tests use it to show the chain itself reverts): a fixed
        gas limit, since an estimate would refuse it before it reaches the chain."""
        fn = self._fn(to, data, value, operation)
        built = self.sender.build({"to": fn.address, "data": fn._encode_transaction_data(), "gas": 1_000_000})
        signed = self._account.sign_transaction(built)
        return self.w3.eth.wait_for_transaction_receipt(self.w3.eth.send_raw_transaction(signed.raw_transaction))


# ------------------------------------------------------------- the project's own condition
CONDITION_SOURCE = PROJECT_ROOT / "contracts" / "OracleBoundCondition.sol"

_SOLC_SCRIPT = """
const fs = require('fs'); const path = require('path'); const solc = require('solc');
let input = '';
process.stdin.on('data', d => input += d);
process.stdin.on('end', () => {
  const find = p => { try { return {contents: fs.readFileSync(path.join('node_modules', p), 'utf8')}; }
                      catch (e) { return {error: 'not found: ' + p}; } };
  process.stdout.write(solc.compile(input, {import: find}));
});
"""


@cache
def condition_artifact() -> dict[str, Any]:
    """abi / creation bytecode / runtime of contracts/OracleBoundCondition.sol, compiled with
    the npm ``solc`` package (imports resolved from node_modules: OpenZeppelin's Math)."""
    standard = {
        "language": "Solidity",
        "sources": {CONDITION_SOURCE.name: {"content": CONDITION_SOURCE.read_text()}},
        "settings": {"optimizer": {"enabled": True, "runs": 200},
                     "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}}},
    }
    try:
        out = subprocess.run(["node", "-e", _SOLC_SCRIPT], input=json.dumps(standard), text=True,
                             capture_output=True, cwd=PROJECT_ROOT, check=True, timeout=120).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RolesError("cannot compile OracleBoundCondition (node + `npm ci` needed)") from exc
    result = json.loads(out)
    errors = [e["formattedMessage"] for e in result.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise RolesError("solc: " + "; ".join(errors))
    c = result["contracts"][CONDITION_SOURCE.name]["OracleBoundCondition"]
    return {"abi": c["abi"], "bytecode": "0x" + c["evm"]["bytecode"]["object"],
            "runtime": "0x" + c["evm"]["deployedBytecode"]["object"]}


def deploy_oracle_condition(w3: Web3, deployer_key: str, position_manager: str, factory: str,
                            max_oracle_age_s: int, feeds: dict[str, str]) -> str:
    """Deploy the custom condition (no owner: feeds, NPM, factory and the oracle age bound are
    fixed in its constructor); returns its address. Anyone may deploy it: the scope names it,
    and the owners sign the scope."""
    account: LocalAccount = Account.from_key(deployer_key)
    art = condition_artifact()
    factory_c = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    tokens = [to_checksum_address(t) for t in feeds]
    data = factory_c.constructor(
        to_checksum_address(position_manager), to_checksum_address(factory), max_oracle_age_s,
        tokens, [to_checksum_address(feeds[t]) for t in feeds],
    ).data_in_transaction
    receipt = _send(w3, account, {"data": data})
    return to_checksum_address(receipt["contractAddress"])


def verify_oracle_condition(w3: Web3, address: str, *, position_manager: str, factory: str,
                            max_oracle_age_s: int, feeds: dict[str, str]) -> None:
    """Refuse (RolesError) unless the code at ``address`` is OracleBoundCondition as compiled
    here (immutables masked, then read back and compared) with exactly these settings and
    feeds: a scope's Custom condition is only as good as the contract it names."""
    art = condition_artifact()
    c = w3.eth.contract(address=to_checksum_address(address), abi=art["abi"])
    code = bytes(w3.eth.get_code(c.address))
    expected = bytes.fromhex(art["runtime"][2:])
    masked = bytearray(code)
    for start, length in _immutable_ranges():
        masked[start:start + length] = expected[start:start + length]
    if len(code) != len(expected) or bytes(masked) != expected:
        raise RolesError(f"code at {c.address} is not OracleBoundCondition as compiled from contracts/")
    got = (c.functions.positionManager().call(), c.functions.factory().call(), c.functions.maxOracleAge().call())
    want = (to_checksum_address(position_manager), to_checksum_address(factory), max_oracle_age_s)
    if tuple(got) != want:
        raise RolesError(f"condition {c.address} settings {got} differ from {want}")
    for token, feed in feeds.items():
        actual = c.functions.feedOf(to_checksum_address(token)).call()
        if to_checksum_address(actual) != to_checksum_address(feed):
            raise RolesError(f"condition {c.address}: feed of {token} is {actual}, policy says {feed}")


@cache
def _immutable_ranges() -> tuple[tuple[int, int], ...]:
    """(start, length) of every immutable in the runtime (solc's immutableReferences)."""
    standard = {
        "language": "Solidity",
        "sources": {CONDITION_SOURCE.name: {"content": CONDITION_SOURCE.read_text()}},
        "settings": {"optimizer": {"enabled": True, "runs": 200},
                     "outputSelection": {"*": {"*": ["evm.deployedBytecode.immutableReferences"]}}},
    }
    out = subprocess.run(["node", "-e", _SOLC_SCRIPT], input=json.dumps(standard), text=True,
                         capture_output=True, cwd=PROJECT_ROOT, check=True, timeout=120).stdout
    refs = json.loads(out)["contracts"][CONDITION_SOURCE.name]["OracleBoundCondition"]["evm"]["deployedBytecode"][
        "immutableReferences"]
    return tuple((int(r["start"]), int(r["length"])) for rs in refs.values() for r in rs)


def bounded_scope(w3: Web3, deployer_key: str, *, position_manager: str, swap_router: str, factory: str,
                  tokens: tuple[str, ...], policy_scope: Any, condition: str | None = None) -> BotScope:
    """The value-bounded BotScope of an approved policy's [scope]: deploys OracleBoundCondition
    with the policy's feeds (or takes ``condition``, an existing deployment), verifies its code
    and settings, and binds the bounds (adapters/evm/permissions.py BOUNDED_PERMISSIONS)."""
    from adapters.evm.permissions import bounds_from_policy

    feeds: dict[str, str] = {to_checksum_address(t): to_checksum_address(f) for t, f in policy_scope.oracles.items()}
    if condition is None:
        condition = deploy_oracle_condition(w3, deployer_key, position_manager, factory,
                                            policy_scope.max_oracle_age_seconds, feeds)
    verify_oracle_condition(w3, condition, position_manager=position_manager, factory=factory,
                            max_oracle_age_s=policy_scope.max_oracle_age_seconds, feeds=feeds)
    return BotScope(position_manager, swap_router, tokens, bounds_from_policy(policy_scope, condition))
