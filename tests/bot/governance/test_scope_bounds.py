"""Issue 9, finding 1: a stolen bot key and the Safe's money, against the real Safe 1.4.1,
Zodiac Roles v2 (npm bytecode) and the project's OracleBoundCondition on anvil.

First the attack as found (the shape-only scope: it succeeds), then the same key under the
value-bounded scope from an approved policy's [scope]: every attack reverts on-chain with
Roles' reason and the Safe's balances do not move; legitimate swaps and exits (also in a
30% crash where pool and oracle agree) go through with exact amounts; a pool moved away
from the oracle cannot be exited; a property over random swaps: Roles accepts exactly the
swaps the policy's bounds accept (a pure Python predicate)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.anvil import PROJECT_ROOT, Anvil
from adapters.evm import permissions as perm
from adapters.evm import roles as R
from adapters.evm import safe as S
from bot import governance as G
from bot import preflight as P
from bot.devchain import DevChain
from policies import lp_math
from policies.policy_file import parse_policy
from tests.bot.governance.conftest import RolesEnv, execute_with_owners, refresh_fork
from tests.support.solc import compile_contract

pytestmark = pytest.mark.xdist_group("governance")
ETH = 10**18
PERIOD_H = 24
WETH_SWAP, USDC_SWAP = 2 * ETH, 6_000 * 10**6
SLIPPAGE_BPS, DEVIATION_BPS, EXITS = 100, 300, 2
WETH_USD, USDC_USD = 3000 * 10**8, 10**8


def enc(fn: Any) -> bytes:
    return bytes.fromhex(fn._encode_transaction_data()[2:])


@dataclass
class Bounded:
    chain: DevChain
    roles: str
    bot: LocalAccount
    executor: R.RolesExecutor
    bot_exec: P.BotExecutor
    scope: perm.BotScope
    condition: Any
    feeds: dict[str, Any]
    setup_calls: list[str]


def _policy_text(chain: DevChain, feeds: dict[str, str]) -> str:
    w, u = chain.tokens["WETH"].address, chain.tokens["USDC"].address
    return f"""
version = "scope-test"
[[coverage]]
underlying = "ETH"
pool = "{chain.pools['WETH/USDC/500']}"
underlying_token = "token0"
[scope]
swaps = [{{ token_in = "{w}", token_out = "{u}", fee = 500 }},
         {{ token_in = "{u}", token_out = "{w}", fee = 500 }}]
limits = [{{ token = "{w}", swap_per_period = {WETH_SWAP}, approve_per_period = {WETH_SWAP} }},
          {{ token = "{u}", swap_per_period = {USDC_SWAP}, approve_per_period = {USDC_SWAP} }}]
period_hours = {PERIOD_H}
max_slippage_bps = {SLIPPAGE_BPS}
oracles = {{ "{w}" = "{feeds[w]}", "{u}" = "{feeds[u]}" }}
max_oracle_age_seconds = 3600
max_exit_deviation_bps = {DEVIATION_BPS}
max_exits_per_period = {EXITS}
"""


@pytest.fixture(scope="module")
def bounded(gov_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv, gov_fork: Anvil) -> Iterator[Bounded]:
    """A second Roles modifier on the same Safe, set up by a threshold-signed SafeTx from an
    approved-style policy's [scope], for a bot key that is a member of this role only."""
    chain = gov_chain
    snap = chain.snapshot()
    try:
        a = chain.addresses
        w3 = chain.w3
        dep = chain.deployer.key.hex()
        abi, code = compile_contract(PROJECT_ROOT / "contracts" / "TestAggregatorV3.sol", "TestAggregatorV3")
        feeds: dict[str, Any] = {}
        for sym, answer in (("WETH", WETH_USD), ("USDC", USDC_USD)):
            rc = chain.transact(w3.eth.contract(abi=abi, bytecode=code).constructor(8, f"{sym} / USD", answer))
            feeds[chain.tokens[sym].address] = w3.eth.contract(address=rc["contractAddress"], abi=abi)
        policy = parse_policy(_policy_text(chain, {t: f.address for t, f in feeds.items()}))
        sc = policy.scope
        scope = R.bounded_scope(w3, dep, position_manager=a["position_manager"], swap_router=a["swap_router"],
                                factory=a["factory"], tokens=(chain.tokens["WETH"].address, chain.tokens["USDC"].address),
                                policy_scope=sc)
        assert scope.bounds is not None
        condition = w3.eth.contract(address=to_checksum_address(scope.bounds.condition), abi=R.condition_artifact()["abi"])
        roles = R.deploy_roles(w3, dep, a["safe"], a["safe"], a["safe"])
        bot: LocalAccount = Account.from_key(keccak(b"lphedge scope test bot"))
        chain.anvil.rpc("anvil_setBalance", [bot.address, hex(ETH)])
        key = R.role_key("lphedge-bot-bounded")
        calls = [S.enable_module_call(a["safe"], roles), *R.scope_calls(w3, roles, bot.address, key, scope)]
        tx = S.multisend_call_only_tx(safe, a["multisend_call_only"], calls)
        refresh_fork(gov_fork, chain.url)
        report = P.preflight_safe_tx(safe, tx, P.roles_setup_allowlist(a["safe"], roles),
                                     multisend_call_only=a["multisend_call_only"],
                                     simulate=P.fork_simulator(gov_fork.url, a["safe"]),
                                     expected_module_changes=[roles])
        execute_with_owners(safe, tx, chain.owner_keys[:2], dep)
        # the Safe holds 10 WETH and 30,000 USDC beyond its LP positions
        for sym, amount in (("WETH", 10 * ETH), ("USDC", 30_000 * 10**6)):
            chain.transact(chain.contract("ERC20", chain.tokens[sym].address).functions.transfer(safe.address, amount))
        executor = R.RolesExecutor(w3, roles, bot.key.hex(), key)
        al = P.bot_scope_allowlist(scope.position_manager, scope.swap_router, scope.tokens, bounds=scope.bounds)
        yield Bounded(chain, roles, bot, executor, P.BotExecutor(safe, executor, al), scope, condition, feeds,
                      [c.function for c in report.calls])
    finally:
        chain.revert(snap)


@pytest.fixture
def env(bounded: Bounded) -> Iterator[Bounded]:
    snap = bounded.chain.snapshot()
    try:
        yield bounded
    finally:
        bounded.chain.revert(snap)


def balances(chain: DevChain, who: str) -> dict[str, int]:
    return {s: int(chain.contract("ERC20", chain.tokens[s].address).functions.balanceOf(who).call())
            for s in ("WETH", "USDC", "WBTC", "DAI")}


def refused_on_chain(env: Bounded, to: str, data: bytes) -> str:
    """The Roles reason (eth_call), then the same call sent: mined and reverted."""
    with pytest.raises(R.RolesError) as exc:
        env.executor.simulate(to, data)
    receipt = env.executor.send_unchecked(to, data)
    assert receipt["status"] == 0
    return str(exc.value)


def attacker_pool(chain: DevChain, token_a: str, token_b: str, fee: int, price: float) -> str:
    """A fresh pool the attacker creates and seeds (any account can)."""
    a, b = chain.tokens[token_a], chain.tokens[token_b]
    pool = chain.create_pool(a, b, fee, price)
    edge = 887272 // {500: 10, 3000: 60, 10000: 200}[fee] * {500: 10, 3000: 60, 10000: 200}[fee]
    t0, t1, _ = chain.pool_tokens(pool)
    chain.mint(pool, -edge, edge, 10 ** (t0.decimals - 3), 10 ** (t1.decimals - 3), chain.deployer.address)
    return pool


# ------------------------------------------------------------------ the attack as found
def test_finding_1_shape_only_scope_lets_the_bot_key_drain_weth(
        clean_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv) -> None:
    """The scope before issue 9 (recipient only): the bot key alone approves the router
    without limit and sells the Safe's 10 WETH into a fresh WETH/USDC pool at the unused 0.3%
    tier priced at 1 USDC per WETH, amountOutMinimum 0. It goes through."""
    chain = clean_chain
    weth, usdc = chain.tokens["WETH"], chain.tokens["USDC"]
    chain.transact(chain.contract("ERC20", weth.address).functions.transfer(safe.address, 10 * ETH))
    attacker_pool(chain, "WETH", "USDC", 3000, 1.0)
    ex = R.RolesExecutor(chain.w3, roles_env.roles, chain.bot_key, roles_env.key)
    router = chain.contract("SwapRouter", chain.addresses["swap_router"])
    before = balances(chain, safe.address)
    ex.execute(weth.address, enc(chain.contract("ERC20", weth.address).functions.approve(router.address, 2**256 - 1)))
    ex.execute(router.address, enc(router.functions.exactInputSingle(
        (weth.address, usdc.address, 3000, safe.address, 2**63, before["WETH"], 0, 0))))
    after = balances(chain, safe.address)
    assert after["WETH"] == 0 and before["WETH"] >= 10 * ETH
    assert after["USDC"] - before["USDC"] < 2 * 10**6  # ~1 USDC for all of the Safe's WETH


# ------------------------------------------------------------------ the bounded scope
def test_setup_batch_sets_allowances_and_scopes(env: Bounded) -> None:
    names = env.setup_calls
    assert names[0] == "enableModule"
    assert names.count("setAllowance") == 2 * 2 + 1  # swap + approve per token, exits
    # decreaseLiquidity, collect, exactInputSingle, approve x 2 tokens: all scoped (no allowFunction now)
    assert names.count("scopeFunction") == 5 and "allowFunction" not in names
    roles = env.chain.w3.eth.contract(address=to_checksum_address(env.roles), abi=R.roles_artifacts()["Roles"]["abi"])
    weth = env.chain.tokens["WETH"].address
    refill, max_refill, period, balance, _ = roles.functions.allowances(perm.allowance_key("swap", weth)).call()
    assert (refill, max_refill, period, balance) == (WETH_SWAP, WETH_SWAP, PERIOD_H * 3600, WETH_SWAP)
    assert roles.functions.allowances(perm.allowance_key(perm.EXITS_KEY)).call()[3] == EXITS


def _attacks(env: Bounded, junk: str) -> dict[str, tuple[str, bytes]]:
    c = env.chain
    weth, usdc, dai = c.tokens["WETH"], c.tokens["USDC"], c.tokens["DAI"]
    router = c.contract("SwapRouter", c.addresses["swap_router"])
    erc_w = c.contract("ERC20", weth.address)
    safe = c.addresses["safe"]

    def swap(t_in: str, t_out: str, fee: int, amount: int, min_out: int, to: str = safe) -> tuple[str, bytes]:
        return router.address, enc(router.functions.exactInputSingle((t_in, t_out, fee, to, 2**63, amount, min_out, 0)))

    return {
        "unlimited approve": (weth.address, enc(erc_w.functions.approve(router.address, 2**256 - 1))),
        "approve above the allowance": (weth.address, enc(erc_w.functions.approve(router.address, WETH_SWAP + 1))),
        "swap into a worthless-token pool": swap(weth.address, junk, 3000, ETH, 0),
        "swap at an unused fee tier": swap(weth.address, usdc.address, 3000, ETH, 0),
        "swap to a token not listed": swap(weth.address, dai.address, 10000, ETH, 0),
        "swap with amountOutMinimum 0": swap(weth.address, usdc.address, 500, ETH, 0),
        "swap with a minimum 2% under the oracle": swap(weth.address, usdc.address, 500, ETH, 2940 * 10**6),
        "swap above the amountIn allowance": swap(weth.address, usdc.address, 500, WETH_SWAP + 1, 10**12),
        "swap to another recipient": swap(weth.address, usdc.address, 500, ETH, 2990 * 10**6, env.bot.address),
    }


EXPECTED = {
    "unlimited approve": "ConditionViolation(AllowanceExceeded)",
    "approve above the allowance": "ConditionViolation(AllowanceExceeded)",
    "swap into a worthless-token pool": "ConditionViolation(OrViolation)",
    "swap at an unused fee tier": "ConditionViolation(OrViolation)",
    "swap to a token not listed": "ConditionViolation(OrViolation)",
    "swap with amountOutMinimum 0": "ConditionViolation(OrViolation)",
    "swap with a minimum 2% under the oracle": "ConditionViolation(OrViolation)",
    "swap above the amountIn allowance": "ConditionViolation(OrViolation)",
    "swap to another recipient": "ConditionViolation(OrViolation)",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_attack_reverts_on_chain_and_the_safe_keeps_its_money(env: Bounded, name: str) -> None:
    c = env.chain
    junk = c.deploy("ERC20", "JUNK", "JUNK", 18, c.deployer.address, 10**30)  # not registered: reverted after
    attacker_pool(c, "WETH", "USDC", 3000, 1.0)
    safe = c.addresses["safe"]
    erc_w = c.contract("ERC20", c.tokens["WETH"].address)
    router = c.addresses["swap_router"]
    if name.startswith("swap"):  # the approval a bot would hold, within its allowance
        env.executor.execute(c.tokens["WETH"].address, enc(erc_w.functions.approve(router, WETH_SWAP)))
    before = balances(c, safe)
    to, data = _attacks(env, junk)[name]
    reason = refused_on_chain(env, to, data)
    print(f"{name}: {reason}")
    assert reason == EXPECTED[name]
    assert balances(c, safe) == before
    assert int(erc_w.functions.allowance(safe, router).call()) == (WETH_SWAP if name.startswith("swap") else 0)


def test_the_oracle_floor_itself_names_the_reason(env: Bounded) -> None:
    """The deployed condition's floor equals the hand computation, and an unknown is a
    refusal with a reason (the condition called directly, as Roles calls it)."""
    c = env.chain
    w, u = c.tokens["WETH"].address, c.tokens["USDC"].address
    ok, floor, _ = env.condition.functions.swapFloor(w, u, ETH, SLIPPAGE_BPS).call()
    # by hand: 1 WETH x 3000 USD / 1 USD x 0.99, in USDC's 6 decimals
    assert ok and floor == 2970 * 10**6
    res = env.condition.functions.check(env.scope.swap_router, 0, bytes.fromhex("414bf389") + bytes(256), 0, 0, 0,
                                        SLIPPAGE_BPS.to_bytes(12, "big")).call()
    assert res[0] is False and res[1].rstrip(b"\0") == b"no feed"  # tokenIn 0x0 has no feed


def test_legitimate_swap_within_bounds_goes_through_exactly(env: Bounded) -> None:
    c = env.chain
    safe = c.addresses["safe"]
    weth, usdc = c.tokens["WETH"], c.tokens["USDC"]
    router = c.contract("SwapRouter", c.addresses["swap_router"])
    erc_w = c.contract("ERC20", weth.address)
    env.bot_exec.execute(weth.address, enc(erc_w.functions.approve(router.address, ETH)))
    assert erc_w.functions.allowance(safe, router.address).call() == ETH
    quote = router.functions.exactInputSingle((weth.address, usdc.address, 500, safe, 2**63, ETH, 0, 0)).call({"from": safe})
    assert quote >= 2970 * 10**6  # the pool agrees with the oracle within 1%
    before = balances(c, safe)
    env.bot_exec.execute(router.address, enc(router.functions.exactInputSingle(
        (weth.address, usdc.address, 500, safe, 2**63, ETH, 2970 * 10**6, 0))))
    after = balances(c, safe)
    assert before["WETH"] - after["WETH"] == ETH and after["USDC"] - before["USDC"] == quote
    # the allowance was spent: 1 WETH of 2 left
    roles = c.w3.eth.contract(address=to_checksum_address(env.roles), abi=R.roles_artifacts()["Roles"]["abi"])
    assert roles.functions.allowances(perm.allowance_key("swap", weth.address)).call()[3] == WETH_SWAP - ETH


# ------------------------------------------------------------------ LP exits
def _weth_usdc_positions(c: DevChain) -> list[int]:
    npm = c.contract("NonfungiblePositionManager", c.addresses["position_manager"])
    out = []
    for pid in c.position_ids:
        p = npm.functions.positions(pid).call()
        if {p[2], p[3]} == {c.tokens["WETH"].address, c.tokens["USDC"].address} and p[4] == 500 and p[7] > 0:
            out.append(pid)
    return out


def _exit(env: Bounded, pid: int) -> tuple[tuple[int, int], bytes]:
    """(the pool's burn formula amounts, the decreaseLiquidity calldata) for all of ``pid``."""
    c = env.chain
    npm = c.contract("NonfungiblePositionManager", c.addresses["position_manager"])
    p = npm.functions.positions(pid).call()
    pool = c.contract("UniswapV3Factory", c.addresses["factory"]).functions.getPool(p[2], p[3], p[4]).call()
    sqrt_price, tick = c.slot0(pool)
    expected = lp_math.amounts_for_liquidity(sqrt_price, tick, p[5], p[6], p[7])
    return expected, enc(npm.functions.decreaseLiquidity((pid, p[7], 0, 0, 2**63)))


def _decreased(env: Bounded, start: int) -> list[tuple[int, int, int]]:
    npm = env.chain.contract("NonfungiblePositionManager", env.chain.addresses["position_manager"])
    return [(e["args"]["tokenId"], e["args"]["amount0"], e["args"]["amount1"])
            for e in npm.events.DecreaseLiquidity().get_logs(from_block=start)]


def _crash_tick(c: DevChain, drop: float) -> tuple[str, int]:
    """The pool and the tick where WETH is worth (1 - drop) of now, in USDC."""
    pool = c.pools["WETH/USDC/500"]
    _, tick = c.slot0(pool)
    t0, _, _ = c.pool_tokens(pool)
    delta = round(math.log(1 - drop) / math.log(1.0001))
    return pool, tick + (delta if t0.symbol == "WETH" else -delta)


def test_legitimate_exit_and_at_most_n_per_period(env: Bounded) -> None:
    c = env.chain
    npm = c.addresses["position_manager"]
    pids = _weth_usdc_positions(c)
    assert len(pids) > EXITS
    for pid in pids[:EXITS]:
        expected, data = _exit(env, pid)
        start = c.w3.eth.block_number + 1
        env.bot_exec.execute(npm, data)
        assert _decreased(env, start) == [(pid, *expected)]
    _, data = _exit(env, pids[EXITS])
    before = balances(c, c.addresses["safe"])
    assert refused_on_chain(env, npm, data) == "ConditionViolation(CallAllowanceExceeded: lphedge-exits)"
    assert balances(c, c.addresses["safe"]) == before


def test_exit_in_a_real_30pct_crash_goes_through(env: Bounded) -> None:
    """Pool and oracle move together (real swaps move the pool; the feed gets a new round)."""
    c = env.chain
    pool, target = _crash_tick(c, 0.30)
    c.move_price(pool, target)
    c.transact(env.feeds[c.tokens["WETH"].address].functions.updateAnswer(WETH_USD * 7 // 10))
    ok, why = env.condition.functions.poolWithinOracle(*sorted(
        (c.tokens["WETH"].address, c.tokens["USDC"].address), key=lambda a: int(a, 16)), 500, DEVIATION_BPS).call()
    assert ok, why
    pid = _weth_usdc_positions(c)[0]
    expected, data = _exit(env, pid)
    start = c.w3.eth.block_number + 1
    env.bot_exec.execute(c.addresses["position_manager"], data)
    assert _decreased(env, start) == [(pid, *expected)]


def test_exit_from_a_manipulated_pool_is_refused(env: Bounded) -> None:
    """The pool pushed 30% down, the oracle not: the exit reverts, nothing leaves the position."""
    c = env.chain
    pool, target = _crash_tick(c, 0.30)
    c.move_price(pool, target)
    pid = _weth_usdc_positions(c)[0]
    npm = c.contract("NonfungiblePositionManager", c.addresses["position_manager"])
    liq = npm.functions.positions(pid).call()[7]
    _, data = _exit(env, pid)
    reason = refused_on_chain(env, npm.address, data)
    print(reason)
    assert reason.startswith("ConditionViolation(CustomConditionViolation: pool ") and reason.endswith(" oracle)")
    assert npm.functions.positions(pid).call()[7] == liq


# ------------------------------------------------------------------ property
def _floor(amount_in: int, p_in: int, dec_in: int, p_out: int, dec_out: int) -> int:
    """The policy's floor by hand: amountIn in USD at the oracle, in tokenOut units, less the
    slippage bound, rounded down (feeds of 8 decimals)."""
    num: int = amount_in * p_in * 10 ** (8 + dec_out) * (10_000 - SLIPPAGE_BPS)
    return int(num // (10 ** (8 + dec_in) * p_out * 10_000))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_roles_accepts_exactly_the_swaps_within_the_policy(env: Bounded, data: st.DataObject) -> None:
    c = env.chain
    safe = c.addresses["safe"]
    w, u, d = c.tokens["WETH"], c.tokens["USDC"], c.tokens["DAI"]
    price = {w.address: WETH_USD, u.address: USDC_USD}
    routes = [(w, u, 500), (u, w, 500), (w, u, 3000), (u, w, 3000), (w, d, 10000)]
    t_in, t_out, fee = data.draw(st.sampled_from(routes))
    cap = WETH_SWAP if t_in is w else USDC_SWAP
    amount = data.draw(st.one_of(st.integers(1, cap), st.integers(cap, 2 * cap)))
    floor = _floor(amount, price[t_in.address], t_in.decimals, price.get(t_out.address, USDC_USD), t_out.decimals)
    min_out = data.draw(st.one_of(st.integers(max(floor - 3, 0), floor + 3), st.integers(0, 2 * floor + 1)))
    to = data.draw(st.sampled_from([safe, safe, env.bot.address]))
    listed = (t_in.address, t_out.address, fee) in env.scope.bounds.routes  # type: ignore[union-attr]
    should = listed and to == safe and amount <= cap and min_out >= floor
    router = c.contract("SwapRouter", c.addresses["swap_router"])
    call = enc(router.functions.exactInputSingle((t_in.address, t_out.address, fee, to, 2**63, amount, min_out, 0)))
    try:
        env.executor.simulate(router.address, call)
        accepted = True
    except R.RolesError as exc:  # a Roles refusal, or the swap itself failing after Roles let it through
        accepted = not str(exc).startswith("ConditionViolation")
    assert accepted == should, (t_in.symbol, t_out.symbol, fee, amount, min_out, floor, to)


# ------------------------------------------------------------------ checks before anything is sent
def test_the_condition_named_by_the_scope_is_verified(env: Bounded) -> None:
    """The setup names a condition address; its code (immutables masked) must be
    OracleBoundCondition as compiled here, with the policy's settings and feeds."""
    c = env.chain
    a = c.addresses
    feeds = {t: f.address for t, f in env.feeds.items()}
    R.verify_oracle_condition(c.w3, env.condition.address, position_manager=a["position_manager"],
                              factory=a["factory"], max_oracle_age_s=3600, feeds=feeds)
    with pytest.raises(R.RolesError, match="settings"):
        R.verify_oracle_condition(c.w3, env.condition.address, position_manager=a["position_manager"],
                                  factory=a["factory"], max_oracle_age_s=7200, feeds=feeds)
    w, u = c.tokens["WETH"].address, c.tokens["USDC"].address
    swapped = R.deploy_oracle_condition(c.w3, c.deployer.key.hex(), a["position_manager"], a["factory"], 3600,
                                        {w: feeds[u], u: feeds[w]})
    with pytest.raises(R.RolesError, match="feed of"):
        R.verify_oracle_condition(c.w3, swapped, position_manager=a["position_manager"],
                                  factory=a["factory"], max_oracle_age_s=3600, feeds=feeds)
    with pytest.raises(R.RolesError, match="not OracleBoundCondition"):  # e.g. a feed, or an always-true contract
        R.verify_oracle_condition(c.w3, feeds[w], position_manager=a["position_manager"],
                                  factory=a["factory"], max_oracle_age_s=3600, feeds=feeds)


def test_the_bots_preflight_refuses_out_of_bounds_calls_before_sending(env: Bounded) -> None:
    c = env.chain
    router = c.contract("SwapRouter", c.addresses["swap_router"])
    weth, usdc = c.tokens["WETH"].address, c.tokens["USDC"].address
    erc_w = c.contract("ERC20", weth)
    safe = c.addresses["safe"]
    nonce = c.w3.eth.get_transaction_count(env.bot.address)
    cases = {
        (weth, enc(erc_w.functions.approve(router.address, 2**256 - 1))): "approve: amount=",
        (router.address, enc(router.functions.exactInputSingle((weth, usdc, 3000, safe, 2**63, ETH, 0, 0)))):
            "exactInputSingle: params=",
        (router.address, enc(router.functions.exactInputSingle((weth, usdc, 500, env.bot.address, 2**63, ETH, 0, 0)))):
            "exactInputSingle: params=",
        (router.address, enc(router.functions.exactInputSingle((weth, usdc, 500, safe, 2**63, WETH_SWAP + 1, 0, 0)))):
            "exactInputSingle: params=",
    }
    for (to, data), why in cases.items():
        with pytest.raises(G.PreflightRefused, match="arguments outside the bot's permissions: " + why):
            env.bot_exec.execute(to, data)
    assert c.w3.eth.get_transaction_count(env.bot.address) == nonce  # nothing was sent


@pytest.mark.parametrize(("fault", "reason"), [
    ("stale", "oracle stale"), ("incomplete", "oracle round incomplete"), ("negative", "oracle answer <= 0"),
])
def test_an_unknown_oracle_price_blocks_the_exit(env: Bounded, fault: str, reason: str) -> None:
    """Unknown stays unknown: a feed that stopped (its last round older than the bound), an
    incomplete round or a non-positive answer refuses the exit, with that reason on-chain."""
    c = env.chain
    feed = env.feeds[c.tokens["WETH"].address]
    now = c.w3.eth.get_block("latest")["timestamp"]
    if fault == "stale":
        c.transact(feed.functions.updateRoundData(WETH_USD, now - 3601))
    elif fault == "incomplete":
        latest = feed.functions.latestRoundData().call()[0]
        c.transact(feed.functions.pushRawRound(WETH_USD, now, latest))  # answered in an older round
    else:
        c.transact(feed.functions.updateAnswer(-1))
    pid = _weth_usdc_positions(c)[0]
    _, data = _exit(env, pid)
    assert refused_on_chain(env, c.addresses["position_manager"], data) == \
        f"ConditionViolation(CustomConditionViolation: {reason})"
