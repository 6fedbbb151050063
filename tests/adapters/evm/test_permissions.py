"""One table of the bot's permissions (adapters/evm/permissions.py), two consumers: the Roles
v2 scope calls and the pre-flight allowlist. Both are derived from the table here and
checked against each other: the same (target, selector) pairs, and for every parameter the
Roles condition tree (read back from the calldata the Safe would sign, by an evaluator
written here) accepts exactly the values the allowlist accepts. The Roles batch is also
compared with the scope as it was reviewed by hand, and, on a real chain, with the batch
``lphedge roles setup`` produces, byte for byte."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from web3 import Web3

from adapters.evm import permissions as perm
from adapters.evm import roles as R
from bot import governance as G
from bot import preflight as P

pytestmark = pytest.mark.chain  # Roles artifacts come through node; the last test runs anvil


def addr(n: int) -> str:
    return Web3.to_checksum_address("0x" + f"{n:040x}")


NPM, ROUTER, TOKENS, SAFE, BOT, ROLES = addr(0xA1), addr(0xA2), (addr(0xB1), addr(0xB2), addr(0xB3)), addr(0x5AFE), addr(0xB07), addr(0x201E5)
SCOPE = perm.BotScope(NPM, ROUTER, TOKENS)
KEY = R.role_key("lphedge-bot")
CANDIDATES = (NPM, ROUTER, *TOKENS, SAFE, BOT, addr(0xDEAD))


def roles_contract() -> Any:
    return Web3().eth.contract(address=ROLES, abi=R.roles_artifacts()["Roles"]["abi"])


def decoded_scope_calls() -> list[tuple[str, dict[str, Any]]]:
    r = roles_contract()
    out = []
    for target, data in R.scope_calls(Web3(), ROLES, BOT, KEY, SCOPE):
        assert target == ROLES
        fn, args = r.decode_function_input(data)
        out.append((fn.fn_name, dict(args)))
    return out


# ------------------------------------------------- an evaluator of Roles ConditionFlat rows
def evaluate(rows: list[tuple[int, int, int, bytes]], inputs: list[Mapping[str, Any]], args: tuple[Any, ...]) -> bool:
    """Roles v2's verdict on decoded arguments, for the operators the table uses (Pass,
    Matches, Or, EqualTo, EqualToAvatar with avatar = SAFE). Written from the Roles v2
    docs, independently of permissions.py."""
    children: dict[int, list[int]] = {}
    for i, (parent, *_rest) in enumerate(rows):
        if i:
            children.setdefault(parent, []).append(i)

    def ev(i: int, inp: Mapping[str, Any] | None, value: Any) -> bool:
        _, ptype, op, comp = rows[i]
        if op == 0:  # Pass
            return True
        if op == 5:  # Matches: calldata or tuple, one child per field
            fields = inputs if ptype == 5 else inp["components"]  # type: ignore[index]
            kids = children.get(i, [])
            assert len(kids) == len(fields)
            return all(ev(k, f, v) for k, f, v in zip(kids, fields, value, strict=True))
        if op == 2:  # Or: the same value, any child
            return any(ev(k, inp, value) for k in children[i])
        if op == 15:  # EqualToAvatar
            return str(value).lower() == SAFE.lower()
        if op == 16:  # EqualTo: the ABI encoding of the value
            assert inp is not None
            return abi_encode([inp["type"]], [value]) == comp
        raise AssertionError(f"operator {op} not in the table's vocabulary")

    return ev(0, None, args)


def _sample_args(inputs: list[Mapping[str, Any]], path: str, value: str) -> tuple[Any, ...]:
    """Arguments where every address is the Safe (or NPM for a spender), one path set to value."""

    def fill(inp: Mapping[str, Any], here: str) -> Any:
        if inp["type"] == "tuple":
            return tuple(fill(c, f"{here}.{c['name']}") for c in inp["components"])
        if here == path:
            return value
        if inp["type"] == "address":
            return NPM if inp["name"] == "spender" else SAFE
        if inp["type"] == "bool":
            return False
        return 1

    return tuple(fill(i, i["name"]) for i in inputs)


def test_every_allowlisted_function_is_scoped_and_vice_versa() -> None:
    calls = decoded_scope_calls()
    names = [n for n, _ in calls]
    assert names[:2] == ["assignRoles", "setDefaultRole"]
    assert set(names) <= set(perm.SETUP_FUNCTIONS["roles"])
    scoped_targets = [a["targetAddress"] for n, a in calls if n == "scopeTarget"]
    functions = {(a["targetAddress"], bytes(a["selector"])): (n, a) for n, a in calls if n in ("allowFunction", "scopeFunction")}
    allowlist = P.bot_scope_allowlist(NPM, ROUTER, TOKENS)
    assert set(functions) == set(allowlist.entries)  # same (target, selector) pairs, both ways
    assert sorted(scoped_targets) == sorted({t for t, _ in functions})  # each target scoped once
    current = None  # the target of the last scopeTarget: each function follows its own
    for name, a in calls[2:]:
        if name == "scopeTarget":
            current = a["targetAddress"]
        else:
            assert a["targetAddress"] == current
            assert a["options"] == 0  # no ether, no delegatecall anywhere
    assert len(functions) == 3 + len(TOKENS)


@pytest.mark.parametrize("grant", perm.grants(SCOPE), ids=lambda g: f"{g.permission.function}@{g.target[-4:]}")
def test_roles_conditions_and_allowlist_accept_the_same_arguments(grant: perm.Grant) -> None:
    calls = {(a["targetAddress"], bytes(a["selector"])): (n, a) for n, a in decoded_scope_calls()
             if n in ("allowFunction", "scopeFunction")}
    name, a = calls[(grant.target, grant.selector)]
    allowlist = P.bot_scope_allowlist(NPM, ROUTER, TOKENS, avatar=SAFE)
    contract = Web3().eth.contract(address=grant.target, abi=[grant.abi])
    inputs = grant.abi["inputs"]
    address_paths = [p for p, t in _paths(inputs) if t == "address"]
    verdicts: set[bool] = set()
    trials = [(p, v) for p in address_paths for v in CANDIDATES] or [("", "")]  # no address: one sample
    for path, value in trials:
        args = _sample_args(inputs, path, value)
        roles_says = True if name == "allowFunction" else evaluate(
            [_row(c) for c in a["conditions"]], inputs, args)
        data = bytes.fromhex(contract.encode_abi(grant.permission.function, list(args))[2:])
        try:
            allowlist.decode(grant.target, data)
            allow_says = True
        except G.PreflightRefused as exc:
            assert "outside the bot's permissions" in str(exc)
            allow_says = False
        assert roles_says == allow_says, (grant.permission.function, path, value)
        verdicts.add(allow_says)
    # a scoped function both accepts and refuses some of the candidates
    assert verdicts == ({True, False} if name == "scopeFunction" else {True})


def _row(c: Any) -> tuple[int, int, int, bytes]:
    """A decoded ConditionFlat (web3 gives a dict, older versions a tuple)."""
    if isinstance(c, Mapping):
        return int(c["parent"]), int(c["paramType"]), int(c["operator"]), bytes(c["compValue"])
    return int(c[0]), int(c[1]), int(c[2]), bytes(c[3])


def _paths(inputs: list[Mapping[str, Any]], prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for i in inputs:
        if i["type"] == "tuple":
            out += _paths(i["components"], f"{prefix}{i['name']}.")
        else:
            out.append((f"{prefix}{i['name']}", i["type"]))
    return out


def test_table_reproduces_the_scope_reviewed_by_hand() -> None:
    """The condition rows as they were written by hand before the table existed."""
    enc = lambda a: abi_encode(["address"], [a])  # noqa: E731
    collect = [(0, 5, 5, b""), (0, 3, 5, b""), (1, 1, 0, b""), (1, 1, 15, b""), (1, 1, 0, b""), (1, 1, 0, b"")]
    swap = [(0, 5, 5, b""), (0, 3, 5, b"")] + [(1, 1, 15 if i == 3 else 0, b"") for i in range(8)]
    approve = [(0, 5, 5, b""), (0, 0, 2, b""), (0, 1, 0, b""), (1, 1, 16, enc(NPM)), (1, 1, 16, enc(ROUTER))]
    r = roles_contract()
    npm = Web3().eth.contract(address=NPM, abi=R.uniswap_abi("NonfungiblePositionManager"))
    router = Web3().eth.contract(address=ROUTER, abi=R.uniswap_abi("SwapRouter"))

    def e(fn: Any) -> bytes:
        return bytes.fromhex(fn._encode_transaction_data()[2:])

    expected = [
        e(r.functions.assignRoles(BOT, [KEY], [True])), e(r.functions.setDefaultRole(BOT, KEY)),
        e(r.functions.scopeTarget(KEY, NPM)),
        e(r.functions.allowFunction(KEY, NPM, R.selector(npm, "decreaseLiquidity"), 0)),
        e(r.functions.scopeFunction(KEY, NPM, R.selector(npm, "collect"), collect, 0)),
        e(r.functions.scopeTarget(KEY, ROUTER)),
        e(r.functions.scopeFunction(KEY, ROUTER, R.selector(router, "exactInputSingle"), swap, 0)),
    ]
    approve_sel = bytes.fromhex("095ea7b3")  # approve(address,uint256)
    for t in TOKENS:
        expected += [e(r.functions.scopeTarget(KEY, t)), e(r.functions.scopeFunction(KEY, t, approve_sel, approve, 0))]
    assert [d for _, d in R.scope_calls(Web3(), ROLES, BOT, KEY, SCOPE)] == expected


def test_a_bad_table_entry_is_refused() -> None:
    bad = perm.Permission(perm.TargetKind.SWAP_ROUTER, "SwapRouter", "exactInputSingle", {"params.recipent": perm.EqualsAvatar()})
    (g,) = perm.grants(SCOPE, [bad])
    with pytest.raises(ValueError, match="no parameter"):
        perm.condition_tree(g, perm.Context(SCOPE))


# What `lphedge roles setup` sends is checked where the command now gets its scope (the
# approved policy's [scope], issue 9): preflight_roles_setup refuses any batch that is not,
# byte for byte, the table's (tests/bot/governance/test_setup_preflight.py), and the CLI
# run through it end to end (tests/bot/governance/test_cli.py::test_roles_deploy_and_setup_cli).
