"""LP math to the wei against the chain's own answer.

At least 200 random positions (random ranges including full range and ranges at
MIN/MAX tick, random liquidity) in three fresh pools (fee 500/3000/10000, decimals
6/8/18), then random real swaps, some stopping exactly on a range edge. For every
position the Safe holds: amounts equal a static decreaseLiquidity(all liquidity) and
fees equal a static collect(max) from the owner.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from adapters.evm.rpc import RpcPool
from adapters.evm.uniswap_v3 import UniswapV3Reader
from bot.devchain import MAX_UINT128, TICK_SPACING, DevChain
from policies.lp_math import MAX_TICK, MIN_TICK, fees_owed, position_amounts
from policies.types import Position

SEEDS = (20261121, 7)
POSITIONS_PER_SEED = 105


def _random_range(rng: random.Random, tick: int, spacing: int) -> tuple[int, int]:
    lo_min, hi_max = -(MAX_TICK // spacing) * spacing, (MAX_TICK // spacing) * spacing
    kind = rng.random()
    if kind < 0.1:
        return lo_min, hi_max  # full range
    if kind < 0.2:  # pinned at MIN tick
        return lo_min, rng.randrange(tick // spacing - 50, tick // spacing + 50) * spacing
    if kind < 0.3:  # pinned at MAX tick
        return rng.randrange(tick // spacing - 50, tick // spacing + 50) * spacing, hi_max
    width = rng.choice((1, 2, 5, 20, 100, 1000))
    centre = tick // spacing + rng.randint(-3 * width, 3 * width)
    lo = max(centre - rng.randint(1, width), lo_min // spacing)
    hi = min(lo + rng.randint(1, 2 * width), hi_max // spacing)
    return lo * spacing, hi * spacing


def _setup(chain: DevChain, seed: int) -> list[str]:
    rng = random.Random(seed)
    t6 = chain.deploy_token(f"S6x{seed}", 6)
    t8 = chain.deploy_token(f"S8x{seed}", 8)
    t18 = chain.deploy_token(f"S18x{seed}", 18)
    pools = [
        chain.create_pool(t18, t6, 500, rng.uniform(100, 5000)),
        chain.create_pool(t8, t18, 3000, rng.uniform(5, 50)),
        chain.create_pool(t6, t8, 10000, rng.uniform(1e-5, 1e-4)),
    ]
    minted = 0
    while minted < POSITIONS_PER_SEED:
        pool = rng.choice(pools)
        t0, t1, fee = chain.pool_tokens(pool)
        _, tick = chain.slot0(pool)
        lo, hi = _random_range(rng, tick, TICK_SPACING[fee])
        a0 = rng.randint(1, 10 ** (t0.decimals + rng.randint(0, 6)))
        a1 = rng.randint(1, 10 ** (t1.decimals + rng.randint(0, 6)))
        try:
            chain.mint(pool, lo, hi, a0, a1)
            minted += 1
        except Exception:  # zero liquidity for these amounts: draw again
            continue
    for _ in range(30):
        pool = rng.choice(pools)
        t0, t1, _fee = chain.pool_tokens(pool)
        if rng.random() < 0.3:
            # stop exactly on a tick boundary (a range edge when one is there)
            _, tick = chain.slot0(pool)
            chain.move_price(pool, tick + rng.randint(-600, 600))
        else:
            token_in = rng.choice((t0, t1))
            chain.swap(pool, token_in, rng.randint(1, 10 ** (token_in.decimals + 3)))
    return pools


@pytest.fixture(scope="module")
def exact_chain(devchain: DevChain) -> DevChain:
    snap = devchain.snapshot()
    for seed in SEEDS:
        _setup(devchain, seed)
    yield devchain
    devchain.revert(snap)


def _read(chain: DevChain) -> list[Position]:
    async def go() -> list[Position]:
        rpc = RpcPool([chain.url])
        try:
            reader = UniswapV3Reader(rpc, chain.addresses["position_manager"], chain.addresses["multicall3"])
            return await reader.read(chain.addresses["safe"])
        finally:
            await rpc.close()

    return asyncio.run(go())


def test_amounts_and_fees_equal_static_calls(exact_chain: DevChain) -> None:
    chain = exact_chain
    safe = chain.addresses["safe"]
    npm = chain.contract("NonfungiblePositionManager", chain.addresses["position_manager"])
    positions = _read(chain)
    assert len(positions) >= 200
    checked = in_range = below = above = edges = full = 0
    for p in positions:
        assert p.liquidity > 0
        expect_amounts = npm.functions.decreaseLiquidity((p.token_id, p.liquidity, 0, 0, 2**63)).call(
            {"from": safe}
        )
        expect_fees = npm.functions.collect((p.token_id, safe, MAX_UINT128, MAX_UINT128)).call({"from": safe})
        assert position_amounts(p) == tuple(expect_amounts), f"amounts of position {p.token_id}"
        assert fees_owed(p) == tuple(expect_fees), f"fees of position {p.token_id}"
        checked += 1
        tick = p.pool.tick
        in_range += p.tick_lower <= tick < p.tick_upper
        below += tick < p.tick_lower
        above += tick >= p.tick_upper
        edges += tick in (p.tick_lower, p.tick_upper, p.tick_lower - 1, p.tick_upper - 1)
        spacing = p.pool.tick_spacing
        full += p.tick_lower <= MIN_TICK + spacing and p.tick_upper >= MAX_TICK - spacing
    # the random draw really covered every region, full ranges, edges, and earned fees
    assert checked >= 200
    assert in_range and below and above and full, (in_range, below, above, full)
    assert sum(1 for p in positions if any(fees_owed(p))) > 50
