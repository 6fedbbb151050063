"""Multicall3 aggregate3 with allowFailure, chunked, and chunks sent as one JSON-RPC batch.

One HTTP request carries every chunk (each chunk one eth_call), so a read of N calls
costs one round trip while each eth_call stays under the node's gas cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import function_signature_to_4byte_selector

from adapters.evm.rpc import JsonRpc

AGGREGATE3 = function_signature_to_4byte_selector("aggregate3((address,bool,bytes)[])")
GET_BLOCK_NUMBER = function_signature_to_4byte_selector("getBlockNumber()")
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
    """ABI-encode aggregate3(calls) by hand: the layout is fixed and this runs every tick
    over thousands of calls, where eth_abi's generic encoder dominated the read time.
    Checked against eth_abi in tests/chain/test_multicall_codec.py."""
    n = len(calls)
    heads, tails, offset = [], [], 32 * n
    for c in calls:
        data = c.data
        padded = data + b"\0" * (-len(data) % 32)
        element = b"".join((
            int(c.target, 16).to_bytes(32, "big"),
            (1 if c.allow_failure else 0).to_bytes(32, "big"),
            (96).to_bytes(32, "big"),
            len(data).to_bytes(32, "big"),
            padded,
        ))
        heads.append(offset.to_bytes(32, "big"))
        tails.append(element)
        offset += len(element)
    body = b"".join(((32).to_bytes(32, "big"), n.to_bytes(32, "big"), *heads, *tails))
    return "0x" + (AGGREGATE3 + body).hex()


def decode_aggregate3(raw: str) -> list[Result]:
    """Decode the (bool success, bytes returnData)[] that aggregate3 returns, with bounds checks."""
    buf = bytes.fromhex(raw.removeprefix("0x"))
    if len(buf) % 32:
        raise ValueError("aggregate3 answer is not word-aligned")

    def word(at: int) -> int:
        if at + 32 > len(buf):
            raise ValueError("aggregate3 answer is truncated")
        return int.from_bytes(buf[at : at + 32], "big")

    base = word(0)
    n = word(base)
    start = base + 32
    out = []
    for i in range(n):
        el = start + word(start + 32 * i)
        ok = word(el)
        data_at = el + word(el + 32)
        length = word(data_at)
        if data_at + 32 + length > len(buf) or ok > 1:
            raise ValueError("aggregate3 answer is malformed")
        out.append(Result(ok == 1, buf[data_at + 32 : data_at + 32 + length]))
    return out


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
    return _decode_all(await rpc.batch(_requests(multicall, calls, tag, chunk_size)))


def _requests(multicall: str, calls: list[Call], tag: str, chunk_size: int) -> list[tuple[str, list[Any]]]:
    chunks = [calls[i : i + chunk_size] for i in range(0, len(calls), chunk_size)]
    return [("eth_call", [{"to": multicall, "data": encode_aggregate3(chunk)}, tag]) for chunk in chunks]


def _decode_all(raw: list[Any]) -> list[Result]:
    out: list[Result] = []
    for r in raw:
        out.extend(decode_aggregate3(r))
    return out


async def aggregate3_consistent(
    rpc: JsonRpc, multicall: str, calls: list[Call], *, chunk_size: int = 500
) -> tuple[int, list[Result]]:
    """Like aggregate3 at "latest", but every chunk is read at the same block.

    Each chunk carries Multicall3.getBlockNumber() first; in the rare case a block
    landed between chunks, everything is read again pinned to the newest block seen
    (one more request), so a position is never valued against another block's pool.
    """
    block, _, out = await _consistent(rpc, multicall, calls, chunk_size=chunk_size, with_hash=False)
    return block, out


async def aggregate3_at_block(
    rpc: JsonRpc, multicall: str, calls: list[Call], *, chunk_size: int = 500
) -> tuple[int, str, list[Result]]:
    """aggregate3_consistent plus the hash of the block read, from the same HTTP request.

    A contract cannot see its own block's hash, so the block header (eth_getBlockByNumber)
    rides in the batch; only if it names another block than the stamps is it fetched
    again by number (one more request).
    """
    block, block_hash, out = await _consistent(rpc, multicall, calls, chunk_size=chunk_size, with_hash=True)
    assert block_hash is not None
    return block, block_hash, out


async def _consistent(
    rpc: JsonRpc, multicall: str, calls: list[Call], *, chunk_size: int, with_hash: bool
) -> tuple[int, str | None, list[Result]]:
    if not calls:
        return 0, None, []
    stamp = Call(multicall, GET_BLOCK_NUMBER, allow_failure=False)
    per = max(1, chunk_size - 1)
    chunks = [calls[i : i + per] for i in range(0, len(calls), per)]
    stamped = [c for chunk in chunks for c in (stamp, *chunk)]
    header_call = [("eth_getBlockByNumber", ["latest", False])] if with_hash else []
    answers = await rpc.batch(_requests(multicall, stamped, "latest", per + 1) + header_call)
    raw = _decode_all(answers[: len(answers) - len(header_call)])
    blocks, out, k = set(), [], 0
    for chunk in chunks:
        blocks.add(int.from_bytes(raw[k].data[:32], "big"))
        out.extend(raw[k + 1 : k + 1 + len(chunk)])
        k += 1 + len(chunk)
    block = max(blocks)
    header = answers[-1] if with_hash else None
    if len(blocks) > 1:
        header_call = [("eth_getBlockByNumber", [hex(block), False])] if with_hash else []
        answers = await rpc.batch(_requests(multicall, calls, hex(block), chunk_size) + header_call)
        out = _decode_all(answers[: len(answers) - len(header_call)])
        header = answers[-1] if with_hash else None
    if not with_hash:
        return block, None, out
    if not isinstance(header, dict) or int(header.get("number") or "0x0", 16) != block:
        header = await rpc.request("eth_getBlockByNumber", [hex(block), False])
    if not isinstance(header, dict) or not isinstance(header.get("hash"), str):
        raise ValueError(f"the node returned no header for block {block}")
    return block, header["hash"], out
