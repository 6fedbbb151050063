"""Stablecoin prices from three kinds of source, for the depeg signal.

- Chainlink AggregatorV3 feeds: ``latestRoundData()``; stale when ``updatedAt`` is
  older than the feed's heartbeat *by the chain's clock* (latest block timestamp).
- Uniswap v3 stable/stable pools: ``slot0().sqrtPriceX96`` to the price of one
  stable in the other, exact from the integers, at the latest block.
- CEX order books through ccxt: mid of best bid and ask.

Each returns a :class:`Reading` (value = price of the stable in its peg unit),
never raising on outside failures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from web3 import AsyncWeb3

from adapters.market.base import Guard, Reading, SourceError, finite, make_exchange, now_s
from policies.signals import PegQuote

AGGREGATOR_V3_ABI: list[dict[str, Any]] = [
    {"inputs": [], "name": "decimals", "outputs": [{"name": "", "type": "uint8"}],
     "stateMutability": "view", "type": "function"},
    {"inputs": [], "name": "description", "outputs": [{"name": "", "type": "string"}],
     "stateMutability": "view", "type": "function"},
    {"inputs": [], "name": "latestRoundData", "outputs": [
        {"name": "roundId", "type": "uint80"}, {"name": "answer", "type": "int256"},
        {"name": "startedAt", "type": "uint256"}, {"name": "updatedAt", "type": "uint256"},
        {"name": "answeredInRound", "type": "uint80"}],
     "stateMutability": "view", "type": "function"},
]
POOL_ABI: list[dict[str, Any]] = [
    {"inputs": [], "name": "slot0", "outputs": [
        {"name": "sqrtPriceX96", "type": "uint160"}, {"name": "tick", "type": "int24"},
        {"name": "observationIndex", "type": "uint16"},
        {"name": "observationCardinality", "type": "uint16"},
        {"name": "observationCardinalityNext", "type": "uint16"},
        {"name": "feeProtocol", "type": "uint8"}, {"name": "unlocked", "type": "bool"}],
     "stateMutability": "view", "type": "function"},
    {"inputs": [], "name": "token0", "outputs": [{"name": "", "type": "address"}],
     "stateMutability": "view", "type": "function"},
    {"inputs": [], "name": "token1", "outputs": [{"name": "", "type": "address"}],
     "stateMutability": "view", "type": "function"},
]
ERC20_ABI: list[dict[str, Any]] = [
    {"inputs": [], "name": "decimals", "outputs": [{"name": "", "type": "uint8"}],
     "stateMutability": "view", "type": "function"},
    {"inputs": [{"name": "a", "type": "address"}], "name": "balanceOf",
     "outputs": [{"name": "", "type": "uint256"}], "stateMutability": "view",
     "type": "function"},
]
Q96 = 1 << 96


def to_peg_quote(r: Reading, now: int | None = None) -> PegQuote:
    """A policy input from a reading. With ``now`` (wall clock), an on-chain reading's
    ``as_of`` is moved onto the wall clock keeping its age by the chain's clock, so
    chain and CEX sources compare at one ``now`` even when the chain clock differs."""
    as_of = r.as_of
    chain_now = r.extra.get("chain_time")
    if now is not None and as_of is not None and isinstance(chain_now, int):
        as_of = now - (chain_now - as_of)
    return PegQuote(source=r.source, price=r.value, as_of=as_of, max_age=r.max_age_s,
                    reason=r.reason)


async def chain_time(w3: AsyncWeb3[Any]) -> int:
    block = await w3.eth.get_block("latest")
    return int(block["timestamp"])


@dataclass
class ChainlinkFeed:
    """One AggregatorV3 feed (e.g. USDC/USD) with its heartbeat."""

    w3: AsyncWeb3[Any]
    address: str
    label: str  # e.g. "USDC/USD"
    heartbeat_s: int = 86400
    guard: Guard | None = None
    _guard: Guard = field(init=False, repr=False)

    def __post_init__(self) -> None:  # one throttle per source, kept across reads
        self._guard = self.guard or Guard(self.name, timeout_s=10.0)

    @property
    def name(self) -> str:
        return f"chainlink:{self.label}"

    async def read(self) -> Reading:
        guard = self._guard
        contract = self.w3.eth.contract(address=AsyncWeb3.to_checksum_address(self.address),
                                        abi=AGGREGATOR_V3_ABI)
        block_ts = 0

        async def fetch() -> Reading:
            nonlocal block_ts
            block_ts = await chain_time(self.w3)
            decimals = int(await contract.functions.decimals().call())
            round_id, answer, _started, updated, answered_in = (
                await contract.functions.latestRoundData().call())
            extra = {"round_id": int(round_id), "answer": int(answer), "decimals": decimals,
                     "updated_at": int(updated), "chain_time": block_ts,
                     "address": self.address}
            if answer <= 0:
                raise SourceError(f"{self.label}: non-positive answer {answer}")
            if updated == 0:
                raise SourceError(f"{self.label}: round not complete (updatedAt 0)")
            if answered_in < round_id:
                raise SourceError(f"{self.label}: stale round (answeredInRound {answered_in} "
                                  f"< roundId {round_id})")
            price = float(Fraction(int(answer), 10 ** decimals))
            return Reading(self.name, price, int(updated), self.name, self.heartbeat_s, "ok",
                           extra)

        return await guard.reading(self.name, self.heartbeat_s, fetch, now=lambda: block_ts)


def pool_price(sqrt_price_x96: int, decimals0: int, decimals1: int) -> Fraction:
    """Exact human price of token0 in token1 from slot0: (sqrtP / 2^96)^2 * 10^(d0 - d1)."""
    return Fraction(sqrt_price_x96 * sqrt_price_x96, Q96 * Q96) * Fraction(10) ** (
        decimals0 - decimals1)


@dataclass
class UniswapStablePool:
    """Price of ``asset`` (token0 or token1 of the pool) in the pool's other stable."""

    w3: AsyncWeb3[Any]
    pool: str
    label: str  # e.g. "USDC/USDT/100"
    asset_is_token0: bool = True
    max_age_s: int = 120
    guard: Guard | None = None
    _guard: Guard = field(init=False, repr=False)

    def __post_init__(self) -> None:  # one throttle per source, kept across reads
        self._guard = self.guard or Guard(self.name, timeout_s=10.0)

    @property
    def name(self) -> str:
        return f"uniswap:{self.label}"

    async def read(self) -> Reading:
        guard = self._guard
        pool = self.w3.eth.contract(address=AsyncWeb3.to_checksum_address(self.pool),
                                    abi=POOL_ABI)
        block_ts = 0

        async def fetch() -> Reading:
            nonlocal block_ts
            block_ts = await chain_time(self.w3)
            sqrt_p, tick, *_ = await pool.functions.slot0().call()
            if sqrt_p == 0:
                raise SourceError(f"{self.label}: pool not initialised")
            t0 = await pool.functions.token0().call()
            t1 = await pool.functions.token1().call()
            d0 = int(await self.w3.eth.contract(address=t0, abi=ERC20_ABI)
                     .functions.decimals().call())
            d1 = int(await self.w3.eth.contract(address=t1, abi=ERC20_ABI)
                     .functions.decimals().call())
            price = pool_price(int(sqrt_p), d0, d1)
            if not self.asset_is_token0:
                price = 1 / price
            return Reading(self.name, float(price), block_ts, self.name, self.max_age_s, "ok",
                           {"sqrt_price_x96": int(sqrt_p), "tick": int(tick),
                            "chain_time": block_ts,
                            "price_exact": f"{price.numerator}/{price.denominator}"})

        return await guard.reading(self.name, self.max_age_s, fetch, now=lambda: block_ts)


@dataclass
class CexBook:
    """Mid price of a stable/stable order book on a ccxt venue (e.g. binance USDC/USDT)."""

    venue: str
    symbol: str
    exchange: Any
    guard: Guard
    invert: bool = False  # True when the asset is the quote currency
    max_age_s: int = 120

    @classmethod
    def create(cls, venue: str, symbol: str, api_url: str | None = None,
               timeout_s: float = 10.0, invert: bool = False) -> CexBook:
        return cls(venue, symbol, make_exchange(venue, api_url, timeout_s),
                   Guard(venue, timeout_s=timeout_s), invert)

    @property
    def name(self) -> str:
        return f"{self.venue}:{self.symbol}"

    async def close(self) -> None:
        await self.exchange.close()

    async def read(self) -> Reading:
        async def fetch() -> Reading:
            if not self.exchange.markets:
                await self.exchange.load_markets()
            book = await self.exchange.fetch_order_book(self.symbol, limit=5)
            if not book.get("bids") or not book.get("asks"):
                raise SourceError(f"{self.name}: empty order book")
            bid = finite(book["bids"][0][0], "best bid", positive=True)
            ask = finite(book["asks"][0][0], "best ask", positive=True)
            if bid > ask:
                raise SourceError(f"{self.name}: crossed book (bid {bid} > ask {ask})")
            mid = (bid + ask) / 2
            ts = book.get("timestamp")
            as_of = int(ts) // 1000 if ts else now_s()
            return Reading(self.name, 1 / mid if self.invert else mid, as_of, self.name,
                           self.max_age_s, "ok", {"bid": bid, "ask": ask})

        return await self.guard.reading(self.name, self.max_age_s, fetch)
