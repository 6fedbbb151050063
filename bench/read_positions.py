"""Reading N positions: Multicall3 batched (cold and warm) against one eth_call per field.

Run: .venv/bin/python -m bench.read_positions [--sizes 100 1000] [--json]
Starts its own local chain; requests are counted by a proxy in front of anvil.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from adapters.evm.multicall import Call
from adapters.evm.rpc import RpcPool
from adapters.evm.uniswap_v3 import UniswapV3Reader
from bot.devchain import TICK_SPACING, DevChain
from tests.support.rpc_proxy import CountingProxy


def owner_for(n: int) -> str:
    return "0x" + f"{0xBE7C4000 + n:040x}"


def seed(chain: DevChain, sizes: list[int]) -> None:
    pools = list(chain.pools.values())
    for n in sizes:
        for k, pool in enumerate(pools):
            t0, t1, fee = chain.pool_tokens(pool)
            _, tick = chain.slot0(pool)
            sp = TICK_SPACING[fee]
            base = tick - tick % sp
            count = n // len(pools) + (1 if k < n % len(pools) else 0)
            ranges = [
                (base - sp * (1 + i % 53), base + sp * (1 + i % 47), 10**t0.decimals, 10**t1.decimals)
                for i in range(count)
            ]
            chain.mint_many(pool, ranges, recipient=owner_for(n))


async def naive(rpc: RpcPool, reader: UniswapV3Reader, owner: str) -> int:
    """The same reads, one eth_call each (the way a plain contract-call loop does it)."""
    from adapters.evm import uniswap_v3 as u

    npm = reader.position_manager
    calls = [Call(npm, u.BALANCE_OF + u._addr_arg(owner))]
    count = 0
    for c in calls:
        raw = await rpc.request("eth_call", [{"to": c.target, "data": "0x" + c.data.hex()}, "latest"])
        count = int(raw, 16)
    ids = []
    for i in range(count):
        raw = await rpc.request(
            "eth_call",
            [{"to": npm, "data": "0x" + (u.TOKEN_OF_OWNER_BY_INDEX + u._addr_arg(owner) + u._u256(i)).hex()}, "latest"],
        )
        ids.append(int(raw, 16))
    # per position: positions(), the pool's slot0/liquidity/feeGrowthGlobal0/1, both ticks
    warm = await reader.read(owner)
    for p in warm:
        targets = [(npm, u.POSITIONS + u._u256(p.token_id))]
        targets += [(p.pool.address, sel) for sel in (u.SLOT0, u.LIQUIDITY, u.FEE_GROWTH_GLOBAL0, u.FEE_GROWTH_GLOBAL1)]
        from eth_abi import encode

        targets += [(p.pool.address, u.TICKS + encode(["int24"], [t])) for t in (p.tick_lower, p.tick_upper)]
        for to, data in targets:
            await rpc.request("eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"])
    return len(ids)


async def measure(chain: DevChain, sizes: list[int]) -> list[dict[str, float]]:
    proxy = await CountingProxy(chain.url).start()
    rpc = RpcPool([proxy.url], rate_limit=100_000)
    out = []
    try:
        for n in sizes:
            owner = owner_for(n)
            reader = UniswapV3Reader(rpc, chain.addresses["position_manager"], chain.addresses["multicall3"])
            proxy.reset()
            t = time.perf_counter()
            got = await reader.read(owner)
            cold_s, cold_req, cold_calls = time.perf_counter() - t, proxy.http_requests, proxy.calls["eth_call"]
            assert len(got) == n
            proxy.reset()
            t = time.perf_counter()
            await reader.read(owner)
            warm_s, warm_req, warm_calls = time.perf_counter() - t, proxy.http_requests, proxy.calls["eth_call"]
            naive_reader = UniswapV3Reader(rpc, chain.addresses["position_manager"], chain.addresses["multicall3"])
            await naive_reader.read(owner)  # learn static data outside the timing
            proxy.reset()
            t = time.perf_counter()
            await naive(rpc, naive_reader, owner)
            naive_s = time.perf_counter() - t
            naive_req = proxy.http_requests - 1  # minus the helper's own warm read
            out.append({
                "positions": n,
                "batched_cold_http": cold_req, "batched_cold_eth_calls": cold_calls, "batched_cold_s": cold_s,
                "batched_warm_http": warm_req, "batched_warm_eth_calls": warm_calls, "batched_warm_s": warm_s,
                "per_field_http": naive_req, "per_field_s": naive_s,
                "speedup_warm": naive_s / warm_s,
            })
    finally:
        await rpc.close()
        await proxy.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with DevChain.start() as chain:
        seed(chain, args.sizes)
        rows = asyncio.run(measure(chain, args.sizes))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'N':>6} {'cold http':>9} {'cold s':>8} {'warm http':>9} {'eth_calls':>9} {'warm s':>8} "
          f"{'per-field http':>14} {'per-field s':>11} {'ratio':>7}")
    for r in rows:
        print(f"{r['positions']:>6} {r['batched_cold_http']:>9} {r['batched_cold_s']:>8.3f} "
              f"{r['batched_warm_http']:>9} {r['batched_warm_eth_calls']:>9} {r['batched_warm_s']:>8.3f} "
              f"{r['per_field_http']:>14} {r['per_field_s']:>11.3f} {r['speedup_warm']:>6.1f}x")


if __name__ == "__main__":
    main()
