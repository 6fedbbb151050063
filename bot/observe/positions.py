"""PositionsObserver: an owner's Uniswap v3 positions, read tick after tick through one
RPC pool and one warm reader (after the first read, one HTTP request per tick whatever the
number of positions), returned as a frozen snapshot stamped with the block read at."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from eth_utils import to_checksum_address

from adapters.evm.chain import ChainConnection, WrongChain
from adapters.evm.rpc import RpcError, RpcUnavailable
from adapters.evm.uniswap_v3 import PositionsChanging, ReadError, UniswapV3Reader
from adapters.redact import redact_urls
from bot.observe.errors import ObserveInvalid, ObserveUnavailable
from policies.address import address_problem
from policies.errors import InvalidInput
from policies.lp_math import PositionMetrics, position_metrics
from policies.quote import OperatorView, UsdSource, operator_view, position_json
from policies.types import PoolState, Position


def parse_address(value: str, field: str) -> str:
    """A checksummed address (policies.address: EIP-55 for mixed case), or ObserveInvalid
    naming the field."""
    problem = address_problem(value.strip() if isinstance(value, str) else value)
    if problem is not None:
        raise ObserveInvalid(field, problem)
    return str(to_checksum_address(value.strip()))


@dataclass(frozen=True, slots=True)
class PositionReading:
    """One position as read, with its amounts, fees, value and greeks at that block."""

    position: Position
    metrics: PositionMetrics

    def view(self, usd: UsdSource | None = None) -> OperatorView:
        """The position in operator units (policies/quote.py): pair as quoted, price quote
        per base, delta and gamma in the base token, value in USD when a source knows it."""
        return operator_view(self.position, self.metrics, usd)

    def to_json(self, usd: UsdSource | None = None) -> dict[str, Any]:
        """Raw integers as read (amounts, fees, liquidity, ticks) and the operator view."""
        return position_json(self.position, self.metrics, usd)


@dataclass(frozen=True, slots=True)
class PositionsSnapshot:
    """Every position of `owner` and the pools they sit in, all read at one block."""

    chain_id: int
    owner: str
    position_manager: str
    block_number: int
    block_hash: str
    positions: tuple[PositionReading, ...]
    pools: tuple[PoolState, ...]  # by address, each once

    @property
    def token_ids(self) -> frozenset[int]:
        return frozenset(r.position.token_id for r in self.positions)

    def pool(self, address: str) -> PoolState:
        for p in self.pools:
            if p.address == address:
                return p
        raise KeyError(address)


class PositionsObserver:
    """Owns an RpcPool and a UniswapV3Reader for its whole life (`async with`, or aclose()).

    The chain id and the contracts' code are checked once, on the first read."""

    def __init__(
        self,
        rpc_urls: Sequence[str] | ChainConnection,
        owner: str,
        position_manager: str,
        multicall: str,
        *,
        expected_chain_id: int | None = None,
        timeout: float = 10.0,
        rate_limit: int = 50,
        chunk_size: int = 500,
    ) -> None:
        """``rpc_urls``: a ChainConnection to share (the caller closes it), or URLs from
        which the observer builds and owns one (adapters/evm/chain.py)."""
        self.owner = parse_address(owner, "owner")
        self.position_manager = parse_address(position_manager, "position_manager")
        self.multicall = parse_address(multicall, "multicall")
        if isinstance(rpc_urls, ChainConnection):
            self._conn, self._owns_conn = rpc_urls, False
        else:
            if not rpc_urls:
                raise ObserveInvalid("rpc_urls", "at least one RPC URL is required")
            try:
                self._conn = ChainConnection(list(rpc_urls), chain_id=expected_chain_id, timeout=timeout,
                                             rate_limit=rate_limit)
            except InvalidInput as exc:
                raise ObserveInvalid("rpc_urls", str(exc)) from None
            self._owns_conn = True
        self._urls = list(self._conn.urls)
        self._rpc = self._conn.pool
        self._reader = UniswapV3Reader(self._rpc, self.position_manager, self.multicall, chunk_size=chunk_size)
        self._expected_chain_id = expected_chain_id if expected_chain_id is not None else self._conn.expected_chain_id
        self._chain_id: int | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def http_requests(self) -> int:
        """HTTP requests sent so far, over every endpoint."""
        return self._rpc.total_requests

    async def __aenter__(self) -> PositionsObserver:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if self._owns_conn:
                await self._conn.aclose()

    async def read(self, *, refresh_ids: bool = False) -> PositionsSnapshot:
        """The owner's positions now; ObserveError for anything that went wrong."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("PositionsObserver is closed")
            try:
                if self._chain_id is None:
                    self._chain_id = await self._preflight()
                positions = await self._reader.read(self.owner, refresh_ids=refresh_ids)
                if positions:
                    block, block_hash = self._reader.last_block, self._reader.last_block_hash
                else:  # nothing was read through the stamped path: stamp with the head
                    header = await self._rpc.request("eth_getBlockByNumber", ["latest", False])
                    block, block_hash = int(header["number"], 16), str(header["hash"])
            except (ReadError, ValueError) as exc:  # not a v3 manager/pool/token at that address
                raise ObserveInvalid(None, str(exc)) from None
            except WrongChain as exc:  # a URL of the list serves another chain
                raise ObserveInvalid("chain_id", str(exc)) from None
            except (RpcUnavailable, PositionsChanging) as exc:
                raise ObserveUnavailable(None, str(exc)) from None
            except RpcError as exc:
                raise ObserveUnavailable(None, f"RPC error from {redact_urls(self._urls[0])}: {exc}") from None
            readings = tuple(PositionReading(p, position_metrics(p)) for p in positions)
            pools = {p.pool.address: p.pool for p in positions}
            return PositionsSnapshot(
                chain_id=self._chain_id,
                owner=self.owner,
                position_manager=self.position_manager,
                block_number=block,
                block_hash=block_hash,
                positions=readings,
                pools=tuple(pools[a] for a in sorted(pools)),
            )

    async def _preflight(self) -> int:
        """Chain id and code at both contracts, in one batched request; the chain id."""
        contracts = {"position_manager": self.position_manager, "multicall": self.multicall}
        calls: list[tuple[str, list[object]]] = [("eth_chainId", [])]
        calls += [("eth_getCode", [address, "latest"]) for address in contracts.values()]
        try:
            answers = await self._rpc.batch(calls)
        except RpcError as exc:
            raise ObserveUnavailable(None, f"RPC refused the first requests: {exc}") from None
        chain_id = int(answers[0], 16)
        if self._expected_chain_id is not None and chain_id != self._expected_chain_id:
            raise ObserveInvalid(
                "chain_id", f"wrong chain: the RPC serves chain {chain_id}, expected {self._expected_chain_id}"
            )
        try:  # the connection records it (asked once, in this batch) and checks its own expectation
            self._conn.check_chain_id(chain_id)
        except WrongChain as exc:
            raise ObserveInvalid("chain_id", str(exc)) from None
        for (field, address), code in zip(contracts.items(), answers[1:], strict=True):
            if code in ("0x", "0x0", None):
                raise ObserveInvalid(field, f"{address}: no contract at this address on chain {chain_id}")
        return chain_id
