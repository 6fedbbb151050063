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

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

from web3 import AsyncWeb3
from web3.exceptions import BadFunctionCallOutput, ContractLogicError

from adapters.market.base import (
    Guard,
    Reading,
    SourceError,
    answered_json,
    finite,
    make_exchange,
    now_s,
)
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
    return (await pinned_block(w3))[1]


async def pinned_block(w3: AsyncWeb3[Any]) -> tuple[int, int]:
    """(number, timestamp) of the latest block. A reading makes every one of its calls
    at this block number, so its values and its age all come from one block."""
    block = await w3.eth.get_block("latest")
    return int(block["number"]), int(block["timestamp"])


@dataclass
class ChainSource:
    """What the on-chain sources share: the contract they read, their label, one throttle
    kept across reads, and reads pinned at one block (ages counted by the chain's clock).

    ``w3`` is the ``async_w3`` of an adapters.evm.chain.ChainConnection: every request goes
    through its RpcPool (every URL of the chain, failover, throttle, timeout, redaction)."""

    KIND: ClassVar[str] = "chain"

    w3: AsyncWeb3[Any]
    address: str
    label: str
    guard: Guard | None = field(default=None, kw_only=True)
    _guard: Guard = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._guard = self.guard or Guard(self.name, timeout_s=10.0)

    @property
    def name(self) -> str:
        return f"{self.KIND}:{self.label}"

    def contract(self, address: str, abi: list[dict[str, Any]]) -> Any:
        return self.w3.eth.contract(address=AsyncWeb3.to_checksum_address(address), abi=abi)

    async def pinned_reading(self, max_age_s: int,
                             fetch: Callable[[int, int], Awaitable[Reading]]) -> Reading:
        """``fetch(block_number, block_timestamp)`` under the guard, its result checked
        against that block's timestamp; failures become an unknown reading."""
        block_ts = 0

        async def run() -> Reading:
            nonlocal block_ts
            number, block_ts = await pinned_block(self.w3)
            try:
                return await fetch(number, block_ts)
            except BadFunctionCallOutput:  # empty return data: nothing deployed there
                raise SourceError(f"{self.label}: no contract answering at {self.address} "
                                  f"(block {number})") from None
            except ContractLogicError as exc:  # code there, but not the expected interface
                raise SourceError(f"{self.label}: call reverted at {self.address} "
                                  f"({exc.message or 'no reason'}): not a "
                                  f"{self.KIND} contract?") from None

        return await self._guard.reading(self.name, max_age_s, run, now=lambda: block_ts)


@dataclass
class ChainlinkFeed(ChainSource):
    """One AggregatorV3 feed (e.g. USDC/USD) with its heartbeat."""

    KIND: ClassVar[str] = "chainlink"

    heartbeat_s: int = 86400

    async def read(self) -> Reading:
        feed = self.contract(self.address, AGGREGATOR_V3_ABI)

        async def fetch(block: int, block_ts: int) -> Reading:
            decimals = int(await feed.functions.decimals().call(block_identifier=block))
            round_id, answer, _started, updated, answered_in = (
                await feed.functions.latestRoundData().call(block_identifier=block))
            extra = {"round_id": int(round_id), "answer": int(answer), "decimals": decimals,
                     "updated_at": int(updated), "chain_time": block_ts, "block": block,
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

        return await self.pinned_reading(self.heartbeat_s, fetch)


def pool_price(sqrt_price_x96: int, decimals0: int, decimals1: int) -> Fraction:
    """Exact human price of token0 in token1 from slot0: (sqrtP / 2^96)^2 * 10^(d0 - d1)."""
    return Fraction(sqrt_price_x96 * sqrt_price_x96, Q96 * Q96) * Fraction(10) ** (
        decimals0 - decimals1)


@dataclass
class PoolTokens(ChainSource):
    """A Uniswap v3 pool's two tokens and their decimals: immutable, read once and kept."""

    _tokens: tuple[tuple[str, int], tuple[str, int]] | None = field(
        default=None, init=False, repr=False)

    async def tokens(self, block: int) -> tuple[tuple[str, int], tuple[str, int]]:
        """((token0, decimals0), (token1, decimals1))."""
        if self._tokens is None:
            pool = self.contract(self.address, POOL_ABI)
            out = []
            for fn in (pool.functions.token0, pool.functions.token1):
                token = str(await fn().call(block_identifier=block))
                dec = int(await self.contract(token, ERC20_ABI).functions.decimals()
                          .call(block_identifier=block))
                out.append((token, dec))
            self._tokens = (out[0], out[1])
        return self._tokens


@dataclass
class UniswapStablePool(PoolTokens):
    """Price of ``asset`` (token0 or token1 of the pool) in the pool's other stable."""

    KIND: ClassVar[str] = "uniswap"

    asset_is_token0: bool = True
    max_age_s: int = 120

    async def read(self) -> Reading:
        pool = self.contract(self.address, POOL_ABI)

        async def fetch(block: int, block_ts: int) -> Reading:
            sqrt_p, tick, *_ = await pool.functions.slot0().call(block_identifier=block)
            if sqrt_p == 0:
                raise SourceError(f"{self.label}: pool not initialised")
            (_t0, d0), (_t1, d1) = await self.tokens(block)
            price = pool_price(int(sqrt_p), d0, d1)
            if not self.asset_is_token0:
                price = 1 / price
            return Reading(self.name, float(price), block_ts, self.name, self.max_age_s, "ok",
                           {"sqrt_price_x96": int(sqrt_p), "tick": int(tick),
                            "chain_time": block_ts, "block": block,
                            "price_exact": f"{price.numerator}/{price.denominator}"})

        return await self.pinned_reading(self.max_age_s, fetch)


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
                answered_json(self.exchange, f"{self.name} order book")
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
