"""Read and value an owner's positions once: a thin wrapper over bot.observe.PositionsObserver
(the daemon keeps one observer across ticks instead)."""

from __future__ import annotations

from bot.observe.positions import PositionReading, PositionsObserver, parse_address

PositionRow = PositionReading  # the name the commands and the store know

__all__ = ["PositionRow", "parse_address", "read_positions"]


async def read_positions(
    rpc_urls: list[str],
    owner: str,
    position_manager: str,
    multicall: str,
    *,
    expected_chain_id: int | None = None,
    timeout: float = 10.0,
    chunk_size: int = 500,
    rate_limit: int = 50,
) -> tuple[int, list[PositionRow]]:
    """(chain id, rows) for every position of `owner`; ObserveError naming the field at fault."""
    async with PositionsObserver(
        rpc_urls, owner, position_manager, multicall,
        expected_chain_id=expected_chain_id, timeout=timeout, chunk_size=chunk_size,
        rate_limit=rate_limit,  # the chain's requests/s per URL (settings)
    ) as observer:
        snapshot = await observer.read()
    return snapshot.chain_id, list(snapshot.positions)
