"""Multicall3 aggregate3 with allowFailure, chunked, and chunks sent as one JSON-RPC batch.

One HTTP request carries every chunk (each chunk one eth_call), so a read of N calls
costs one round trip while each eth_call stays under the node's gas cap.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import decode, encode
from eth_utils import function_signature_to_4byte_selector

from adapters.evm.rpc import JsonRpc

AGGREGATE3 = function_signature_to_4byte_selector("aggregate3((address,bool,bytes)[])")
# The canonical Multicall3 address on most EVM chains.
MULTICALL3_ADDRESS = "0xcA11bde05977b3631167028862bE2a173976CA11"


@dataclass(frozen=True, slots=True)
class Call:
    target: str
    data: bytes
    allow_failure: bool = True


@dataclass(frozen=True, slots=True)
class Result:
    success: bool
    data: bytes


def encode_aggregate3(calls: list[Call]) -> str:
    body = encode(
        ["(address,bool,bytes)[]"], [[(c.target, c.allow_failure, c.data) for c in calls]]
    )
    return "0x" + (AGGREGATE3 + body).hex()


def decode_aggregate3(raw: str) -> list[Result]:
    (items,) = decode(["(bool,bytes)[]"], bytes.fromhex(raw.removeprefix("0x")))
    return [Result(bool(ok), bytes(data)) for ok, data in items]


async def aggregate3(
    rpc: JsonRpc,
    multicall: str,
    calls: list[Call],
    *,
    block: str | int = "latest",
    chunk_size: int = 500,
) -> list[Result]:
    """Run `calls` through Multicall3 at `block`; results in order."""
    if not calls:
        return []
    tag = hex(block) if isinstance(block, int) else block
    chunks = [calls[i : i + chunk_size] for i in range(0, len(calls), chunk_size)]
    requests = [
        ("eth_call", [{"to": multicall, "data": encode_aggregate3(chunk)}, tag]) for chunk in chunks
    ]
    raw = await rpc.batch(requests)
    out: list[Result] = []
    for r in raw:
        out.extend(decode_aggregate3(r))
    return out
