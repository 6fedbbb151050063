"""PositionsObserver on a private dev chain whose Safe holds exactly 1,000 positions.

HTTP requests are counted by the loopback proxy in front of anvil, not by the client;
expected token ids, liquidities and block hashes come from direct anvil/web3 calls,
not from the reader under test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.anvil import free_port
from bot.devchain import DevChain
from bot.observe import ObserveError, PositionsObserver
from tests.support.rpc_proxy import CountingProxy

SAFE_POSITIONS = 1000


def _owned_ids(chain: DevChain, owner: str) -> set[int]:
    """The owner's token ids via plain JSON-RPC batches of eth_call (no Multicall3, no reader)."""
    npm = chain.contract("NonfungiblePositionManager", chain.addresses["position_manager"])
    count = npm.functions.balanceOf(owner).call()
    ids: set[int] = set()
    for start in range(0, count, 200):
        calls: list[tuple[str, list[object]]] = [
            ("eth_call", [{"to": npm.address, "data": npm.encode_abi("tokenOfOwnerByIndex", [owner, i])}, "latest"])
            for i in range(start, min(count, start + 200))
        ]
        ids |= {int(answer, 16) for answer in chain.anvil.rpc_batch(calls)}
    return ids


@pytest.fixture(scope="module")
def chain() -> Iterator[DevChain]:
    """A chain of its own (the session chain's Safe is left as other tests expect it)."""
    c = DevChain.start()
    try:
        safe = c.addresses["safe"]
        missing = SAFE_POSITIONS - len(_owned_ids(c, safe))
        pools = list(c.pools.values())[:3]
        for k, pool in enumerate(pools):
            _, tick = c.slot0(pool)
            t0, t1, fee = c.pool_tokens(pool)
            spacing = {500: 10, 3000: 60, 10000: 200}[fee]
            base = tick - tick % spacing
            count = missing // 3 + (1 if k < missing % 3 else 0)
            ranges = [
                (base - spacing * (1 + i % 37), base + spacing * (1 + i % 41), 10**t0.decimals, 10**t1.decimals)
                for i in range(count)
            ]
            assert c.mint_many(pool, ranges, recipient=safe) == count
        assert len(_owned_ids(c, safe)) == SAFE_POSITIONS
        yield c
    finally:
        c.close()


def _header(chain: DevChain, number: int) -> dict[str, Any]:
    header = chain.anvil.rpc("eth_getBlockByNumber", [hex(number), False])
    assert isinstance(header, dict)
    return header


def _observer(chain: DevChain, url: str, **kwargs: Any) -> PositionsObserver:
    a = chain.addresses
    return PositionsObserver([url], a["safe"], a["position_manager"], a["multicall3"], **kwargs)


async def test_second_read_of_1000_positions_is_one_request(chain: DevChain) -> None:
    proxy = await CountingProxy(chain.url).start()
    safe = chain.addresses["safe"]
    npm = chain.contract("NonfungiblePositionManager", chain.addresses["position_manager"])
    try:
        async with _observer(chain, proxy.url, expected_chain_id=31337) as observer:
            first = await observer.read()
            cold = proxy.http_requests
            proxy.reset()
            second = await observer.read()
            warm = proxy.http_requests
            warm_calls = dict(proxy.calls)

            assert len(first.positions) == len(second.positions) == SAFE_POSITIONS
            assert second.token_ids == _owned_ids(chain, safe)
            assert cold == 6  # preflight (chain id + code), then the reader's 5 cold round trips
            assert warm == 1  # the whole second read, block header included, in one HTTP request
            assert warm_calls.get("eth_getBlockByNumber") == 1 and set(warm_calls) == {"eth_call", "eth_getBlockByNumber"}

            # the stamp is the chain's own block: number and hash agree with eth_getBlockByNumber
            for snap in (first, second):
                assert snap.block_hash == _header(chain, snap.block_number)["hash"]
                assert snap.chain_id == 31337 and snap.owner == safe
            # values are those at the stamped block, checked against direct calls
            for r in second.positions[:: SAFE_POSITIONS // 10]:
                onchain = npm.functions.positions(r.position.token_id).call(block_identifier=second.block_number)
                assert r.position.liquidity == onchain[7]
            assert {p.address for p in second.pools} == {r.position.pool.address for r in second.positions}
            assert len(second.pools) == 3
            with pytest.raises(dataclasses.FrozenInstanceError):
                second.block_number = 0  # type: ignore[misc]

            # a transfer out of the Safe between reads is noticed on the next read
            gone = min(second.token_ids)
            other = chain.w3.to_checksum_address("0x" + "5a" * 20)
            chain.anvil.rpc("anvil_impersonateAccount", [safe])
            chain.anvil.rpc("anvil_setBalance", [safe, hex(10**18)])
            try:
                chain.transact(npm.functions.transferFrom(safe, other, gone), sender=safe)
            finally:
                chain.anvil.rpc("anvil_stopImpersonatingAccount", [safe])
            proxy.reset()
            third = await observer.read()
            assert third.token_ids == second.token_ids - {gone}
            assert proxy.http_requests == 1 + 2 + 1  # stale read, id list (2), fresh read
            assert third.block_number > second.block_number
            assert third.block_hash == _header(chain, third.block_number)["hash"]
            assert npm.functions.ownerOf(gone).call() == other
    finally:
        await proxy.stop()


async def test_owner_without_positions_is_stamped_too(chain: DevChain) -> None:
    a = chain.addresses
    async with PositionsObserver([chain.url], "0x" + "77" * 20, a["position_manager"], a["multicall3"]) as observer:
        snap = await observer.read()
    assert snap.positions == () and snap.pools == ()
    assert snap.block_hash == _header(chain, snap.block_number)["hash"]


@pytest.mark.parametrize(
    ("kwargs", "field", "problem"),
    [
        ({"owner": "0x1234"}, "owner", "'0x1234' is not an address (0x and 40 hex digits)"),
        ({"position_manager": "0xZZ"}, "position_manager", "'0xZZ' is not an address (0x and 40 hex digits)"),
        ({"multicall": "nope"}, "multicall", "'nope' is not an address (0x and 40 hex digits)"),
        ({"rpc_urls": []}, "rpc_urls", "at least one RPC URL is required"),
        ({"rpc_urls": ["ws://127.0.0.1:1"]}, "rpc_urls", "RPC URL must be http(s)"),
    ],
)
def test_bad_input_names_the_field_not_a_flag(kwargs: dict[str, Any], field: str, problem: str) -> None:
    args: dict[str, Any] = {"rpc_urls": ["http://127.0.0.1:1"], "owner": "0x" + "11" * 20,
                            "position_manager": "0x" + "22" * 20, "multicall": "0x" + "33" * 20}
    args.update(kwargs)
    with pytest.raises(ObserveError) as err:
        PositionsObserver(**args)
    assert err.value.field == field and problem in err.value.problem
    assert "--" not in str(err.value)


async def test_wrong_chain_and_unreachable_rpc(chain: DevChain) -> None:
    async with _observer(chain, chain.url, expected_chain_id=1) as observer:
        with pytest.raises(ObserveError) as err:
            await observer.read()
    assert err.value.field == "chain_id" and not err.value.transient
    assert err.value.problem == "wrong chain: the RPC serves chain 31337, expected 1"
    async with _observer(chain, f"http://127.0.0.1:{free_port()}", timeout=2) as observer:
        with pytest.raises(ObserveError) as err:
            await observer.read()
    assert err.value.transient and err.value.field is None
    assert "cannot reach any RPC endpoint" in err.value.problem


async def test_no_contract_names_the_field(chain: DevChain) -> None:
    a = chain.addresses
    async with PositionsObserver([chain.url], a["safe"], "0x" + "11" * 20, a["multicall3"]) as observer:
        with pytest.raises(ObserveError) as err:
            await observer.read()
    assert err.value.field == "position_manager"
    assert "no contract at this address on chain 31337" in err.value.problem
