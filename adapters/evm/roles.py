"""Zodiac Roles v2: the only door through which the bot touches the Safe's assets.

Bytecode comes from the npm package ``zodiac-roles-sdk`` (Roles, Integrity, Packer;
Roles is linked against the two libraries here) and the ERC-2470 singleton factory's
keyless deployment transaction from ``@gnosis.pm/zodiac`` (Roles stores scoped conditions
through that factory). Roles exceeds 24 KiB: anvil needs ``--disable-code-size-limit``.

The bot's role allows only:
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
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.abi import function_abi_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError

from adapters.anvil import PROJECT_ROOT

NODE_MODULES = PROJECT_ROOT / "node_modules"
SINGLETON_FACTORY = to_checksum_address("0xce0042b868300000d44a59004da54a005ffdcf9f")
_SINGLETON_DEPLOYER = to_checksum_address("0xBb6e024b9cFFACB947A71991E386681B1Cd1477D")
_SINGLETON_FUNDING = 24_700_000_000_000_000  # 0.0247 ether: gas 247000 * 100 gwei

# Roles v2 enums (zodiac-roles-deployments: ParameterType, Operator, ExecutionOptions, Status).
P_NONE, P_STATIC, P_DYNAMIC, P_TUPLE, P_ARRAY, P_CALLDATA = 0, 1, 2, 3, 4, 5
OP_PASS, OP_AND, OP_OR, OP_MATCHES, OP_EQUAL_TO_AVATAR, OP_EQUAL_TO = 0, 1, 2, 5, 15, 16
EXEC_NONE = 0
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


class RolesError(RuntimeError):
    """Artifacts missing, or the modifier refused / reverted."""


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


def _send(w3: Web3, account: LocalAccount, tx: dict[str, Any]) -> Any:
    tx = dict(tx)
    tx.setdefault("from", account.address)
    tx.setdefault("nonce", w3.eth.get_transaction_count(account.address))
    tx.setdefault("chainId", w3.eth.chain_id)
    if "gas" not in tx:
        tx["gas"] = int(w3.eth.estimate_gas(tx) * 12 // 10)  # type: ignore[arg-type]
    tx.setdefault("gasPrice", w3.eth.gas_price)
    signed = account.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
    if receipt["status"] != 1:
        raise RolesError(f"transaction {receipt['transactionHash'].hex()} reverted")
    return receipt


def ensure_singleton_factory(w3: Web3, funder: LocalAccount) -> str:
    """Put the ERC-2470 factory at its canonical address (no-op where it exists)."""
    if w3.eth.get_code(SINGLETON_FACTORY):
        return SINGLETON_FACTORY
    _send(w3, funder, {"to": _SINGLETON_DEPLOYER, "value": _SINGLETON_FUNDING, "gas": 21000})
    tx_hash = w3.eth.send_raw_transaction(singleton_factory_tx())
    w3.eth.wait_for_transaction_receipt(tx_hash)
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
    receipt = _send(w3, account, {"data": data, "gas": 12_000_000})
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


def _cond(parent: int, param_type: int, operator: int, comp: bytes = b"") -> tuple[int, int, int, bytes]:
    return (parent, param_type, operator, comp)


@dataclass(frozen=True)
class BotScope:
    """What the bot's role may do, as concrete addresses."""

    position_manager: str
    swap_router: str
    tokens: tuple[str, ...]


def scope_calls(
    w3: Web3, roles: str, bot: str, key: bytes, scope: BotScope
) -> list[tuple[str, bytes]]:
    """The Roles calls (target, calldata) that give ``bot`` exactly the bot scope.

    Sent by the Roles owner (the Safe), batched with enableModule in one MultiSendCallOnly.
    """
    r = w3.eth.contract(address=to_checksum_address(roles), abi=roles_artifacts()["Roles"]["abi"])
    npm = w3.eth.contract(address=to_checksum_address(scope.position_manager), abi=uniswap_abi("NonfungiblePositionManager"))
    router = w3.eth.contract(address=to_checksum_address(scope.swap_router), abi=uniswap_abi("SwapRouter"))
    erc20 = w3.eth.contract(abi=ERC20_APPROVE_ABI)

    def enc(fn: Any) -> bytes:
        return bytes(HexBytes(fn._encode_transaction_data()))

    calls: list[tuple[str, bytes]] = [
        (roles, enc(r.functions.assignRoles(to_checksum_address(bot), [key], [True]))),
        (roles, enc(r.functions.setDefaultRole(to_checksum_address(bot), key))),
        (roles, enc(r.functions.scopeTarget(key, npm.address))),
        (roles, enc(r.functions.allowFunction(key, npm.address, selector(npm, "decreaseLiquidity"), EXEC_NONE))),
    ]
    # collect((tokenId, recipient, amount0Max, amount1Max)): recipient must be the avatar.
    collect = [
        _cond(0, P_CALLDATA, OP_MATCHES),
        _cond(0, P_TUPLE, OP_MATCHES),
        _cond(1, P_STATIC, OP_PASS),
        _cond(1, P_STATIC, OP_EQUAL_TO_AVATAR),
        _cond(1, P_STATIC, OP_PASS),
        _cond(1, P_STATIC, OP_PASS),
    ]
    calls.append((roles, enc(r.functions.scopeFunction(key, npm.address, selector(npm, "collect"), collect, EXEC_NONE))))
    # exactInputSingle((tokenIn, tokenOut, fee, recipient, deadline, amountIn, amountOutMin, sqrtPriceLimitX96))
    swap = [_cond(0, P_CALLDATA, OP_MATCHES), _cond(0, P_TUPLE, OP_MATCHES)]
    swap += [_cond(1, P_STATIC, OP_EQUAL_TO_AVATAR if i == 3 else OP_PASS) for i in range(8)]
    calls.append((roles, enc(r.functions.scopeTarget(key, router.address))))
    calls.append((roles, enc(r.functions.scopeFunction(key, router.address, selector(router, "exactInputSingle"), swap, EXEC_NONE))))
    # approve(spender in {NPM, router}, any amount) on each token.
    approve = [
        _cond(0, P_CALLDATA, OP_MATCHES),
        _cond(0, P_NONE, OP_OR),
        _cond(0, P_STATIC, OP_PASS),
        _cond(1, P_STATIC, OP_EQUAL_TO, abi_encode(["address"], [npm.address])),
        _cond(1, P_STATIC, OP_EQUAL_TO, abi_encode(["address"], [router.address])),
    ]
    approve_sel = selector(erc20, "approve")
    for token in scope.tokens:
        t = to_checksum_address(token)
        calls.append((roles, enc(r.functions.scopeTarget(key, t))))
        calls.append((roles, enc(r.functions.scopeFunction(key, t, approve_sel, approve, EXEC_NONE))))
    return calls


def decode_roles_error(w3: Web3, exc: Exception) -> str:
    """Name a Roles revert: ConditionViolation(status) -> its Status name, else the error."""
    data = None
    if isinstance(exc, ContractCustomError | ContractLogicError):
        data = exc.data if isinstance(exc.data, str) else None
    if not data:
        return str(exc).splitlines()[0][:200]
    raw = bytes.fromhex(data[2:]) if data.startswith("0x") else b""
    for item in roles_artifacts()["Roles"]["abi"]:
        if item.get("type") != "error":
            continue
        sig = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
        if raw[:4] == keccak(text=sig)[:4]:
            if item["name"] == "ConditionViolation" and len(raw) >= 36:
                status = int.from_bytes(raw[4:36], "big")
                name = ROLES_STATUS[status] if status < len(ROLES_STATUS) else str(status)
                return f"ConditionViolation({name})"
            return str(item["name"])
    return f"revert 0x{raw[:4].hex()}"


class RolesExecutor:
    """The bot's only on-chain path: execTransactionWithRole on the Roles modifier."""

    def __init__(self, w3: Web3, roles: str, bot_key: str, key: bytes) -> None:
        self.w3 = w3
        self.roles = w3.eth.contract(address=to_checksum_address(roles), abi=roles_artifacts()["Roles"]["abi"])
        self._account: LocalAccount = Account.from_key(bot_key)
        self.key = key

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
        """Simulate, then send; returns the receipt (status 1) or raises RolesError."""
        self.simulate(to, data, value, operation)
        fn = self._fn(to, data, value, operation)
        # The estimate is exact for the state it ran on; the block that includes the tx can
        # cost more (e.g. a pool's oracle write when the timestamp moved on), so leave room.
        gas = fn.estimate_gas({"from": self.address})
        tx = fn.build_transaction(
            {"from": self.address, "nonce": self.w3.eth.get_transaction_count(self.address),
             "gas": gas * 5 // 4 + 50_000}
        )
        signed = self._account.sign_transaction(tx)
        receipt = self.w3.eth.wait_for_transaction_receipt(
            self.w3.eth.send_raw_transaction(signed.raw_transaction)
        )
        if receipt["status"] != 1:
            raise RolesError(f"execTransactionWithRole reverted in tx {receipt['transactionHash'].hex()}")
        return receipt

    def send_unchecked(self, to: str, data: bytes, value: int = 0, operation: int = 0) -> Any:
        """Send without simulating (tests use it to show the chain itself reverts)."""
        tx = self._fn(to, data, value, operation).build_transaction(
            {"from": self.address, "nonce": self.w3.eth.get_transaction_count(self.address), "gas": 1_000_000}
        )
        signed = self._account.sign_transaction(tx)
        return self.w3.eth.wait_for_transaction_receipt(self.w3.eth.send_raw_transaction(signed.raw_transaction))
