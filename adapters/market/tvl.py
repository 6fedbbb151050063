"""Pool TVL on chain: token balances held by the pool times their USD prices.

Balances are exact integers, all read at one pinned block whose timestamp is the
reading's ``as_of``; prices are readings (e.g. Chainlink feeds); an unknown price
makes the TVL unknown. Samples are kept in the store (bot/market_store.py) so a
48-hour drop is known intraday.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from web3 import AsyncWeb3

from adapters.market.base import Reading, SourceError
from adapters.market.stables import ERC20_ABI, PoolTokens


@dataclass
class PoolTvl(PoolTokens):
    KIND: ClassVar[str] = "tvl"

    max_age_s: int = 600

    async def balances(self, block: int) -> tuple[tuple[str, int, int], tuple[str, int, int]]:
        """((token0, raw balance, decimals), (token1, ...)) held by the pool at ``block``."""
        holder = AsyncWeb3.to_checksum_address(self.address)
        out = []
        for token, dec in await self.tokens(block):
            erc = self.contract(token, ERC20_ABI)
            out.append((token, int(await erc.functions.balanceOf(holder)
                                   .call(block_identifier=block)), dec))
        return out[0], out[1]

    async def read(self, price0: Reading, price1: Reading) -> Reading:
        """TVL in USD given USD prices of token0 and token1 (readings, checked by caller)."""

        async def fetch(block: int, block_ts: int) -> Reading:
            for which, p in (("token0", price0), ("token1", price1)):
                if p.value is None:
                    raise SourceError(f"{which} price unknown ({p.name}: {p.reason})")
                if p.value <= 0:
                    raise SourceError(f"{which} price not positive ({p.value})")
            assert price0.value is not None and price1.value is not None
            (t0, b0, d0), (t1, b1, d1) = await self.balances(block)
            usd = (Fraction(b0, 10 ** d0) * Fraction(price0.value)
                   + Fraction(b1, 10 ** d1) * Fraction(price1.value))
            return Reading(self.name, float(usd), block_ts, self.name, self.max_age_s, "ok", {
                "token0": t0, "balance0": b0, "decimals0": d0, "token1": t1, "balance1": b1,
                "decimals1": d1, "price0": price0.value, "price1": price1.value,
                "block": block})

        return await self.pinned_reading(self.max_age_s, fetch)
