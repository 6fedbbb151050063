"""The value-bounded permission table, without a chain: the Roles v2 condition trees it
produces (compared with bytes written out by hand) and the same conditions off-chain."""

from __future__ import annotations

from adapters.evm import permissions as perm
from adapters.evm.permissions import Op, ParamType
from policies.policy_file import parse_policy

NPM = "0x" + "aa" * 20
ROUTER = "0x" + "bb" * 20
WETH = "0x" + "01" * 20
USDC = "0x" + "02" * 20
COND = "0x" + "cc" * 20
SAFE = "0x" + "5a" * 20
DAY = 86400


def _scope() -> perm.BotScope:
    bounds = perm.ScopeBounds(
        routes=((WETH, USDC, 500), (USDC, WETH, 500)),
        swap_allowances=((WETH, perm.Allowance(2 * 10**18, DAY)), (USDC, perm.Allowance(6000 * 10**6, DAY))),
        approve_allowances=((WETH, perm.Allowance(2 * 10**18, DAY)), (USDC, perm.Allowance(6000 * 10**6, DAY))),
        condition=COND, max_slippage_bps=100, max_exit_deviation_bps=300, exits=perm.Allowance(2, DAY),
    )
    return perm.BotScope(NPM, ROUTER, (WETH, USDC), bounds)


def _grant(scope: perm.BotScope, function: str, target: str) -> perm.Grant:
    return next(g for g in perm.grants(scope) if g.permission.function == function and g.target.lower() == target)


def word(hex40: str) -> bytes:
    return bytes(12) + bytes.fromhex(hex40[2:])


def test_swap_tree_is_an_or_over_the_routes() -> None:
    scope = _scope()
    tree = perm.condition_tree(_grant(scope, "exactInputSingle", ROUTER), perm.Context(scope))
    assert (tree.param_type, tree.op) == (ParamType.CALLDATA, Op.MATCHES)
    (params,) = tree.children
    assert (params.param_type, params.op) == (ParamType.NONE, Op.OR) and len(params.children) == 2
    for branch, (t_in, t_out) in zip(params.children, ((WETH, USDC), (USDC, WETH)), strict=True):
        assert (branch.param_type, branch.op) == (ParamType.TUPLE, Op.MATCHES)
        got = [(c.param_type, c.op, c.comp) for c in branch.children]
        assert got == [
            (ParamType.STATIC, Op.EQUAL_TO, word(t_in)),
            (ParamType.STATIC, Op.EQUAL_TO, word(t_out)),
            (ParamType.STATIC, Op.EQUAL_TO, (500).to_bytes(32, "big")),
            (ParamType.STATIC, Op.EQUAL_TO_AVATAR, b""),
            (ParamType.STATIC, Op.PASS, b""),  # deadline
            (ParamType.STATIC, Op.WITHIN_ALLOWANCE, b"swap" + bytes.fromhex(t_in[2:]) + bytes(8)),
            (ParamType.STATIC, Op.CUSTOM, bytes.fromhex(COND[2:]) + (100).to_bytes(12, "big")),
            (ParamType.STATIC, Op.PASS, b""),  # sqrtPriceLimitX96
        ]
    rows = perm.flatten(tree)
    assert len(rows) == 1 + 1 + 2 + 2 * 8 and rows[1][0] == 0 and {r[0] for r in rows[4:12]} == {2}


def test_exit_tree_checks_the_oracle_and_counts_calls() -> None:
    scope = _scope()
    tree = perm.condition_tree(_grant(scope, "decreaseLiquidity", NPM), perm.Context(scope))
    params, calls = tree.children
    assert (params.param_type, params.op) == (ParamType.TUPLE, Op.MATCHES)
    assert (params.children[0].op, params.children[0].comp) == (Op.CUSTOM, bytes.fromhex(COND[2:]) + (300).to_bytes(12, "big"))
    assert [c.op for c in params.children[1:]] == [Op.PASS] * 4
    assert (calls.param_type, calls.op, calls.comp) == (ParamType.NONE, Op.CALL_WITHIN_ALLOWANCE, b"lphedge-exits" + bytes(19))


def test_approve_amount_within_each_tokens_allowance() -> None:
    scope = _scope()
    for token in (WETH, USDC):
        tree = perm.condition_tree(_grant(scope, "approve", token), perm.Context(scope))
        spender, amount = tree.children
        assert spender.op is Op.OR and [c.comp for c in spender.children] == [word(NPM), word(ROUTER)]
        assert (amount.op, amount.comp) == (Op.WITHIN_ALLOWANCE, b"appr" + bytes.fromhex(token[2:]) + bytes(8))


def test_the_same_conditions_off_chain() -> None:
    scope = _scope()
    ctx = perm.Context(scope, avatar=SAFE)
    swap = _grant(scope, "exactInputSingle", ROUTER)

    def params(t_in: str, t_out: str, fee: int, to: str, amount: int) -> dict[str, object]:
        return {"params": (t_in, t_out, fee, to, 2**63, amount, 0, 0)}

    assert perm.check_arguments(swap, params(WETH, USDC, 500, SAFE, 2 * 10**18), ctx) is None  # floor: on-chain
    for bad in (params(WETH, USDC, 3000, SAFE, 1), params(WETH, "0x" + "03" * 20, 500, SAFE, 1),
                params(WETH, USDC, 500, "0x" + "66" * 20, 1), params(WETH, USDC, 500, SAFE, 2 * 10**18 + 1)):
        assert perm.check_arguments(swap, bad, ctx) is not None
    approve = _grant(scope, "approve", USDC)
    assert perm.check_arguments(approve, {"spender": ROUTER, "amount": 6000 * 10**6}, ctx) is None
    why = perm.check_arguments(approve, {"spender": ROUTER, "amount": 2**256 - 1}, ctx)
    assert why is not None and why.startswith("approve: amount=")


def test_without_bounds_the_shape_only_table_and_from_a_policy_the_bounded_one() -> None:
    plain = perm.BotScope(NPM, ROUTER, (WETH, USDC))
    assert perm.table_for(plain) is perm.PERMISSIONS
    assert perm.table_for(_scope()) is perm.BOUNDED_PERMISSIONS
    policy = parse_policy(f"""
version = "t"
[[coverage]]
underlying = "ETH"
pool = "{NPM}"
underlying_token = "token0"
[scope]
swaps = [{{ token_in = "{WETH}", token_out = "{USDC}", fee = 500 }}, {{ token_in = "{USDC}", token_out = "{WETH}", fee = 500 }}]
limits = [{{ token = "{WETH}", swap_per_period = 7, approve_per_period = 8 }}]
period_hours = 12
""")
    b = perm.bounds_from_policy(policy.scope, COND)
    assert b.swap_allowance(WETH) == perm.Allowance(7, 12 * 3600)
    assert b.approve_allowance(WETH) == perm.Allowance(8, 12 * 3600)
    assert b.swap_allowance(USDC) == perm.Allowance(0, 12 * 3600)  # listed without a limit: closed
    assert b.exits == perm.Allowance(1, 12 * 3600) and (b.max_slippage_bps, b.max_exit_deviation_bps) == (100, 300)
