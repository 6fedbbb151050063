"""Pool TVL on chain: token balances held by the pool times their USD prices.

Balances are exact integers read at one block; prices are readings (e.g. Chainlink
feeds); an unknown price makes the TVL unknown. Samples are kept in the store
(bot/market_store.py) so a 48-hour drop is known intraday.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from web3 import AsyncWeb3

from adapters.market.base import Guard, Reading, SourceError
from adapters.market.stables import ERC20_ABI, POOL_ABI, chain_time


@dataclass
class PoolTvl:
    w3: AsyncWeb3[Any]
    pool: str
    label: str
    max_age_s: int = 600
    guard: Guard | None = None
    _guard: Guard = field(init=False, repr=False)

    def __post_init__(self) -> None:  # one throttle per source, kept across reads
        self._guard = self.guard or Guard(self.name, timeout_s=10.0)

    @property
    def name(self) -> str:
        return f"tvl:{self.label}"

    async def balances(self) -> tuple[tuple[str, int, int], tuple[str, int, int], int]:
        """((token0, raw balance, decimals), (token1, ...), block timestamp)."""
        pool = self.w3.eth.contract(address=AsyncWeb3.to_checksum_address(self.pool),
                                    abi=POOL_ABI)
        block = await self.w3.eth.get_block("latest")
        number = block["number"]
        out = []
        for fn in (pool.functions.token0, pool.functions.token1):
            token = await fn().call(block_identifier=number)
            erc = self.w3.eth.contract(address=token, abi=ERC20_ABI)
            bal = int(await erc.functions.balanceOf(pool.address).call(block_identifier=number))
            dec = int(await erc.functions.decimals().call(block_identifier=number))
            out.append((str(token), bal, dec))
        return out[0], out[1], int(block["timestamp"])

    async def read(self, price0: Reading, price1: Reading) -> Reading:
        """TVL in USD given USD prices of token0 and token1 (readings, checked by caller)."""
        guard = self._guard
        block_ts = 0

        async def fetch() -> Reading:
            nonlocal block_ts
            block_ts = await chain_time(self.w3)
            for which, p in (("token0", price0), ("token1", price1)):
                if p.value is None:
                    raise SourceError(f"{which} price unknown ({p.name}: {p.reason})")
                if p.value <= 0:
                    raise SourceError(f"{which} price not positive ({p.value})")
            (t0, b0, d0), (t1, b1, d1), block_ts = await self.balances()
            assert price0.value is not None and price1.value is not None
            usd = (Fraction(b0, 10 ** d0) * Fraction(price0.value)
                   + Fraction(b1, 10 ** d1) * Fraction(price1.value))
            return Reading(self.name, float(usd), block_ts, self.name, self.max_age_s, "ok", {
                "token0": t0, "balance0": b0, "decimals0": d0, "token1": t1, "balance1": b1,
                "decimals1": d1, "price0": price0.value, "price1": price1.value})

        return await guard.reading(self.name, self.max_age_s, fetch, now=lambda: block_ts)
