"""Must-show of issue 10 (units): on the dev chain, random USDC/WETH positions; `positions
--json` delta equals the WETH amount the chain says the position holds (NonfungiblePosition
Manager.decreaseLiquidity, eth_call from the Safe), value_usd equals those amounts at the
pool's price (slot0, exactly by Fraction), and `plan --live --json` shows the same numbers for
the same positions. The positions are minted in a chain snapshot, reverted afterwards."""

from __future__ import annotations

import asyncio
import json
import random
import time
from fractions import Fraction
from pathlib import Path

import pytest

from bot.devchain import DevChain
from tests.bot.test_assemble import run, seed_stores, venues, write_files
from tests.support.cli import lphedge

SEED = 20261203


def _chain_amounts(chain: DevChain, token_id: int) -> tuple[int, int]:
    """(amount0, amount1) the position would return now: the chain's own answer."""
    npm = chain.contract("NonfungiblePositionManager", chain.addresses["position_manager"])
    liquidity = npm.functions.positions(token_id).call()[7]
    a0, a1 = npm.functions.decreaseLiquidity((token_id, liquidity, 0, 0, 2**63)).call(
        {"from": chain.addresses["safe"]})
    return int(a0), int(a1)


async def test_delta_value_and_plan_agree_on_random_usdc_weth_positions(devchain: DevChain,
                                                                       tmp_path: Path) -> None:
    pool = devchain.pools["WETH/USDC/500"]
    t0, t1, _ = devchain.pool_tokens(pool)
    weth_is_0 = t0.symbol == "WETH"
    snap = devchain.snapshot()
    try:
        sqrt_price, tick = devchain.slot0(pool)
        rnd = random.Random(SEED)
        minted = []
        for _ in range(6):  # in range, below, above: each side of the current tick
            lo = tick - tick % 10 + 10 * rnd.randint(-400, 300)
            hi = lo + 10 * rnd.randint(1, 500)
            minted.append(devchain.mint(pool, lo, hi, 10 ** (t0.decimals + 2), 10 ** (t1.decimals + 2)))
        out = await asyncio.to_thread(lphedge, "positions", "--rpc-url", devchain.url, "--owner", devchain.addresses["safe"],
                      "--position-manager", devchain.addresses["position_manager"], "--json")
        assert out.returncode == 0, out.stderr
        rows = {r["token_id"]: r for r in json.loads(out.stdout)}
        raw = Fraction(sqrt_price**2, 2**192)  # token1 per token0, raw units
        usdc_per_weth = (raw if weth_is_0 else 1 / raw) * Fraction(10**18, 10**6)
        in_range = 0
        for tid in minted:
            r = rows[tid]
            a0, a1 = _chain_amounts(devchain, tid)
            assert (r["amount0"], r["amount1"]) == (a0, a1)
            weth, usdc = (a0, a1) if weth_is_0 else (a1, a0)
            assert (r["base"], r["quote"]) == ("ETH", "USDC")
            assert r["orientation"] == ("base=token0" if weth_is_0 else "base=token1")
            assert r["delta"] == float(Fraction(weth, 10**18))  # exact: the WETH held
            assert r["price"] == pytest.approx(float(usdc_per_weth), rel=1e-12)
            value = Fraction(weth, 10**18) * usdc_per_weth + Fraction(usdc, 10**6)
            assert r["value_usd"] == pytest.approx(float(value), rel=1e-12)
            assert r["usd_source"] == "USDC leg at $1"
            in_range += r["in_range"]
            assert (r["gamma_1pct"] < 0) == r["in_range"]
        assert 0 < in_range < len(minted)  # both cases were drawn

        now_ms = int(time.time() * 1000)
        servers = await venues(now_ms)
        try:
            policy, config, db = write_files(devchain, servers, tmp_path)
            seed_stores(devchain, db, policy, now_ms // 1000)
            code, live_out, err = await run("plan", "--live", "--policy", str(policy), "--config",
                                            str(config), "--now", str(now_ms // 1000), "--json")
            code_t, table, err_t = await run("plan", "--live", "--policy", str(policy), "--config",
                                             str(config), "--now", str(now_ms // 1000))
        finally:
            for s in servers.values():
                await s.stop()
        assert code == 0, err
        assert code_t == 0, err_t
        planned = {p["token_id"]: p for p in json.loads(live_out)["positions"]}
        for tid in minted:
            for key in ("base", "quote", "price", "value_usd", "delta", "gamma_1pct", "amount0",
                        "amount1", "orientation", "in_range"):
                assert planned[tid][key] == rows[tid][key], (tid, key)
        # the table of plan is the positions table: same pair, same words
        assert "ETH/USDC" in table and "full range" in table and "USDC leg at $1" in table
        assert "WETH" not in table
    finally:
        devchain.revert(snap)
