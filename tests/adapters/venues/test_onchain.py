"""The on-chain venue (adapters/venues/onchain.py) against the real contracts on anvil:
Uniswap v3 (factory, NonfungiblePositionManager, SwapRouter), a Safe 1.4.1 holding LP
positions, a Zodiac Roles v2 modifier (npm bytecode) set up from an approved-style policy
[scope] by a 2-of-3 threshold-signed SafeTx, the project's OracleBoundCondition with two
Chainlink-style feeds, and the transaction journal (bot/tx_journal.py, SQLite).

- an LP exit (decreaseLiquidity + collect) and a swap (approve + exactInputSingle) through
  execTransactionWithRole signed by the bot key, amounts exact: each equals the static call
  of the same action from the Safe before it, and the Safe's balance changes to the wei;
- every intent outside the scope is refused before anything is signed (the bot's nonce,
  the journal, the mempool and the Safe's balances unchanged), by the venue's checks, the
  permission table or Roles' own answer to an eth_call;
- a confirmed exit whose blocks leave the chain (evm_snapshot/evm_revert, then other blocks
  at the same heights) is detected by block hash, is not done any more, and is re-resolved
  by broadcasting the SAME signed transactions: the position is exited exactly once.
Roles exceeds 24 KiB, so this module starts its own chain with the code size limit lifted
(the session devchain keeps the limit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes

from adapters.anvil import PROJECT_ROOT
from adapters.evm import permissions as perm
from adapters.evm import roles as R
from adapters.evm import safe as S
from adapters.venues.onchain import MAX_UINT128, OnchainRefused, OnchainUnresolved, OnchainVenue
from bot.db import open_engine
from bot.devchain import DevChain
from bot.tx_journal import TxJournal, TxState
from policies import lp_math
from policies.policy_file import parse_policy
from tests.support.solc import compile_contract

pytestmark = pytest.mark.chain  # its own anvil (module fixture)
ETH = 10**18
USDC = 10**6
WETH_SWAP, USDC_SWAP = 2 * ETH, 6_000 * USDC
SLIPPAGE_BPS, DEVIATION_BPS, EXITS = 100, 300, 4
WETH_USD, USDC_USD = 3000 * 10**8, 10**8


@dataclass
class Env:
    chain: DevChain
    roles: str
    key: bytes
    bot: LocalAccount
    scope: perm.BotScope
    feeds: dict[str, Any]
    safe: str

    def venue(self, journal: TxJournal | None, **kw: Any) -> OnchainVenue:
        a = self.chain.addresses
        return OnchainVenue(self.chain.w3, safe=self.safe, roles=self.roles, role_key=self.key, bot=self.bot,
                            scope=self.scope, factory=a["factory"], journal=journal, receipt_timeout=30, **kw)


def _policy(chain: DevChain, feeds: dict[str, str]) -> str:
    w, u = chain.tokens["WETH"].address, chain.tokens["USDC"].address
    return f"""
version = "onchain-venue-test"
[[coverage]]
underlying = "ETH"
pool = "{chain.pools['WETH/USDC/500']}"
underlying_token = "token0"
[scope]
swaps = [{{ token_in = "{w}", token_out = "{u}", fee = 500 }},
         {{ token_in = "{u}", token_out = "{w}", fee = 500 }}]
limits = [{{ token = "{w}", swap_per_period = {WETH_SWAP}, approve_per_period = {WETH_SWAP} }},
          {{ token = "{u}", swap_per_period = {USDC_SWAP}, approve_per_period = {USDC_SWAP} }}]
period_hours = 24
max_slippage_bps = {SLIPPAGE_BPS}
oracles = {{ "{w}" = "{feeds[w]}", "{u}" = "{feeds[u]}" }}
max_oracle_age_seconds = 3600
max_exit_deviation_bps = {DEVIATION_BPS}
max_exits_per_period = {EXITS}
"""


@pytest.fixture(scope="module")
def roles_chain() -> Iterator[Env]:
    chain = DevChain.start(code_size_limit=True)
    try:
        a, w3, dep = chain.addresses, chain.w3, chain.deployer.key.hex()
        abi, code = compile_contract(PROJECT_ROOT / "contracts" / "TestAggregatorV3.sol", "TestAggregatorV3")
        feeds: dict[str, Any] = {}
        for sym, answer in (("WETH", WETH_USD), ("USDC", USDC_USD)):
            rc = chain.transact(w3.eth.contract(abi=abi, bytecode=code).constructor(8, f"{sym} / USD", answer))
            feeds[chain.tokens[sym].address] = w3.eth.contract(address=rc["contractAddress"], abi=abi)
        policy = parse_policy(_policy(chain, {t: f.address for t, f in feeds.items()}))
        scope = R.bounded_scope(w3, dep, position_manager=a["position_manager"], swap_router=a["swap_router"],
                                factory=a["factory"], tokens=(chain.tokens["WETH"].address,
                                                              chain.tokens["USDC"].address),
                                policy_scope=policy.scope)
        roles = R.deploy_roles(w3, dep, a["safe"], a["safe"], a["safe"])
        bot: LocalAccount = Account.from_key(keccak(b"lphedge onchain venue test bot"))
        chain.anvil.rpc("anvil_setBalance", [bot.address, hex(ETH)])
        key = R.role_key("lphedge-bot")
        safe = S.SafeAdapter(w3, a["safe"], chain.url)
        calls = [S.enable_module_call(a["safe"], roles), *R.scope_calls(w3, roles, bot.address, key, scope)]
        tx = S.multisend_call_only_tx(safe, a["multisend_call_only"], calls)
        for k in chain.owner_keys[:2]:
            tx.sign(k)
        tx_hash, _ = tx.execute(dep)
        assert w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1
        # the Safe holds 10 WETH and 30,000 USDC beyond its LP positions
        for sym, amount in (("WETH", 10 * ETH), ("USDC", 30_000 * USDC)):
            chain.transact(chain.contract("ERC20", chain.tokens[sym].address).functions.transfer(a["safe"], amount))
        yield Env(chain, roles, key, bot, scope, feeds, to_checksum_address(a["safe"]))
    finally:
        chain.close()


@pytest.fixture
def env(roles_chain: Env) -> Iterator[Env]:
    snap = roles_chain.chain.snapshot()
    try:
        yield roles_chain
    finally:
        roles_chain.chain.revert(snap)


@pytest.fixture
def journal(env: Env, tmp_path: Path) -> Iterator[TxJournal]:
    engine = open_engine(f"sqlite:///{tmp_path / 'journal.db'}")
    try:
        yield TxJournal(engine, env.chain.chain_id, reorg_depth=6)
    finally:
        engine.dispose()


# ------------------------------------------------------------------------ helpers
def balances(env: Env) -> dict[str, int]:
    c = env.chain
    return {s: int(c.contract("ERC20", c.tokens[s].address).functions.balanceOf(env.safe).call())
            for s in ("WETH", "USDC", "WBTC", "DAI")}


def nonce(env: Env) -> int:
    return int(env.chain.w3.eth.get_transaction_count(env.bot.address, "pending"))


def npm(env: Env) -> Any:
    return env.chain.contract("NonfungiblePositionManager", env.chain.addresses["position_manager"])


def weth_usdc_positions(env: Env) -> list[int]:
    c = env.chain
    out = []
    for pid in c.position_ids:
        p = npm(env).functions.positions(pid).call()
        if {p[2], p[3]} == {c.tokens["WETH"].address, c.tokens["USDC"].address} and p[4] == 500 and p[7] > 0:
            out.append(pid)
    return out


def by_symbol(env: Env, pid: int, amounts: tuple[int, int]) -> dict[str, int]:
    p = npm(env).functions.positions(pid).call()
    c = env.chain
    sym = {c.tokens[s].address: s for s in c.tokens}
    return {sym[p[2]]: amounts[0], sym[p[3]]: amounts[1]}


def static_exit(env: Env, pid: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """The chain's own answers before the exit: the decrease of all liquidity from the Safe,
    the pool's burn formula at slot0 (policies/lp_math), and what collect would pay now (fees)."""
    c = env.chain
    p = npm(env).functions.positions(pid).call()
    dec = tuple(npm(env).functions.decreaseLiquidity((pid, p[7], 0, 0, 2**63)).call({"from": env.safe}))
    pool = c.contract("UniswapV3Factory", c.addresses["factory"]).functions.getPool(p[2], p[3], p[4]).call()
    sqrt_price, tick = c.slot0(pool)
    formula = lp_math.amounts_for_liquidity(sqrt_price, tick, p[5], p[6], p[7])
    fees = tuple(npm(env).functions.collect((pid, env.safe, MAX_UINT128, MAX_UINT128)).call({"from": env.safe}))
    return dec, formula, fees


# ------------------------------------------------------------------------ exit
@pytest.mark.parametrize("which", ["tight in range", "wide", "above the price (one-sided)", "full range"])
def test_exit_lp_through_the_role_amounts_exact(env: Env, journal: TxJournal, which: str) -> None:
    c = env.chain
    pids = weth_usdc_positions(env)
    pid = pids[["tight in range", "wide", "above the price (one-sided)", "full range"].index(which)]
    # someone trades through the pool first, so the position has fees to collect
    pool = c.pools["WETH/USDC/500"]
    c.swap(pool, c.tokens["USDC"], 50_000 * USDC)
    c.swap(pool, c.tokens["WETH"], 10 * ETH)
    dec, formula, fees = static_exit(env, pid)
    assert dec == formula  # the NPM's static answer is the pool's burn formula
    before, n0 = balances(env), nonce(env)
    result = env.venue(journal).exit_lp("exit-1", pid)
    print(which, "decreased", dec, "fees", fees, "collected", (result.collected0, result.collected1))
    assert (result.amount0, result.amount1) == dec
    assert (result.amount0_min, result.amount1_min) == tuple(
        0 if a == 0 else max(1, a * (10_000 - SLIPPAGE_BPS) // 10_000) for a in dec)
    assert all(m > 0 for a, m in zip(dec, (result.amount0_min, result.amount1_min), strict=True) if a > 0)
    # collect pays the decreased principal plus the fees the static collect saw, to the Safe
    assert (result.collected0, result.collected1) == (dec[0] + fees[0], dec[1] + fees[1])
    after = balances(env)
    got = by_symbol(env, pid, (result.collected0, result.collected1))
    assert {s: after[s] - before[s] for s in got} == got
    assert after["WBTC"] == before["WBTC"] and after["DAI"] == before["DAI"]
    p = npm(env).functions.positions(pid).call()
    assert (p[7], p[10], p[11]) == (0, 0, 0)  # no liquidity, nothing owed
    assert nonce(env) == n0 + 2
    rows = journal.of_intent("exit-1")
    assert [(r.client_id, r.state, r.nonce) for r in rows] == [
        ("exit-1:decrease", TxState.CONFIRMED, n0), ("exit-1:collect", TxState.CONFIRMED, n0 + 1)]
    assert [r.tx_hash for r in rows] == list(result.tx_hashes)
    assert env.venue(journal).outcome("exit-1", "exit") == "done"
    # the same intent again sends nothing and reads the same amounts back from the receipts
    assert env.venue(journal).exit_lp("exit-1", pid) == result and nonce(env) == n0 + 2


def test_crash_between_the_two_exit_steps_finishes_once(env: Env, journal: TxJournal) -> None:
    """Killed after the collect's journal row (decrease confirmed, collect signed, not sent):
    the intent is unresolved, reconcile broadcasts the same signed collect, and running the
    intent again sends nothing new."""
    pid = weth_usdc_positions(env)[0]
    dec, _, _ = static_exit(env, pid)
    before, n0 = balances(env), nonce(env)
    points: list[str] = []

    class Killed(BaseException):
        pass

    def checkpoint(name: str) -> None:
        points.append(name)
        if len(points) == 3:  # decrease: row, broadcast; collect: row -> killed
            raise Killed(name)

    with pytest.raises(Killed):
        env.venue(journal, checkpoint=checkpoint).exit_lp("exit-2", pid)
    assert points == ["after_journal_row", "after_broadcast", "after_journal_row"]
    collect_row = journal.get("exit-2:collect")
    assert collect_row is not None and collect_row.state is TxState.PENDING and nonce(env) == n0 + 1
    venue = env.venue(journal)
    assert venue.outcome("exit-2", "exit") == "unresolved"
    with pytest.raises(OnchainUnresolved, match="reconcile"):
        venue.exit_lp("exit-2", pid)
    assert venue.reconcile() == []
    assert journal.get("exit-2:collect").state is TxState.CONFIRMED  # type: ignore[union-attr]
    result = venue.exit_lp("exit-2", pid)
    assert result.tx_hashes[1] == collect_row.tx_hash and nonce(env) == n0 + 2
    assert (result.amount0, result.amount1) == dec == (result.collected0, result.collected1)
    after = balances(env)
    got = by_symbol(env, pid, dec)
    assert {s: after[s] - before[s] for s in got} == got


# ------------------------------------------------------------------------ swap
def test_swap_through_the_role_amounts_exact(env: Env, journal: TxJournal) -> None:
    c = env.chain
    weth, usdc = c.tokens["WETH"].address, c.tokens["USDC"].address
    router = c.addresses["swap_router"]
    roles = c.w3.eth.contract(address=to_checksum_address(env.roles), abi=R.roles_artifacts()["Roles"]["abi"])
    left_before = roles.functions.allowances(perm.allowance_key("swap", weth)).call()[3]
    before, n0 = balances(env), nonce(env)
    result = env.venue(journal).swap("swap-1", weth, usdc, 500, ETH)
    after = balances(env)
    print("quote", result.quote, "floor", result.oracle_floor, "min", result.amount_out_minimum)
    # the oracle floor by hand: 1 WETH x 3000 USD / 1 USD, less 1%, in USDC's 6 decimals
    assert result.oracle_floor == 2970 * USDC
    assert result.quote is not None
    assert result.amount_out_minimum == max(2970 * USDC, result.quote * (10_000 - SLIPPAGE_BPS) // 10_000)
    assert result.amount_out == result.quote  # nothing moved the pool between quote and swap
    assert after["WETH"] - before["WETH"] == -ETH and after["USDC"] - before["USDC"] == result.amount_out
    erc_w = c.contract("ERC20", weth)
    assert erc_w.functions.allowance(env.safe, router).call() == 0  # an exact approval, spent
    assert roles.functions.allowances(perm.allowance_key("swap", weth)).call()[3] == left_before - ETH
    assert nonce(env) == n0 + 2 and len(result.tx_hashes) == 2
    assert [r.client_id for r in journal.of_intent("swap-1")] == ["swap-1:approve", "swap-1:swap"]
    assert env.venue(journal).outcome("swap-1", "swap") == "done"
    again = env.venue(journal).swap("swap-1", weth, usdc, 500, ETH)  # read back, nothing sent
    assert again == replace(result, oracle_floor=None, quote=None) and nonce(env) == n0 + 2


# ------------------------------------------------------------------------ refusals
def _deployer_position(env: Env) -> int:
    """A position in the WETH/USDC pool the Safe does not hold (the deployer's background)."""
    c = env.chain
    n = npm(env)
    for pid in range(1, max(c.position_ids) + 1):
        if pid not in c.position_ids and n.functions.ownerOf(pid).call() != env.safe:
            p = n.functions.positions(pid).call()
            if {p[2], p[3]} == {c.tokens["WETH"].address, c.tokens["USDC"].address}:
                return pid
    raise AssertionError("no deployer position")


REFUSALS = {
    "route not listed (unused fee tier)": "is not listed in the scope",
    "token not listed": "is not listed in the scope",
    "amount over the allowance": "over the scope's allowance",
    "recipient not the Safe": "is not the Safe",
    "zero amount": "must be positive",
    "exit of a position the Safe does not hold": "not the Safe",
    "allowance already spent (Roles, in simulation)": "ConditionViolation(AllowanceExceeded)",
    "exit of a manipulated pool (Roles, in simulation)": "ConditionViolation(CustomConditionViolation: pool ",
    "exit with no liquidity left": "outside (0, 0]",
    "collect to another recipient (the permission table)": "is not the Safe",
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_intent_outside_the_scope_is_refused_before_sending(env: Env, journal: TxJournal, name: str) -> None:
    c = env.chain
    w, u, d = c.tokens["WETH"].address, c.tokens["USDC"].address, c.tokens["DAI"].address
    venue = env.venue(journal)
    pid = weth_usdc_positions(env)[0]
    if name.startswith("allowance already spent"):
        venue.swap("first", w, u, 500, 3 * ETH // 2)  # 1.5 of the 2 WETH per period: fine
    if name.startswith("exit with no liquidity"):
        venue.exit_lp("first", pid)
    if name.startswith("exit of a manipulated"):
        import math

        pool = c.pools["WETH/USDC/500"]
        _, tick = c.slot0(pool)
        t0, _, _ = c.pool_tokens(pool)
        delta = round(math.log(0.7) / math.log(1.0001))
        c.move_price(pool, tick + (delta if t0.symbol == "WETH" else -delta))  # the oracle does not move
    before, n0, rows0 = balances(env), nonce(env), len(journal.all())
    liquidity = npm(env).functions.positions(pid).call()[7]
    actions: dict[str, Callable[[], object]] = {
        "route not listed (unused fee tier)": lambda: venue.swap("x", w, u, 3000, ETH),
        "token not listed": lambda: venue.swap("x", w, d, 10000, ETH),
        "amount over the allowance": lambda: venue.swap("x", w, u, 500, WETH_SWAP + 1),
        "recipient not the Safe": lambda: venue.swap("x", w, u, 500, ETH, recipient=env.bot.address),
        "zero amount": lambda: venue.swap("x", w, u, 500, 0),
        "exit of a position the Safe does not hold": lambda: venue.exit_lp("x", _deployer_position(env)),
        "allowance already spent (Roles, in simulation)": lambda: venue.swap("x", w, u, 500, 3 * ETH // 2),
        "exit of a manipulated pool (Roles, in simulation)": lambda: venue.exit_lp("x", pid),
        "exit with no liquidity left": lambda: venue.exit_lp("x", pid),
        "collect to another recipient (the permission table)": lambda: venue.check(
            npm(env).address, bytes(HexBytes(npm(env).functions.collect(
                (pid, env.bot.address, MAX_UINT128, MAX_UINT128))._encode_transaction_data()))),
    }
    with pytest.raises(OnchainRefused) as exc:
        actions[name]()
    print(f"{name}: {exc.value}")
    assert REFUSALS[name] in str(exc.value)
    assert nonce(env) == n0 and len(journal.all()) == rows0 and journal.of_intent("x") == []
    assert c.anvil.rpc("txpool_content")["pending"] == {}  # type: ignore[index]
    assert balances(env) == before and npm(env).functions.positions(pid).call()[7] == liquidity


# ------------------------------------------------------------------------ reorg
def test_reorg_of_a_confirmed_exit_is_detected_and_resolved_once(env: Env, journal: TxJournal) -> None:
    c = env.chain
    pid = weth_usdc_positions(env)[1]
    dec, _, _ = static_exit(env, pid)
    before, n0 = balances(env), nonce(env)
    fork_point = c.snapshot()
    venue = env.venue(journal)
    result = venue.exit_lp("exit-3", pid)
    rows = journal.of_intent("exit-3")
    assert [r.state for r in rows] == [TxState.CONFIRMED] * 2 and venue.reconcile() == []
    assert venue.outcome("exit-3", "exit") == "done"
    # the blocks of the exit leave the chain; other blocks take their heights
    c.revert(fork_point)
    for _ in range(4):
        c.anvil.rpc("evm_mine")
    assert npm(env).functions.positions(pid).call()[7] > 0 and balances(env) == before
    with pytest.raises(OnchainUnresolved, match="no receipt"):  # even before the re-check
        venue.exit_lp("exit-3", pid)
    reorged = journal.recheck(c.w3)
    assert [(r.client_id, r.state) for r in reorged] == [("exit-3:decrease", TxState.REORGED),
                                                         ("exit-3:collect", TxState.REORGED)]
    for r, old in zip(reorged, rows, strict=True):
        assert old.block_hash is not None and f"0x{old.block_hash.hex()}" in r.reason
    assert venue.outcome("exit-3", "exit") == "unresolved"  # never counted as done
    with pytest.raises(OnchainUnresolved):
        venue.exit_lp("exit-3", pid)
    # handled: the same signed transactions broadcast again (their nonces are free again)
    assert venue.reconcile() == []
    again = journal.of_intent("exit-3")
    assert [r.state for r in again] == [TxState.CONFIRMED] * 2
    assert [r.tx_hash for r in again] == [r.tx_hash for r in rows]
    assert all(a.block_hash != r.block_hash for a, r in zip(again, rows, strict=True))
    assert venue.outcome("exit-3", "exit") == "done"
    assert venue.exit_lp("exit-3", pid) == result and nonce(env) == n0 + 2
    after = balances(env)
    got = by_symbol(env, pid, dec)
    assert {s: after[s] - before[s] for s in got} == got  # exited exactly once
    assert npm(env).functions.positions(pid).call()[7] == 0


def test_only_a_bounded_scope_and_its_slippage(env: Env) -> None:
    unbounded = perm.BotScope(env.scope.position_manager, env.scope.swap_router, env.scope.tokens)
    with pytest.raises(OnchainRefused, match="bounded scope"):
        OnchainVenue(env.chain.w3, safe=env.safe, roles=env.roles, role_key=env.key, bot=env.bot,
                     scope=unbounded, factory=env.chain.addresses["factory"])
    with pytest.raises(OnchainRefused, match="slippage 101 bps outside"):
        env.venue(None, slippage_bps=SLIPPAGE_BPS + 1)
