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
from dataclasses import dataclass, field, replace
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
    GREATER_THAN = 17
    LESS_THAN = 18
    CUSTOM = 22
    WITHIN_ALLOWANCE = 28
    CALL_WITHIN_ALLOWANCE = 30


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
class Allowance:
    """A Roles v2 refilling allowance: ``amount`` available per ``period_s`` (balance,
    maxRefill and refill all equal ``amount``: never more than one period's worth banked)."""

    amount: int
    period_s: int


@dataclass(frozen=True)
class ScopeBounds:
    """Value bounds (from the approved policy's [scope]): the (tokenIn, tokenOut, fee)
    routes, per-token allowances of amountIn and of approvals, the OracleBoundCondition
    contract (contracts/) with the swap slippage and exit deviation bounds in bps, and the
    number of LP exits per period."""

    routes: tuple[tuple[str, str, int], ...]
    swap_allowances: tuple[tuple[str, Allowance], ...]
    approve_allowances: tuple[tuple[str, Allowance], ...]
    condition: str
    max_slippage_bps: int
    max_exit_deviation_bps: int
    exits: Allowance

    def swap_allowance(self, token: str) -> Allowance | None:
        return next((a for t, a in self.swap_allowances if _same(t, token)), None)

    def approve_allowance(self, token: str) -> Allowance | None:
        return next((a for t, a in self.approve_allowances if _same(t, token)), None)


def allowance_key(kind: str, token: str | None = None) -> bytes:
    """A readable bytes32 allowance key: b"swap"/b"appr" + the token's 20 bytes, or
    b"lphedge-exits" (keys are global per Roles modifier)."""
    raw = kind.encode() + (bytes.fromhex(token[2:]) if token else b"")
    if len(raw) > 32:
        raise ValueError(f"allowance key {kind!r} too long")
    return raw.ljust(32, b"\0")


EXITS_KEY = "lphedge-exits"


def bounds_from_policy(scope: Any, condition: str) -> ScopeBounds:
    """ScopeBounds from a policies.policy_file.Scope and the deployed condition's address."""
    period = round(scope.period_hours * 3600)
    return ScopeBounds(
        routes=tuple((to_checksum_address(r.token_in), to_checksum_address(r.token_out), r.fee) for r in scope.swaps),
        # a route's token_in without a limit gets a zero allowance: listed, but never usable
        swap_allowances=tuple((to_checksum_address(t.token), Allowance(t.swap_per_period, period)) for t in scope.limits)
        + tuple((to_checksum_address(t), Allowance(0, period))
                for t in sorted({r.token_in for r in scope.swaps} - {t.token for t in scope.limits})),
        approve_allowances=tuple((to_checksum_address(t.token), Allowance(t.approve_per_period, period))
                                 for t in scope.limits),
        condition=to_checksum_address(condition),
        max_slippage_bps=scope.max_slippage_bps,
        max_exit_deviation_bps=scope.max_exit_deviation_bps,
        exits=Allowance(scope.max_exits_per_period, period),
    )


@dataclass(frozen=True)
class BotScope:
    """What the bot's role may touch, as concrete addresses; with ``bounds`` the table is
    BOUNDED_PERMISSIONS (value bounds), without it the shape-only PERMISSIONS."""

    position_manager: str
    swap_router: str
    tokens: tuple[str, ...]
    bounds: ScopeBounds | None = None

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
    target: str | None = None  # the grant's target address (per-token allowances)

    @property
    def bounds(self) -> ScopeBounds:
        if self.scope.bounds is None:
            raise ValueError("a value-bound condition needs ScopeBounds in the scope")
        return self.scope.bounds


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


def _custom_comp(condition: str, bps: int) -> bytes:
    """Custom's compValue: the ICustomCondition address (20 bytes) + 12 bytes of ``extra``
    (here the bound in bps, which OracleBoundCondition reads as uint96(extra))."""
    return bytes.fromhex(to_checksum_address(condition)[2:]) + bps.to_bytes(12, "big")


@dataclass(frozen=True)
class TokenAllowance:
    """A uint amount within the target token's refilling allowance (WithinAllowance)."""

    kind: str  # "appr" (approve amounts)

    def allowance(self, ctx: Context) -> Allowance:
        assert ctx.target is not None
        a = ctx.bounds.approve_allowance(ctx.target)
        return a if a is not None else Allowance(0, 1)

    def node(self, abi_type: str, ctx: Context) -> Node:
        _static(abi_type)
        assert ctx.target is not None
        return Node(ParamType.STATIC, Op.WITHIN_ALLOWANCE, allowance_key(self.kind, ctx.target))

    def holds(self, value: Any, ctx: Context) -> bool | None:
        # more than a full allowance never passes; within it depends on what is left on-chain
        return False if int(value) > self.allowance(ctx).amount else None

    def describe(self) -> str:
        return "within the token's approval allowance"


@dataclass(frozen=True)
class OracleBound:
    """Custom condition: OracleBoundCondition (contracts/) checks the whole call against its
    Chainlink-style feeds: for a swap, amountOutMinimum >= the oracle floor less
    max_slippage_bps; for an LP exit, the pool price within max_exit_deviation_bps."""

    what: str  # "swap" or "exit"

    def bps(self, ctx: Context) -> int:
        b = ctx.bounds
        return b.max_slippage_bps if self.what == "swap" else b.max_exit_deviation_bps

    def node(self, abi_type: str, ctx: Context) -> Node:
        _static(abi_type)
        return Node(ParamType.STATIC, Op.CUSTOM, _custom_comp(ctx.bounds.condition, self.bps(ctx)))

    def holds(self, value: Any, ctx: Context) -> bool | None:
        return None  # needs the oracle: on-chain only

    def describe(self) -> str:
        return f"oracle-bounded ({self.what})"


SWAP_FIELDS = ("tokenIn", "tokenOut", "fee", "recipient", "deadline", "amountIn", "amountOutMinimum",
               "sqrtPriceLimitX96")


@dataclass(frozen=True)
class SwapRoutes:
    """On exactInputSingle's params tuple: Or over the policy's routes, each a Matches with
    tokenIn/tokenOut/fee EqualTo the route, recipient the Safe, amountIn WithinAllowance of
    tokenIn's swap allowance, amountOutMinimum Custom (the oracle floor)."""

    def node_tuple(self, inp: Mapping[str, Any], ctx: Context) -> Node:
        names = [c["name"] for c in inp["components"]]
        if tuple(names) != SWAP_FIELDS:
            raise ValueError(f"exactInputSingle params {names} differ from {SWAP_FIELDS}")
        b = ctx.bounds
        branches = []
        for token_in, token_out, fee in b.routes:
            if b.swap_allowance(token_in) is None:
                raise ValueError(f"route {token_in}->{token_out}/{fee}: no swap allowance for {token_in}")

            def eq(t: str, v: Any) -> Node:
                return Node(ParamType.STATIC, Op.EQUAL_TO, abi_encode([t], [v]))

            branches.append(Node(ParamType.TUPLE, Op.MATCHES, children=(
                eq("address", token_in), eq("address", token_out), eq("uint24", fee),
                Node(ParamType.STATIC, Op.EQUAL_TO_AVATAR), Node(ParamType.STATIC, Op.PASS),
                Node(ParamType.STATIC, Op.WITHIN_ALLOWANCE, allowance_key("swap", token_in)),
                OracleBound("swap").node("uint256", ctx), Node(ParamType.STATIC, Op.PASS),
            )))
        if not branches:
            raise ValueError("no swap route in the scope: leave exactInputSingle out instead")
        if len(branches) == 1:
            return branches[0]
        return Node(ParamType.NONE, Op.OR, children=tuple(branches))

    def node(self, abi_type: str, ctx: Context) -> Node:
        raise ValueError("SwapRoutes applies to the params tuple")

    def holds(self, value: Any, ctx: Context) -> bool | None:
        v = dict(value) if isinstance(value, Mapping) else dict(zip(SWAP_FIELDS, value, strict=True))
        b = ctx.bounds
        route = next((r for r in b.routes if _same(r[0], v["tokenIn"]) and _same(r[1], v["tokenOut"])
                      and r[2] == v["fee"]), None)
        if route is None:
            return False
        if ctx.avatar is not None and not _same(v["recipient"], ctx.avatar):
            return False
        allowance = b.swap_allowance(route[0])
        if allowance is None or int(v["amountIn"]) > allowance.amount:
            return False
        return None  # the allowance left and the oracle floor: on-chain

    def describe(self) -> str:
        return "a listed route to the Safe within allowance and the oracle floor"


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
    call_allowance: str | None = None  # CallWithinAllowance key (calls per period)

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

# The table with value bounds (a BotScope with ScopeBounds): swaps only on the policy's
# routes, amountIn within a refilling allowance of tokenIn, amountOutMinimum at least the
# oracle floor; approvals within a refilling allowance per token; LP exits only while the
# pool agrees with the oracle and at most N per period. collect stays recipient == Safe.
BOUNDED_PERMISSIONS: tuple[Permission, ...] = (
    Permission(TargetKind.POSITION_MANAGER, "NonfungiblePositionManager", "decreaseLiquidity",
               {"params.tokenId": OracleBound("exit")}, call_allowance=EXITS_KEY),
    Permission(TargetKind.POSITION_MANAGER, "NonfungiblePositionManager", "collect",
               {"params.recipient": EqualsAvatar()}),
    Permission(TargetKind.SWAP_ROUTER, "SwapRouter", "exactInputSingle", {"params": SwapRoutes()}),
    Permission(TargetKind.TOKEN, "ERC20", "approve",
               {"spender": OneOf((TargetKind.POSITION_MANAGER, TargetKind.SWAP_ROUTER)),
                "amount": TokenAllowance("appr")}),
)


def table_for(scope: BotScope) -> tuple[Permission, ...]:
    return PERMISSIONS if scope.bounds is None else BOUNDED_PERMISSIONS


# What a Roles setup transaction may call: the Safe's enableModule and the Roles admin
# functions roles_scope_calls emits.
SETUP_FUNCTIONS: Mapping[str, tuple[str, ...]] = {
    "safe": ("enableModule",),
    "roles": ("assignRoles", "setDefaultRole", "scopeTarget", "allowFunction", "scopeFunction", "setAllowance"),
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


def grants(scope: BotScope, table: Sequence[Permission] | None = None) -> list[Grant]:
    """Every (target address, permission), grouped by target in the table's order (by
    default the scope's table: bounded when the scope has bounds)."""
    table = table_for(scope) if table is None else table
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

    ctx = replace(ctx, target=g.target)

    def build(inp: Mapping[str, Any], path: str) -> Node:
        cond_here = g.permission.params.get(path)
        if inp["type"] == "tuple" and isinstance(cond_here, SwapRoutes):
            return cond_here.node_tuple(inp, ctx)
        if inp["type"] == "tuple":
            return Node(ParamType.TUPLE, Op.MATCHES,
                        children=tuple(build(c, f"{path}.{c['name']}") for c in inp["components"]))
        cond = g.permission.params.get(path, Pass())
        return cond.node(_input_type(inp), ctx)

    children = tuple(build(i, i["name"]) for i in g.abi["inputs"])
    if g.permission.call_allowance is not None:  # a global allowance: a trailing non-structural child
        children += (Node(ParamType.NONE, Op.CALL_WITHIN_ALLOWANCE, allowance_key(g.permission.call_allowance)),)
    return Node(ParamType.CALLDATA, Op.MATCHES, children=children)


def check_arguments(g: Grant, args: Mapping[str, Any], ctx: Context) -> str | None:
    """The permission's conditions on decoded arguments: None if they hold, else why not."""
    _check_paths(g)
    ctx = replace(ctx, target=g.target)
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
    if scope.bounds is not None:  # allowances first: the scope refers to them by key
        b = scope.bounds
        allowances = [(allowance_key("swap", t), a) for t, a in b.swap_allowances]
        allowances += [(allowance_key("appr", t), a) for t, a in b.approve_allowances]
        allowances.append((allowance_key(EXITS_KEY), b.exits))
        for k, a in allowances:  # timestamp 0: full at the first use, refilled each period
            calls.append((roles, enc(r.functions.setAllowance(k, a.amount, a.amount, a.amount, a.period_s, 0))))
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
