"""The bot's on-chain permissions, written once.

Each :class:`Permission` names a kind of target (the position manager, the swap router,
each listed token), a function, a condition per parameter, and whether ether or a
delegatecall is allowed. From this one table come:

- the Zodiac Roles v2 setup calls (``roles_scope_calls``; adapters/evm/roles.py
  ``scope_calls`` returns them): scopeTarget per target, then allowFunction for a
  function with no conditions or scopeFunction with the flattened condition tree;
- the pre-flight allowlist of the bot's executor (bot/preflight.py
  ``bot_scope_allowlist``): the same (target, selector) pairs, and the same parameter
  conditions checked off-chain on the decoded arguments before anything is simulated;
- the allowlist of the Roles setup transaction (``SETUP_FUNCTIONS``: the Roles admin
  functions ``roles_scope_calls`` uses, plus the Safe's enableModule).

Conditions are small frozen classes with two faces: ``node`` (the Roles v2 condition
subtree, as ``ConditionFlat`` rows once flattened breadth-first, the order Roles' Integrity
library checks) and ``holds`` (the same test on a decoded value, for the pre-flight).
More kinds (value bounds: ``WithinAllowance``, ``LessThan``/``GreaterThan``, a ``Custom``
oracle-checked minimum) are new classes with both faces; the table and its two consumers
do not change shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Protocol

from eth_abi.abi import encode as abi_encode
from eth_utils.abi import function_abi_to_4byte_selector
from eth_utils.address import to_checksum_address


# Roles v2 enums (zodiac-roles-deployments: ParameterType, Operator, ExecutionOptions).
class ParamType(IntEnum):
    NONE = 0
    STATIC = 1
    DYNAMIC = 2
    TUPLE = 3
    ARRAY = 4
    CALLDATA = 5


class Op(IntEnum):
    PASS = 0
    AND = 1
    OR = 2
    MATCHES = 5
    EQUAL_TO_AVATAR = 15
    EQUAL_TO = 16


class ExecOptions(IntEnum):
    NONE = 0
    SEND = 1
    DELEGATE_CALL = 2
    BOTH = 3


class TargetKind(StrEnum):
    POSITION_MANAGER = "position_manager"
    SWAP_ROUTER = "swap_router"
    TOKEN = "token"  # each listed token


# ---------------------------------------------------------------------------- the scope
@dataclass(frozen=True)
class BotScope:
    """What the bot's role may touch, as concrete addresses."""

    position_manager: str
    swap_router: str
    tokens: tuple[str, ...]

    def targets(self, kind: TargetKind) -> tuple[str, ...]:
        if kind is TargetKind.POSITION_MANAGER:
            return (to_checksum_address(self.position_manager),)
        if kind is TargetKind.SWAP_ROUTER:
            return (to_checksum_address(self.swap_router),)
        return tuple(to_checksum_address(t) for t in self.tokens)

    def address_of(self, kind: TargetKind) -> str:
        (one,) = self.targets(kind)
        return one


# ------------------------------------------------------------------------- conditions
@dataclass(frozen=True)
class Node:
    """One Roles v2 condition node and its children."""

    param_type: ParamType
    op: Op
    comp: bytes = b""
    children: tuple[Node, ...] = ()


def flatten(root: Node) -> list[tuple[int, int, int, bytes]]:
    """ConditionFlat rows (parent, paramType, operator, compValue), breadth-first; the
    root is its own parent (index 0)."""
    rows: list[tuple[int, int, int, bytes]] = [(0, int(root.param_type), int(root.op), root.comp)]
    queue: list[tuple[Node, int]] = [(root, 0)]
    while queue:
        node, index = queue.pop(0)
        for child in node.children:
            rows.append((index, int(child.param_type), int(child.op), child.comp))
            queue.append((child, len(rows) - 1))
    return rows


@dataclass(frozen=True)
class Context:
    """What conditions refer to: the scope's addresses and the avatar (the Safe), which
    is known on-chain to Roles and passed to ``holds`` by the pre-flight (None: unknown)."""

    scope: BotScope
    avatar: str | None = None


class Condition(Protocol):
    def node(self, abi_type: str, ctx: Context) -> Node: ...

    def holds(self, value: Any, ctx: Context) -> bool | None:
        """True/False, or None when it cannot be told off-chain (left to Roles)."""
        ...

    def describe(self) -> str: ...


def _static(abi_type: str) -> None:
    if abi_type.endswith("]") or abi_type in ("bytes", "string") or abi_type.startswith("("):
        raise ValueError(f"condition on a non-static parameter type {abi_type}")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return bool(a == b)


@dataclass(frozen=True)
class Pass:
    """Any value."""

    def node(self, abi_type: str, ctx: Context) -> Node:
        return Node(ParamType.STATIC, Op.PASS)

    def holds(self, value: Any, ctx: Context) -> bool | None:
        return True

    def describe(self) -> str:
        return "any"


@dataclass(frozen=True)
class EqualsAvatar:
    """The Safe the Roles modifier acts for (its avatar)."""

    def node(self, abi_type: str, ctx: Context) -> Node:
        _static(abi_type)
        return Node(ParamType.STATIC, Op.EQUAL_TO_AVATAR)

    def holds(self, value: Any, ctx: Context) -> bool | None:
        return None if ctx.avatar is None else _same(value, ctx.avatar)

    def describe(self) -> str:
        return "the Safe"


@dataclass(frozen=True)
class OneOf:
    """One of the scope's addresses of the given kinds (one kind: EqualTo, more: Or)."""

    kinds: tuple[TargetKind, ...]

    def values(self, ctx: Context) -> list[str]:
        return [a for k in self.kinds for a in ctx.scope.targets(k)]

    def node(self, abi_type: str, ctx: Context) -> Node:
        _static(abi_type)
        leaves = tuple(Node(ParamType.STATIC, Op.EQUAL_TO, abi_encode([abi_type], [v])) for v in self.values(ctx))
        if len(leaves) == 1:
            return leaves[0]
        return Node(ParamType.NONE, Op.OR, children=leaves)

    def holds(self, value: Any, ctx: Context) -> bool | None:
        return any(_same(value, v) for v in self.values(ctx))

    def describe(self) -> str:
        return "one of " + "/".join(k.value for k in self.kinds)


# -------------------------------------------------------------------------- permissions
@dataclass(frozen=True)
class Permission:
    """One function the bot may call on one kind of target.

    ``params`` maps a parameter path ("params.recipient" for a tuple field, "spender"
    for a plain argument) to its condition; parameters not named pass. ``scoped=False``
    allows the function with any arguments (Roles allowFunction)."""

    target: TargetKind
    abi: str  # "NonfungiblePositionManager", "SwapRouter", "ERC20"
    function: str
    params: Mapping[str, Condition] = field(default_factory=dict)
    scoped: bool = True
    send: bool = False  # ether allowed with the call
    delegatecall: bool = False

    @property
    def exec_options(self) -> ExecOptions:
        return ExecOptions(int(self.send) | (2 if self.delegatecall else 0))


# The table. The NPM only lets the Safe touch positions it owns or is approved for, so
# decreaseLiquidity needs no argument condition; every output goes to the Safe; approvals
# only to the two Uniswap contracts. No ether, no delegatecall anywhere.
PERMISSIONS: tuple[Permission, ...] = (
    Permission(TargetKind.POSITION_MANAGER, "NonfungiblePositionManager", "decreaseLiquidity", scoped=False),
    Permission(TargetKind.POSITION_MANAGER, "NonfungiblePositionManager", "collect",
               {"params.recipient": EqualsAvatar()}),
    Permission(TargetKind.SWAP_ROUTER, "SwapRouter", "exactInputSingle",
               {"params.recipient": EqualsAvatar()}),
    Permission(TargetKind.TOKEN, "ERC20", "approve",
               {"spender": OneOf((TargetKind.POSITION_MANAGER, TargetKind.SWAP_ROUTER))}),
)

# What a Roles setup transaction may call: the Safe's enableModule and the Roles admin
# functions roles_scope_calls emits.
SETUP_FUNCTIONS: Mapping[str, tuple[str, ...]] = {
    "safe": ("enableModule",),
    "roles": ("assignRoles", "setDefaultRole", "scopeTarget", "allowFunction", "scopeFunction"),
}


# --------------------------------------------------------------------------- resolution
def abi_of(name: str) -> list[dict[str, Any]]:
    from adapters.evm.roles import ERC20_APPROVE_ABI, uniswap_abi

    return ERC20_APPROVE_ABI if name == "ERC20" else uniswap_abi(name)


def function_abi(p: Permission) -> dict[str, Any]:
    matches = [i for i in abi_of(p.abi) if i.get("type") == "function" and i.get("name") == p.function]
    if len(matches) != 1:
        raise ValueError(f"{p.abi}.{p.function}: {len(matches)} ABI entries")
    return matches[0]


def selector_of(p: Permission) -> bytes:
    return bytes(function_abi_to_4byte_selector(function_abi(p)))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Grant:
    """A permission bound to one concrete target address."""

    target: str
    permission: Permission
    abi: dict[str, Any]
    selector: bytes


def grants(scope: BotScope, table: Sequence[Permission] = PERMISSIONS) -> list[Grant]:
    """Every (target address, permission), grouped by target in the table's order."""
    out: list[Grant] = []
    order: list[str] = []
    by_target: dict[str, list[Grant]] = {}
    for p in table:
        item, sel = function_abi(p), selector_of(p)
        for target in scope.targets(p.target):
            if target not in by_target:
                order.append(target)
                by_target[target] = []
            by_target[target].append(Grant(target, p, item, sel))
    for target in order:
        out.extend(by_target[target])
    return out


def _input_type(inp: Mapping[str, Any]) -> str:
    if inp["type"].startswith("tuple"):
        return "(" + ",".join(_input_type(c) for c in inp["components"]) + ")" + str(inp["type"])[5:]
    return str(inp["type"])


def _param_paths(inputs: Sequence[Mapping[str, Any]], prefix: str = "") -> set[str]:
    out = set()
    for inp in inputs:
        path = prefix + inp["name"]
        out.add(path)
        if inp["type"] == "tuple":
            out |= _param_paths(inp["components"], path + ".")
    return out


def _check_paths(g: Grant) -> None:
    unknown = set(g.permission.params) - _param_paths(g.abi["inputs"])
    if unknown:
        raise ValueError(f"{g.permission.abi}.{g.permission.function}: no parameter {sorted(unknown)}")


def condition_tree(g: Grant, ctx: Context) -> Node:
    """The Roles v2 condition tree of a scoped permission (calldata Matches at the root)."""
    _check_paths(g)

    def build(inp: Mapping[str, Any], path: str) -> Node:
        if inp["type"] == "tuple":
            return Node(ParamType.TUPLE, Op.MATCHES,
                        children=tuple(build(c, f"{path}.{c['name']}") for c in inp["components"]))
        cond = g.permission.params.get(path, Pass())
        return cond.node(_input_type(inp), ctx)

    return Node(ParamType.CALLDATA, Op.MATCHES, children=tuple(build(i, i["name"]) for i in g.abi["inputs"]))


def check_arguments(g: Grant, args: Mapping[str, Any], ctx: Context) -> str | None:
    """The permission's conditions on decoded arguments: None if they hold, else why not."""
    _check_paths(g)
    for path, cond in g.permission.params.items():
        value: Any = args
        for part in path.split("."):
            value = value[part] if isinstance(value, Mapping) else _field(value, g, path, part)
        if cond.holds(value, ctx) is False:
            return f"{g.permission.function}: {path}={value} is not {cond.describe()}"
    return None


def _field(value: Any, g: Grant, path: str, part: str) -> Any:
    """A field of a decoded tuple by name (web3 decodes tuples to tuples or dicts)."""
    inputs: Sequence[Mapping[str, Any]] = g.abi["inputs"]
    for name in path.split(".")[: path.split(".").index(part)]:
        inputs = next(i for i in inputs if i["name"] == name)["components"]
    names = [i["name"] for i in inputs]
    return value[names.index(part)]


def roles_scope_calls(roles_contract: Any, bot: str, key: bytes, scope: BotScope) -> list[tuple[str, bytes]]:
    """The Roles admin calls (target, calldata) that give ``bot`` exactly the table's scope:
    assignRoles, setDefaultRole, then per target scopeTarget and each function."""
    from hexbytes import HexBytes

    r = roles_contract
    roles = str(r.address)

    def enc(fn: Any) -> bytes:
        return bytes(HexBytes(fn._encode_transaction_data()))

    bot = to_checksum_address(bot)
    calls = [
        (roles, enc(r.functions.assignRoles(bot, [key], [True]))),
        (roles, enc(r.functions.setDefaultRole(bot, key))),
    ]
    ctx = Context(scope)
    scoped: set[str] = set()
    for g in grants(scope):
        if g.target not in scoped:
            scoped.add(g.target)
            calls.append((roles, enc(r.functions.scopeTarget(key, g.target))))
        options = int(g.permission.exec_options)
        if not g.permission.scoped:
            calls.append((roles, enc(r.functions.allowFunction(key, g.target, g.selector, options))))
        else:
            rows = flatten(condition_tree(g, ctx))
            calls.append((roles, enc(r.functions.scopeFunction(key, g.target, g.selector, rows, options))))
    return calls
