"""Read and value an owner's positions: the `positions` command and the daemon's observe step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import is_hex_address, to_checksum_address

from adapters.evm.rpc import RpcError, RpcPool, RpcUnavailable
from adapters.evm.uniswap_v3 import ReadError, UniswapV3Reader
from adapters.redact import redact_urls
from bot.errors import UserError
from policies.lp_math import PositionMetrics, position_metrics
from policies.types import Position


def parse_address(value: str, what: str) -> str:
    """A checksummed address, or a one-line error naming the option."""
    v = value.strip()
    if not is_hex_address(v):
        raise UserError(f"{what}: {value!r} is not a 20-byte hex address")
    return str(to_checksum_address(v))


@dataclass(frozen=True, slots=True)
class PositionRow:
    position: Position
    metrics: PositionMetrics

    def to_json(self) -> dict[str, Any]:
        p, m, pool = self.position, self.metrics, self.position.pool
        return {
            "token_id": p.token_id,
            "owner": p.owner,
            "position_manager": p.position_manager,
            "pool": pool.address,
            "token0": {"address": pool.token0.address, "symbol": pool.token0.symbol, "decimals": pool.token0.decimals},
            "token1": {"address": pool.token1.address, "symbol": pool.token1.symbol, "decimals": pool.token1.decimals},
            "fee": pool.fee,
            "tick": pool.tick,
            "sqrt_price_x96": pool.sqrt_price_x96,
            "tick_lower": p.tick_lower,
            "tick_upper": p.tick_upper,
            "liquidity": p.liquidity,
            "amount0": m.amount0,
            "amount1": m.amount1,
            "fees0": m.fees0,
            "fees1": m.fees1,
            "in_range": m.in_range,
            "price": m.price,
            "price_lower": m.price_lower,
            "price_upper": m.price_upper,
            "value": m.value,
            "fees_value": m.fees_value,
            "delta": m.delta,
            "gamma": m.gamma,
            "x_max": m.x_max,
            "x_max_raw": m.x_max_raw,
        }


async def preflight(rpc: RpcPool, expected_chain_id: int | None, contracts: dict[str, str]) -> int:
    """Chain id and code at every named contract, in one batched request; the chain id."""
    calls: list[tuple[str, list[object]]] = [("eth_chainId", [])]
    calls += [("eth_getCode", [address, "latest"]) for address in contracts.values()]
    try:
        answers = await rpc.batch(calls)
    except RpcUnavailable as exc:
        raise UserError(str(exc)) from None
    except RpcError as exc:
        raise UserError(f"RPC refused the first requests: {exc}") from None
    chain_id = int(answers[0], 16)
    if expected_chain_id is not None and chain_id != expected_chain_id:
        raise UserError(f"wrong chain: the RPC serves chain {chain_id}, expected {expected_chain_id}")
    for (what, address), code in zip(contracts.items(), answers[1:], strict=True):
        if code in ("0x", "0x0", None):
            raise UserError(f"{what} {address}: no contract at this address on chain {chain_id}")
    return chain_id


async def read_positions(
    rpc_urls: list[str],
    owner: str,
    position_manager: str,
    multicall: str,
    *,
    expected_chain_id: int | None = None,
    timeout: float = 10.0,
    chunk_size: int = 500,
) -> tuple[int, list[PositionRow]]:
    """(chain id, rows) for every position of `owner`; UserError for anything a user can fix."""
    owner = parse_address(owner, "--owner")
    position_manager = parse_address(position_manager, "--position-manager")
    multicall = parse_address(multicall, "--multicall")
    if not rpc_urls:
        raise UserError("--rpc-url: at least one RPC URL is required (or LPHEDGE_RPC_URLS)")
    try:
        rpc = RpcPool(rpc_urls, timeout=timeout)
    except ValueError as exc:
        raise UserError(f"--rpc-url: {exc}") from None
    try:
        chain_id = await preflight(
            rpc, expected_chain_id, {"--position-manager": position_manager, "Multicall3 (--multicall)": multicall}
        )
        reader = UniswapV3Reader(rpc, position_manager, multicall, chunk_size=chunk_size)
        positions = await reader.read(owner)
        return chain_id, [PositionRow(p, position_metrics(p)) for p in positions]
    except ReadError as exc:
        raise UserError(str(exc)) from None
    except RpcUnavailable as exc:
        raise UserError(str(exc)) from None
    except RpcError as exc:
        raise UserError(f"RPC error from {redact_urls(rpc_urls[0])}: {exc}") from None
    finally:
        await rpc.close()
