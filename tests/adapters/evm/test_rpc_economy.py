"""RPC economy and resilience of the position reader, counted by a proxy in front of anvil.

Reading N positions costs a fixed number of HTTP requests whatever N is (cold: 5,
warm: 1); only the number of eth_calls inside a request grows, as ceil(calls / chunk).
"""

from __future__ import annotations

import math

import pytest

from adapters.anvil import free_port
from adapters.evm.rpc import RpcPool, RpcUnavailable
from adapters.evm.uniswap_v3 import UniswapV3Reader
from bot.devchain import DevChain
from policies.lp_math import position_amounts
from tests.support.rpc_proxy import CountingProxy

SIZES = (1, 10, 100, 1000)
CHUNK = 500


def _owner(n: int) -> str:
    return "0x" + f"{0xC0FFEE00 + n:040x}"


@pytest.fixture(scope="module")
def many(devchain: DevChain) -> DevChain:
    """Owners holding 1, 10, 100 and 1,000 positions spread over the three seeded pools."""
    pools = list(devchain.pools.values())[:3]
    for n in SIZES:
        for k, pool in enumerate(pools):
            _, tick = devchain.slot0(pool)
            t0, t1, fee = devchain.pool_tokens(pool)
            spacing = {500: 10, 3000: 60, 10000: 200}[fee]
            base = tick - tick % spacing
            count = n // 3 + (1 if k < n % 3 else 0)
            ranges = [
                (base - spacing * (1 + i % 37), base + spacing * (1 + i % 41), 10 ** t0.decimals, 10 ** t1.decimals)
                for i in range(count)
            ]
            if ranges:
                assert devchain.mint_many(pool, ranges, recipient=_owner(n)) == count
    return devchain


async def test_requests_do_not_grow_with_positions(many: DevChain) -> None:
    proxy = await CountingProxy(many.url).start()
    rpc = RpcPool([proxy.url])
    cold, warm, eth_calls = {}, {}, {}
    try:
        for n in SIZES:
            reader = UniswapV3Reader(rpc, many.addresses["position_manager"], many.addresses["multicall3"], chunk_size=CHUNK)
            proxy.reset()
            positions = await reader.read(_owner(n))
            assert len(positions) == n
            cold[n] = proxy.http_requests
            proxy.reset()
            again = await reader.read(_owner(n))
            warm[n] = proxy.http_requests
            eth_calls[n] = proxy.calls["eth_call"]
            assert [position_amounts(p) for p in again] == [position_amounts(p) for p in positions]
    finally:
        await rpc.close()
        await proxy.stop()
    assert set(cold.values()) == {5}, cold  # balanceOf, ids, positions, pools+tokens, state
    assert set(warm.values()) == {1}, warm  # one JSON-RPC batch per tick
    for n in SIZES:
        pools = min(n, 3)
        # balanceOf + ownerOf and positions per id + 4 per pool + at most 2 ticks per id,
        # with one block stamp per chunk
        calls_upper = 1 + 2 * n + 4 * pools + 2 * n
        assert eth_calls[n] <= math.ceil(calls_upper / (CHUNK - 1)), (n, eth_calls[n])
    assert eth_calls[1000] >= 3  # the batch really was split under the chunk size


async def test_failover_to_the_next_endpoint(devchain: DevChain) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    broken = await CountingProxy(devchain.url, fail=True).start()
    good = await CountingProxy(devchain.url).start()
    rpc = RpcPool([dead, broken.url, good.url], timeout=2)
    try:
        reader = UniswapV3Reader(rpc, devchain.addresses["position_manager"], devchain.addresses["multicall3"])
        positions = await reader.read(devchain.addresses["safe"])
        assert {p.token_id for p in positions} >= set(devchain.position_ids)
        assert broken.http_requests >= 1 and good.http_requests >= 1
        # the healthy endpoint is now tried first: the next read never touches the others
        before = broken.http_requests
        await reader.read(devchain.addresses["safe"])
        assert broken.http_requests == before
    finally:
        await rpc.close()
        await broken.stop()
        await good.stop()


async def test_timeout_then_unavailable(devchain: DevChain) -> None:
    slow = await CountingProxy(devchain.url, delay=5).start()
    rpc = RpcPool([slow.url], timeout=0.3)
    try:
        with pytest.raises(RpcUnavailable, match="TimeoutError"):
            await rpc.chain_id()
    finally:
        await rpc.close()
        await slow.stop()


async def test_warm_read_follows_transfers_in_and_out(devchain: DevChain) -> None:
    """The cached id list never goes stale: a transfer out or a new position shows at once."""
    from eth_account import Account

    from adapters.anvil import ANVIL_KEYS

    holder, other = Account.from_key(ANVIL_KEYS[8]).address, Account.from_key(ANVIL_KEYS[9]).address
    pool = devchain.pools["WETH/USDC/500"]
    _, tick = devchain.slot0(pool)
    base = tick - tick % 10
    assert devchain.mint_many(pool, [(base - 100, base + 100, 10**6, 10**15)] * 3, recipient=holder) == 3
    proxy = await CountingProxy(devchain.url).start()
    rpc = RpcPool([proxy.url])
    npm = devchain.contract("NonfungiblePositionManager", devchain.addresses["position_manager"])
    try:
        reader = UniswapV3Reader(rpc, devchain.addresses["position_manager"], devchain.addresses["multicall3"])
        first = await reader.read(holder)
        assert len(first) == 3
        gone = first[0].token_id
        devchain.transact(npm.functions.transferFrom(holder, other, gone), sender=holder)
        proxy.reset()
        after_out = await reader.read(holder)
        assert {p.token_id for p in after_out} == {p.token_id for p in first} - {gone}
        assert proxy.http_requests == 1 + 2 + 1  # stale read, id list (2), fresh read
        devchain.mint_many(pool, [(base - 200, base + 200, 10**6, 10**15)], recipient=holder)
        after_in = await reader.read(holder)
        assert len(after_in) == 3 and gone not in {p.token_id for p in after_in}
        assert {p.token_id for p in after_out} < {p.token_id for p in after_in}
    finally:
        await rpc.close()
        await proxy.stop()


async def test_every_chunk_is_read_at_one_block(devchain: DevChain) -> None:
    """A block landing between the chunks of a read makes it re-read pinned to one block."""
    from adapters.evm.multicall import GET_BLOCK_NUMBER, Call, aggregate3_consistent

    proxy = await CountingProxy(devchain.url, mine_inside_batches=True).start()
    rpc = RpcPool([proxy.url])
    mc = devchain.addresses["multicall3"]
    try:
        calls = [Call(mc, GET_BLOCK_NUMBER) for _ in range(10)]
        block, results = await aggregate3_consistent(rpc, mc, calls, chunk_size=3)
        seen = {int.from_bytes(r.data, "big") for r in results}
        assert seen == {block}  # every call answered at the same block
        assert proxy.http_requests == 2  # the straddling read, then the pinned one
    finally:
        await rpc.close()
        await proxy.stop()
