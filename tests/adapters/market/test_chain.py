"""Chain sources on anvil: a Chainlink AggregatorV3 feed compiled from contracts/ with npm
solc, a real Uniswap v3 stable/stable pool (factory + NPM + SwapRouter from npm
artifacts), staleness by moving anvil's clock (evm_increaseTime + evm_mine), pool TVL
kept in the store."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from web3 import AsyncHTTPProvider, AsyncWeb3

from adapters.anvil import PROJECT_ROOT
from adapters.market.base import Reading
from adapters.market.stables import ChainlinkFeed, UniswapStablePool, pool_price, to_peg_quote
from adapters.market.tvl import PoolTvl
from bot.db import open_engine
from bot.market_store import MarketStore
from policies import signals as S
from policies.types import Level
from tests.support.solc import compile_contract

FEED_SOL = PROJECT_ROOT / "contracts" / "TestAggregatorV3.sol"
HEARTBEAT = 86400


def chain_now(chain) -> int:
    return int(chain.w3.eth.get_block("latest")["timestamp"])


def advance(chain, seconds: int) -> None:
    chain.anvil.rpc("evm_increaseTime", [seconds])
    chain.anvil.rpc("evm_mine")


def mine_at(chain, timestamp: int) -> None:
    """The next block exactly at `timestamp` (anvil's clock follows from there)."""
    chain.anvil.rpc("evm_setNextBlockTimestamp", [timestamp])
    chain.anvil.rpc("evm_mine")


_OPEN: list[AsyncWeb3] = []  # every AsyncWeb3 a test made, disconnected after it


def track(w3: AsyncWeb3) -> AsyncWeb3:
    _OPEN.append(w3)
    return w3


def aw3(chain) -> AsyncWeb3:
    return track(AsyncWeb3(AsyncHTTPProvider(chain.url)))


@pytest.fixture(autouse=True)
async def _disconnect_providers():
    """No 'Unclosed client session': each provider's aiohttp session is closed."""
    yield
    while _OPEN:
        await _OPEN.pop().provider.disconnect()


@pytest.fixture(scope="module")
def feed_artifact():
    return compile_contract(Path(FEED_SOL), "TestAggregatorV3")


def deploy_feed(chain, artifact, answer: int, decimals: int = 8, label: str = "USDC / USD"):
    abi, bytecode = artifact
    factory = chain.w3.eth.contract(abi=abi, bytecode=bytecode)
    receipt = chain.transact(factory.constructor(decimals, label, answer))
    return chain.w3.eth.contract(address=receipt["contractAddress"], abi=abi)


async def test_feed_read_depeg_and_staleness(sigchain, feed_artifact):
    feed_c = deploy_feed(sigchain, feed_artifact, 100_000_000)
    feed = ChainlinkFeed(aw3(sigchain), feed_c.address, "USDC/USD", heartbeat_s=HEARTBEAT)
    r = await feed.read()
    assert r.value == 1.0 and r.extra["round_id"] == 1 and r.extra["decimals"] == 8
    assert r.as_of == chain_now(sigchain)

    sigchain.transact(feed_c.functions.updateAnswer(99_400_000))
    r = await feed.read()
    onchain = feed_c.functions.latestRoundData().call()
    assert r.value == float(Fraction(onchain[1], 10**8)) == 0.994
    assert r.as_of == onchain[3] and r.extra["round_id"] == onchain[0] == 2
    dep = S.depeg("USDC", [to_peg_quote(r)], chain_now(sigchain))
    assert dep.level is Level.ELEVATED and dep.evidence["bps"] == pytest.approx(-60.0)

    # anvil's clock moves: at exactly the heartbeat still fresh, one second later stale
    updated = r.as_of
    advance(sigchain, HEARTBEAT - 600)  # evm_increaseTime + evm_mine: still fresh
    assert (await feed.read()).value == 0.994
    mine_at(sigchain, updated + HEARTBEAT)  # the edges exactly
    assert chain_now(sigchain) - updated == HEARTBEAT
    assert (await feed.read()).value == 0.994
    mine_at(sigchain, updated + HEARTBEAT + 1)
    stale = await feed.read()
    assert stale.value is None
    assert stale.reason == f"stale: {HEARTBEAT + 1}s old, bound {HEARTBEAT}s"
    assert stale.extra["last_value"] == 0.994
    dep = S.depeg("USDC", [to_peg_quote(stale)], chain_now(sigchain))
    assert dep.level is None and "no fresh valid price source" in dep.reason

    sigchain.transact(feed_c.functions.updateAnswer(100_010_000))  # a new round: fresh again
    assert (await feed.read()).value == 1.0001


@pytest.mark.parametrize("answer,why", [(0, "non-positive answer 0"),
                                        (-5, "non-positive answer -5")])
async def test_feed_bad_answers(sigchain, feed_artifact, answer, why):
    feed_c = deploy_feed(sigchain, feed_artifact, answer)
    r = await ChainlinkFeed(aw3(sigchain), feed_c.address, "USDT/USD").read()
    assert r.value is None and why in r.reason


async def test_feed_incomplete_or_carried_over_round_refused(sigchain, feed_artifact):
    feed_c = deploy_feed(sigchain, feed_artifact, 100_000_000)
    feed = ChainlinkFeed(aw3(sigchain), feed_c.address, "USDC/USD")
    sigchain.transact(feed_c.functions.pushRawRound(99_000_000, 0, 2))  # round 2, updatedAt 0
    r = await feed.read()
    assert r.value is None and r.reason == "USDC/USD: round not complete (updatedAt 0)"
    sigchain.transact(feed_c.functions.pushRawRound(99_000_000, chain_now(sigchain), 2))
    r = await feed.read()  # round 3 answered in round 2: an old answer carried over
    assert r.value is None
    assert r.reason == "USDC/USD: stale round (answeredInRound 2 < roundId 3)"
    sigchain.transact(feed_c.functions.updateAnswer(100_000_000))  # a proper round 4
    assert (await feed.read()).value == 1.0


async def test_feed_stopped_updating_and_not_a_feed(sigchain, feed_artifact):
    feed_c = deploy_feed(sigchain, feed_artifact, 100_000_000)
    past = chain_now(sigchain) - 2 * HEARTBEAT
    sigchain.transact(feed_c.functions.updateRoundData(99_000_000, past))
    r = await ChainlinkFeed(aw3(sigchain), feed_c.address, "DAI/USD").read()
    assert r.value is None and r.reason.startswith("stale: ")
    # an address without code: the call fails, the reading says so
    nobody = "0x" + "11" * 20
    r = await ChainlinkFeed(aw3(sigchain), nobody, "X/USD").read()
    assert r.value is None and r.reason.startswith(f"X/USD: no contract answering at {nobody}")
    r = await UniswapStablePool(aw3(sigchain), nobody, "A/B/5").read()
    assert r.value is None and r.reason.startswith(f"A/B/5: no contract answering at {nobody}")
    # code there, but not a feed: the call reverts
    npm = sigchain.addresses["position_manager"]
    r = await ChainlinkFeed(aw3(sigchain), npm, "X/USD").read()
    assert r.value is None and r.reason.startswith(f"X/USD: call reverted at {npm}")
    assert r.reason.endswith("not a chainlink contract?")
    # the node is down
    r = await ChainlinkFeed(track(AsyncWeb3(AsyncHTTPProvider("http://127.0.0.1:9"))),
                            feed_c.address, "DAI/USD").read()
    assert r.value is None and "unreachable" in r.reason


@pytest.fixture(scope="module")
def stable_pool(sigchain):
    a = sigchain.deploy_token("sUSDC", 6)
    b = sigchain.deploy_token("sUSDT", 6)
    pool = sigchain.create_pool(a, b, 500, 1)
    t0, t1, _ = sigchain.pool_tokens(pool)
    me = sigchain.deployer.address
    sigchain.mint(pool, -200, 200, 2_000_000 * 10**6, 2_000_000 * 10**6, recipient=me)
    sigchain.mint(pool, -1000, 1000, 1_000_000 * 10**6, 1_000_000 * 10**6, recipient=me)
    return pool, a, b, t0, t1


async def test_uniswap_stable_pool_price_and_depeg(sigchain, stable_pool):
    pool, a, _b, t0, _t1 = stable_pool
    src = UniswapStablePool(aw3(sigchain), pool, "sUSDC/sUSDT/500",
                            asset_is_token0=(t0.address == a.address))
    r = await src.read()
    assert r.value == 1.0 and r.extra["tick"] == 0
    # push sUSDC off peg: sell 1.5M sUSDC into the pool through the real SwapRouter
    sigchain.swap(pool, a, 1_500_000 * 10**6)
    r = await src.read()
    sqrt_p, tick = sigchain.slot0(pool)
    exact = pool_price(sqrt_p, 6, 6)
    if t0.address != a.address:
        exact = 1 / exact
    assert r.value == float(exact) and r.extra["sqrt_price_x96"] == sqrt_p
    assert r.as_of == chain_now(sigchain)
    bps = (r.value - 1) * 1e4
    assert bps < -50, bps  # off peg by more than the elevated threshold
    dep = S.depeg("sUSDC", [to_peg_quote(r)], chain_now(sigchain))
    want = S.classify(abs(bps), S.DepegConfig().thresholds, None)
    assert dep.level is want and dep.level >= Level.ELEVATED
    # tick agrees with the price: 1.0001^tick within one tick
    assert 1.0001 ** (tick if t0.address == a.address else -tick) == pytest.approx(
        r.value, rel=1.1e-4)
    # the pool reading ages by the chain's clock
    advance(sigchain, 121)
    assert (await src.read()).value is not None  # a new read at the new block is fresh
    stale = r.checked(chain_now(sigchain))
    assert stale.value is None and stale.reason.startswith("stale: ")


async def test_pool_tvl_exact_and_48h_drop_in_store(sigchain, stable_pool):
    pool, _a, _b, t0, t1 = stable_pool
    engine = open_engine("sqlite://")
    tvl = PoolTvl(aw3(sigchain), pool, "sUSDC/sUSDT/500")
    now = chain_now(sigchain)
    p0 = Reading("p0", 0.999, now, "test", 3600)
    p1 = Reading("p1", 1.0, now, "test", 3600)
    r = await tvl.read(p0, p1)
    erc = sigchain.contract("ERC20", t0.address), sigchain.contract("ERC20", t1.address)
    b0 = erc[0].functions.balanceOf(pool).call()
    b1 = erc[1].functions.balanceOf(pool).call()
    assert (r.extra["balance0"], r.extra["balance1"]) == (b0, b1)
    assert r.value == float(Fraction(b0, 10**6) * Fraction(0.999) + Fraction(b1, 10**6))
    # unknown price -> unknown TVL
    u = await tvl.read(p0.unknown("feed down"), p1)
    assert u.value is None and "token0 price unknown" in u.reason and "feed down" in u.reason

    # hourly samples over 30 h of chain time, then half the liquidity leaves
    key = "tvl:sUSDC/sUSDT/500"
    for _ in range(30):
        r = await tvl.read(p0, p1)
        MarketStore(engine).record_tvl(key, r.as_of, r.value, r.source)
        advance(sigchain, 3600)
    before = r.value
    npm = sigchain.contract("NonfungiblePositionManager", sigchain.addresses["position_manager"])
    me = sigchain.deployer.address
    # the narrow (-200, 200) position this module's fixture minted in this pool (sigchain is
    # shared: other modules' positions of the deployer come before it in the owner's list)
    owned = [npm.functions.tokenOfOwnerByIndex(me, i).call()
             for i in range(npm.functions.balanceOf(me).call())]
    (token_id, liq), = [(t, p[7]) for t in owned
                        for p in [npm.functions.positions(t).call()]
                        if (p[2], p[3], p[4], p[5], p[6]) == (t0.address, t1.address, 500, -200, 200)]
    sigchain.transact(npm.functions.decreaseLiquidity((token_id, liq, 0, 0, 2**63)))
    sigchain.transact(npm.functions.collect((token_id, me, 2**128 - 1, 2**128 - 1)))
    r = await tvl.read(p0, p1)
    MarketStore(engine).record_tvl(key, r.as_of, r.value, r.source)
    series = MarketStore(engine).tvl_series(key, r.as_of - 48 * 3600)
    assert len(series) == 31 and series[-1] == (r.as_of, r.value)
    drop = S.tvl_drop(series, r.as_of)
    assert drop.evidence["drop"] == pytest.approx((before - r.value) / before)
    assert drop.level is Level.CRISIS, drop.reason  # the wide position held > 30%
    # the same sample twice is stored once
    assert MarketStore(engine).record_tvl(key, r.as_of, r.value, r.source) is False


class RacingProvider(AsyncHTTPProvider):
    """A provider that lets a block land right after the reading fetched the latest block
    (the race a live chain produces): a reading pinned at one block must not see it."""

    def __init__(self, url: str, land_block) -> None:
        super().__init__(url)
        self.land_block = land_block

    async def make_request(self, method, params):
        response = await super().make_request(method, params)
        if method == "eth_getBlockByNumber" and self.land_block is not None:
            land, self.land_block = self.land_block, None
            land()  # a new block with a new answer / price, mined before the eth_calls
        return response


async def test_feed_reading_is_pinned_at_one_block(sigchain, feed_artifact):
    feed_c = deploy_feed(sigchain, feed_artifact, 100_000_000)
    mine_at(sigchain, chain_now(sigchain) + 30)  # the next block is visibly later in time too
    block, ts = sigchain.w3.eth.block_number, chain_now(sigchain)

    def land() -> None:
        mine_at(sigchain, ts + 600)
        sigchain.transact(feed_c.functions.updateAnswer(90_000_000))

    w3 = track(AsyncWeb3(RacingProvider(sigchain.url, land)))
    r = await ChainlinkFeed(w3, feed_c.address, "USDC/USD").read()
    assert sigchain.w3.eth.block_number > block + 1  # blocks landed during the read
    # answer, round and clock all from the block the reading started at
    assert r.value == 1.0 and r.extra["round_id"] == 1 and r.extra["chain_time"] == ts
    assert r.extra["block"] == block
    assert (r.extra["round_id"], r.extra["answer"]) == tuple(
        feed_c.functions.latestRoundData().call(block_identifier=block)[:2])
    r = await ChainlinkFeed(w3, feed_c.address, "USDC/USD").read()  # next read: the new round
    assert r.value == 0.9 and r.extra["round_id"] == 2


async def test_pool_price_and_tvl_are_pinned_at_one_block(sigchain, stable_pool):
    pool, a, _b, t0, t1 = stable_pool
    block = sigchain.w3.eth.block_number
    sqrt_before, _ = sigchain.slot0(pool)
    erc = sigchain.contract("ERC20", t0.address), sigchain.contract("ERC20", t1.address)
    balances_before = [e.functions.balanceOf(pool).call() for e in erc]

    w3 = track(AsyncWeb3(RacingProvider(sigchain.url,
                                        lambda: sigchain.swap(pool, a, 10_000 * 10**6))))
    src = UniswapStablePool(w3, pool, "sUSDC/sUSDT/500", asset_is_token0=(t0.address == a.address))
    r = await src.read()
    assert sigchain.slot0(pool)[0] != sqrt_before  # the swap landed during the read
    assert r.extra["sqrt_price_x96"] == sqrt_before and r.extra["block"] == block

    block = sigchain.w3.eth.block_number
    balances_now = [e.functions.balanceOf(pool).call() for e in erc]
    assert balances_now != balances_before
    w3 = track(AsyncWeb3(RacingProvider(sigchain.url,
                                        lambda: sigchain.swap(pool, a, 10_000 * 10**6))))
    now = chain_now(sigchain)
    p = Reading("p", 1.0, now, "test", 3600)
    r = await PoolTvl(w3, pool, "sUSDC/sUSDT/500").read(p, p)
    assert [r.extra["balance0"], r.extra["balance1"]] == balances_now  # not the later block's
    assert r.as_of == now and r.extra["block"] == block
    assert [e.functions.balanceOf(pool).call() for e in erc] != balances_now
