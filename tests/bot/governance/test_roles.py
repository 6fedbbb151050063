"""The bot's on-chain scope through Zodiac Roles v2 (npm bytecode) on a real Safe 1.4.1:
what it can do (exit an LP position, swap, approve, all with the Safe as recipient) and what
it cannot (each attempted on-chain, each shown to revert)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from adapters.evm import roles as R
from adapters.evm import safe as S
from bot import governance as G
from bot import preflight as P
from bot.devchain import DevChain
from policies import lp_math
from tests.bot.governance.conftest import RolesEnv

pytestmark = pytest.mark.xdist_group("governance")
MAX128 = 2**128 - 1


def enc(fn: Any) -> bytes:
    return bytes.fromhex(fn._encode_transaction_data()[2:])


@pytest.fixture
def executor(gov_chain: DevChain, roles_env: RolesEnv) -> R.RolesExecutor:
    return R.RolesExecutor(gov_chain.w3, roles_env.roles, gov_chain.bot_key, roles_env.key)


@pytest.fixture
def bot_exec(safe: S.SafeAdapter, executor: R.RolesExecutor, roles_env: RolesEnv) -> P.BotExecutor:
    s = roles_env.scope
    return P.BotExecutor(safe, executor, P.bot_scope_allowlist(s.position_manager, s.swap_router, s.tokens))


def test_setup_state(gov_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv) -> None:
    roles = gov_chain.w3.eth.contract(address=to_checksum_address(roles_env.roles), abi=R.roles_artifacts()["Roles"]["abi"])
    assert roles.functions.owner().call() == safe.address
    assert roles.functions.avatar().call() == safe.address and roles.functions.target().call() == safe.address
    inv = safe.invariants()
    assert inv.modules == (roles_env.roles,) and inv.threshold == 2 and len(inv.owners) == 3
    assert roles_env.bot.address not in inv.owners
    assert len(gov_chain.w3.eth.get_code(to_checksum_address(roles_env.roles))) > 24576  # why the code size limit is lifted
    rep = roles_env.setup_report
    assert rep.simulation is not None and rep.simulation.success
    assert rep.invariants_after is not None and rep.invariants_before is not None
    assert rep.invariants_after.modules == (roles_env.roles,) and rep.invariants_before.modules == ()
    names = [c.function for c in rep.calls]
    assert names[0] == "enableModule" and names.count("scopeFunction") == 2 + len(roles_env.scope.tokens)


def test_bot_exits_lp_position_to_the_safe(clean_chain: DevChain, safe: S.SafeAdapter, bot_exec: P.BotExecutor) -> None:
    a = clean_chain.addresses
    npm = clean_chain.contract("NonfungiblePositionManager", a["position_manager"])
    pid = clean_chain.position_ids[0]
    pos = npm.functions.positions(pid).call()
    token0, token1, fee, tick_lower, tick_upper, liquidity = pos[2:8]
    assert liquidity > 0
    pool = clean_chain.contract("UniswapV3Factory", a["factory"]).functions.getPool(token0, token1, fee).call()
    sqrt_price, tick = clean_chain.slot0(pool)
    # Independent reference: the pool's burn formula (rounded down), from the pool's own slot0.
    expected = lp_math.amounts_for_liquidity(sqrt_price, tick, tick_lower, tick_upper, liquidity)
    assert min(expected) > 0  # in range: both tokens move
    deadline = 2**63
    # and the chain's own answer, asked as the Safe (eth_call)
    assert tuple(npm.functions.decreaseLiquidity((pid, liquidity, 0, 0, deadline)).call({"from": safe.address})) == expected
    start = clean_chain.w3.eth.block_number + 1
    bot_exec.execute(npm.address, enc(npm.functions.decreaseLiquidity((pid, liquidity, 0, 0, deadline))))
    logs = npm.events.DecreaseLiquidity().get_logs(from_block=start)
    assert [(e["args"]["tokenId"], e["args"]["liquidity"], e["args"]["amount0"], e["args"]["amount1"]) for e in logs] == [
        (pid, liquidity, *expected)]
    after = npm.functions.positions(pid).call()
    assert after[7] == 0
    # tokensOwed grew by exactly the principal plus the fees the NPM credits:
    # (feeGrowthInside now - feeGrowthInside last) * liquidity / 2**128, mod 2**256 like the contract.
    fees = [((after[8 + i] - pos[8 + i]) % 2**256) * liquidity // 2**128 for i in (0, 1)]
    owed = (after[10], after[11])
    assert owed == (pos[10] + expected[0] + fees[0], pos[11] + expected[1] + fees[1])
    t0, t1 = clean_chain.contract("ERC20", token0), clean_chain.contract("ERC20", token1)
    before = (t0.functions.balanceOf(safe.address).call(), t1.functions.balanceOf(safe.address).call())
    assert tuple(npm.functions.collect((pid, safe.address, MAX128, MAX128)).call({"from": safe.address})) == owed
    bot_exec.execute(npm.address, enc(npm.functions.collect((pid, safe.address, MAX128, MAX128))))
    balances = (t0.functions.balanceOf(safe.address).call(), t1.functions.balanceOf(safe.address).call())
    assert (balances[0] - before[0], balances[1] - before[1]) == owed  # every owed unit, to the Safe
    assert npm.functions.positions(pid).call()[10:12] == [0, 0]


def test_bot_approves_only_the_two_contracts_exact_amounts(clean_chain: DevChain, safe: S.SafeAdapter, bot_exec: P.BotExecutor) -> None:
    a = clean_chain.addresses
    for token in clean_chain.tokens.values():
        erc = clean_chain.contract("ERC20", token.address)
        for spender, amount in ((a["position_manager"], 123_456_789), (a["swap_router"], 2**256 - 1), (a["position_manager"], 0)):
            bot_exec.execute(token.address, enc(erc.functions.approve(spender, amount)))
            assert erc.functions.allowance(safe.address, spender).call() == amount


def test_bot_swaps_with_the_safe_as_recipient(clean_chain: DevChain, safe: S.SafeAdapter, bot_exec: P.BotExecutor) -> None:
    a = clean_chain.addresses
    weth, usdc = clean_chain.tokens["WETH"], clean_chain.tokens["USDC"]
    clean_chain.transact(clean_chain.contract("ERC20", weth.address).functions.transfer(safe.address, 10**18))
    router = clean_chain.contract("SwapRouter", a["swap_router"])
    erc_w = clean_chain.contract("ERC20", weth.address)
    erc_u = clean_chain.contract("ERC20", usdc.address)
    bot_exec.execute(weth.address, enc(erc_w.functions.approve(router.address, 10**18)))
    assert erc_w.functions.allowance(safe.address, router.address).call() == 10**18
    params = (weth.address, usdc.address, 500, safe.address, 2**63, 10**17, 0, 0)
    expected_out = router.functions.exactInputSingle(params).call({"from": safe.address})
    u0, w0 = erc_u.functions.balanceOf(safe.address).call(), erc_w.functions.balanceOf(safe.address).call()
    bot_exec.execute(router.address, enc(router.functions.exactInputSingle(params)))
    assert erc_u.functions.balanceOf(safe.address).call() - u0 == expected_out > 0
    assert w0 - erc_w.functions.balanceOf(safe.address).call() == 10**17


def _attempts(chain: DevChain, safe: S.SafeAdapter, env: RolesEnv) -> dict[str, tuple[str, bytes, int, int]]:
    a = chain.addresses
    bot = env.bot.address
    npm = chain.contract("NonfungiblePositionManager", a["position_manager"])
    router = chain.contract("SwapRouter", a["swap_router"])
    weth, usdc = chain.tokens["WETH"], chain.tokens["USDC"]
    erc_w = chain.contract("ERC20", weth.address)
    roles = chain.w3.eth.contract(address=to_checksum_address(env.roles), abi=R.roles_artifacts()["Roles"]["abi"])
    pid = chain.position_ids[1]
    other_key = R.role_key("admin")
    return {
        "transfer tokens out": (weth.address, enc(erc_w.functions.transfer(bot, 10**17)), 0, 0),
        "approve another spender": (weth.address, enc(erc_w.functions.approve(bot, 2**255)), 0, 0),
        "collect to another recipient": (npm.address, enc(npm.functions.collect((pid, bot, MAX128, MAX128))), 0, 0),
        "swap to another recipient": (router.address, enc(router.functions.exactInputSingle(
            (weth.address, usdc.address, 500, bot, 2**63, 10**15, 0, 0))), 0, 0),
        "delegatecall an allowed function": (npm.address, enc(npm.functions.collect((pid, safe.address, MAX128, MAX128))), 0, 1),
        "delegatecall MultiSendCallOnly": (a["multisend_call_only"], bytes.fromhex("8d80ff0a") + b"\0" * 64, 0, 1),
        "change its own role": (env.roles, enc(roles.functions.assignRoles(bot, [other_key], [True])), 0, 0),
        "widen its own scope": (env.roles, enc(roles.functions.allowTarget(env.key, weth.address, 3)), 0, 0),
        "call the Safe (add owner)": (safe.address, enc(safe.contract.functions.addOwnerWithThreshold(bot, 1)), 0, 0),
        "send ether": (bot, b"", 10**15, 0),
        "send ether with an allowed (payable) call": (npm.address, enc(npm.functions.decreaseLiquidity((pid, 1, 0, 0, 2**63))), 10**15, 0),
    }


EXPECTED_REASON = {
    "transfer tokens out": "ConditionViolation(FunctionNotAllowed)",
    "approve another spender": "ConditionViolation(OrViolation)",
    "collect to another recipient": "ConditionViolation(ParameterNotAllowed)",
    "swap to another recipient": "ConditionViolation(ParameterNotAllowed)",
    "delegatecall an allowed function": "ConditionViolation(DelegateCallNotAllowed)",
    "delegatecall MultiSendCallOnly": "ConditionViolation(TargetAddressNotAllowed)",
    "change its own role": "ConditionViolation(TargetAddressNotAllowed)",
    "widen its own scope": "ConditionViolation(TargetAddressNotAllowed)",
    "call the Safe (add owner)": "ConditionViolation(TargetAddressNotAllowed)",
    "send ether": "ConditionViolation(TargetAddressNotAllowed)",
    "send ether with an allowed (payable) call": "ConditionViolation(SendNotAllowed)",
}


@pytest.mark.parametrize("name", list(EXPECTED_REASON))
def test_bot_cannot(name: str, clean_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv,
                    executor: R.RolesExecutor, bot_exec: P.BotExecutor) -> None:
    clean_chain.transact(clean_chain.contract("ERC20", clean_chain.tokens["WETH"].address).functions.transfer(safe.address, 10**18))
    clean_chain.anvil.rpc("anvil_setBalance", [safe.address, hex(10**18)])
    to, data, value, op = _attempts(clean_chain, safe, roles_env)[name]
    before = safe.invariants()
    with pytest.raises(R.RolesError) as refused:
        executor.simulate(to, data, value, op)
    assert str(refused.value) == EXPECTED_REASON[name]
    receipt = executor.send_unchecked(to, data, value, op)  # really sent: the chain reverts it
    assert receipt["status"] == 0
    assert safe.invariants() == before
    # and the bot's own pre-flight never lets it get that far
    with pytest.raises(G.PreflightRefused):
        bot_exec.execute(to, data, operation=op, value=value)


def test_bot_cannot_call_roles_admin_directly(clean_chain: DevChain, roles_env: RolesEnv, executor: R.RolesExecutor) -> None:
    w3 = clean_chain.w3
    roles = w3.eth.contract(address=to_checksum_address(roles_env.roles), abi=R.roles_artifacts()["Roles"]["abi"])
    bot: LocalAccount = roles_env.bot
    for fn in (roles.functions.assignRoles(bot.address, [R.role_key("admin")], [True]),
               roles.functions.scopeTarget(roles_env.key, clean_chain.tokens["WETH"].address),
               roles.functions.transferOwnership(bot.address)):
        tx = fn.build_transaction({"from": bot.address, "nonce": w3.eth.get_transaction_count(bot.address), "gas": 500_000})
        signed = bot.sign_transaction(tx)  # type: ignore[arg-type]
        receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
        assert receipt["status"] == 0
    assert roles.functions.owner().call() == clean_chain.addresses["safe"]


def test_bot_sending_ether_with_an_allowed_call_refused(clean_chain: DevChain, bot_exec: P.BotExecutor, safe: S.SafeAdapter) -> None:
    weth = clean_chain.tokens["WETH"].address
    erc = clean_chain.contract("ERC20", weth)
    with pytest.raises(G.PreflightRefused, match="never sends ether"):
        bot_exec.execute(weth, enc(erc.functions.approve(clean_chain.addresses["swap_router"], 1)), value=1)
    assert erc.functions.allowance(safe.address, clean_chain.addresses["swap_router"]).call() == 0


def test_bot_detects_safe_invariants_changed_during_its_execution(
    clean_chain: DevChain, safe: S.SafeAdapter, executor: R.RolesExecutor, roles_env: RolesEnv, tmp_path: Any
) -> None:
    # Someone changes the Safe (a new module) while the bot's call lands: the bot stops and says so.
    from bot.audit_store import AuditStore
    from tests.bot.governance.conftest import execute_with_owners

    intruder = to_checksum_address("0x" + "42" * 20)

    class Racing:
        address = executor.address

        def simulate(self, to: str, data: bytes) -> None:
            executor.simulate(to, data)

        def execute(self, to: str, data: bytes) -> None:
            executor.execute(to, data)
            mto, mdata = S.enable_module_call(safe.address, intruder)
            execute_with_owners(safe, safe.build_tx(mto, 0, mdata), clean_chain.owner_keys[:2], clean_chain.deployer.key.hex())

    store = AuditStore(f"sqlite:///{tmp_path / 'bot.db'}")
    s = roles_env.scope
    racing = P.BotExecutor(safe, Racing(), P.bot_scope_allowlist(s.position_manager, s.swap_router, s.tokens), store)
    weth = clean_chain.tokens["WETH"].address
    with pytest.raises(G.PreflightRefused, match=f"Safe invariants changed after execution: modules: .*{intruder}"):
        racing.execute(weth, enc(clean_chain.contract("ERC20", weth).functions.approve(s.swap_router, 5)))
    assert store.events(event="application") == [] and "invariants changed" in store.events(event="refusal")[-1].reason
