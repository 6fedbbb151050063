"""One chain access path (adapters/evm/chain.py) against a real anvil: failover from a dead
first URL on the sync and the async side, a server that accepts and never answers gives a
Transient error, the URL's key never shows in an error text, a wrong chain is refused."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from adapters.anvil import Anvil, free_port
from adapters.evm.chain import ChainConnection, WrongChain
from adapters.evm.rpc import RpcError, RpcUnavailable
from policies.errors import InvalidInput, Refused, Transient

pytestmark = pytest.mark.chain

KEY = "k3y5ecretAPIKEY0123"
PASSWORD = "hunter2pw"


def dead_url() -> str:
    """Nothing listens there; the URL carries a key in its path, query and userinfo."""
    return f"http://user:{PASSWORD}@127.0.0.1:{free_port()}/v2/{KEY}?apikey={KEY}"


def assert_no_secret(text: str) -> None:
    assert KEY not in text and PASSWORD not in text, text


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    node = Anvil(chain_id=31337).start()
    try:
        yield node
    finally:
        node.stop()


class SilentServer:
    """Accepts TCP connections and reads, but never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.conns: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v2/{KEY}"

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)  # kept open, never written to

    def close(self) -> None:
        self._stop = True
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


# ------------------------------------------------------------------------------ failover
def test_sync_failover_from_a_dead_first_url(anvil: Anvil) -> None:
    dead = dead_url()
    conn = ChainConnection([dead, anvil.url], chain_id=31337, timeout=5)
    try:
        assert conn.connect_sync() == 31337
        assert conn.w3.eth.block_number == int(anvil.rpc("eth_blockNumber"), 16)  # type: ignore[arg-type]
        assert conn.provider.requests[dead] == 1
        # the live URL is now tried first: the dead one is not asked again
        conn.w3.eth.get_balance(conn.w3.to_checksum_address("0x" + "11" * 20))
        assert conn.provider.requests[dead] == 1
        # safe-eth-py's client goes through the same failover Web3
        client = conn.ethereum_client()
        assert client.w3 is conn.w3 and client.get_chain_id() == 31337
        assert_no_secret(str(client))
        assert_no_secret(repr(conn))
        assert_no_secret(str(conn.provider))
    finally:
        conn.close()


async def test_async_failover_from_a_dead_first_url(anvil: Anvil) -> None:
    dead = dead_url()
    conn = ChainConnection([dead, anvil.url], chain_id=31337, timeout=5)
    try:
        assert await conn.connect() == 31337
        # contract-style reads through AsyncWeb3 go through the pool (counted per URL)
        block = await conn.async_w3.eth.get_block("latest")
        assert block["number"] == int(anvil.rpc("eth_blockNumber"), 16)  # type: ignore[arg-type]
        assert conn.pool.requests[dead] == 1
        assert conn.pool.requests[anvil.url] == 2
        # batched reads through the same pool
        answers = await conn.pool.batch([("eth_chainId", []), ("eth_blockNumber", [])])
        assert int(answers[0], 16) == 31337
        assert conn.pool.requests[dead] == 1
    finally:
        await conn.aclose()


def test_raw_rpc_calls_and_error_answers(anvil: Anvil) -> None:
    conn = ChainConnection([dead_url(), anvil.url], timeout=5)
    snap = conn.rpc("evm_snapshot")
    assert conn.rpc("evm_revert", [snap]) is True
    assert [int(x, 16) for x in conn.rpc_batch([("eth_chainId", []), ("net_version", [])])[:1]] == [31337]
    with pytest.raises(RpcError, match="no_such_method") as err:
        conn.rpc("no_such_method", [])
    assert isinstance(err.value, Transient)


# ---------------------------------------------------------------------------- timeouts
def test_sync_silent_server_gives_transient_error(silent: SilentServer) -> None:
    conn = ChainConnection([silent.url], timeout=0.3)
    with pytest.raises(RpcUnavailable, match="no answer within the timeout") as err:
        conn.connect_sync()
    assert isinstance(err.value, Transient)
    assert_no_secret(str(err.value))


async def test_async_silent_server_gives_transient_error(silent: SilentServer) -> None:
    conn = ChainConnection([silent.url], timeout=0.3)
    try:
        with pytest.raises(RpcUnavailable, match="TimeoutError") as err:
            await conn.connect()
        assert isinstance(err.value, Transient)
        assert_no_secret(str(err.value))
        with pytest.raises(RpcUnavailable):
            await conn.async_w3.eth.block_number
    finally:
        await conn.aclose()


async def test_silent_first_url_fails_over_to_anvil(silent: SilentServer, anvil: Anvil) -> None:
    conn = ChainConnection([silent.url, anvil.url], chain_id=31337, timeout=0.3)
    try:
        assert conn.connect_sync() == 31337
        assert await conn.async_w3.eth.chain_id == 31337
    finally:
        await conn.aclose()


# ---------------------------------------------------------------------------- redaction
async def test_no_key_in_any_error_text() -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=429, text=f"rate limited for {request.path}")

    app = web.Application()
    app.router.add_post("/{tail:.*}", refuse)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    limited = f"http://user:{PASSWORD}@127.0.0.1:{port}/v2/{KEY}"
    conn = ChainConnection([dead_url(), limited], timeout=2)
    try:
        texts = []
        for attempt in (conn.connect, conn.async_w3.eth.get_block_number):
            with pytest.raises(RpcUnavailable) as err:
                await attempt()
            texts.append(str(err.value))
        with pytest.raises(RpcUnavailable) as serr:
            await __import__("asyncio").to_thread(conn.connect_sync)
        texts.append(str(serr.value))
        assert any("HTTPError 429" in t for t in texts), texts
        for t in texts:
            assert_no_secret(t)
            assert "127.0.0.1" in t  # the host stays, to tell endpoints apart
    finally:
        await conn.aclose()
        await runner.cleanup()


def test_bad_urls_are_invalid_input_without_the_key() -> None:
    with pytest.raises(InvalidInput, match="at least one RPC URL"):
        ChainConnection([])
    with pytest.raises(InvalidInput, match="must be http") as err:
        ChainConnection([f"ws://user:{PASSWORD}@node.example/v2/{KEY}"])
    assert_no_secret(str(err.value))


# ------------------------------------------------------------------------------ chain id
async def test_wrong_chain_refused_on_both_sides(anvil: Anvil) -> None:
    conn = ChainConnection([anvil.url], chain_id=1, timeout=5)
    try:
        with pytest.raises(WrongChain, match="serves chain 31337, expected 1") as err:
            conn.connect_sync()
        assert isinstance(err.value, Refused)
        with pytest.raises(WrongChain, match="serves chain 31337, expected 1"):
            await conn.connect()
        with pytest.raises(WrongChain):
            conn.chain_id  # noqa: B018
    finally:
        await conn.aclose()


def test_chain_id_asked_once(anvil: Anvil) -> None:
    conn = ChainConnection([anvil.url], chain_id=31337, timeout=5)
    assert conn.connect_sync() == 31337
    before = conn.http_requests
    assert conn.chain_id == 31337 and conn.connect_sync() == 31337
    assert conn.http_requests == before


def test_fork_relay_fails_over_to_the_next_url(anvil: Anvil) -> None:
    """A fork started from several URLs of one chain forks through the first that answers."""
    anvil.rpc("evm_mine")
    head = int(anvil.rpc("eth_blockNumber"), 16)  # type: ignore[arg-type]
    fork = Anvil(fork_url=dead_url(), fork_fallbacks=(anvil.url,), chain_id=31337).start()
    try:
        assert int(fork.rpc("eth_blockNumber"), 16) >= head  # type: ignore[arg-type]
        assert fork.connection.chain_id == 31337
    finally:
        fork.stop()


async def test_market_chain_reader_over_the_connection(devchain: Any) -> None:
    """A contract reader (adapters/market/stables.py) on ``async_w3``: a dead first URL is
    skipped, and the reading is exact against the pool's own slot0 at the same block."""
    from fractions import Fraction

    from adapters.market.stables import UniswapStablePool

    pool = devchain.pools["WETH/USDC/500"]
    dead = dead_url()
    conn = ChainConnection([dead, devchain.url], chain_id=devchain.chain_id, timeout=5)
    try:
        reading = await UniswapStablePool(conn.async_w3, pool, "weth-usdc").read()
        assert reading.reason == "ok", reading.reason
        block = reading.extra["block"]
        sqrt_p = devchain.contract("UniswapV3Pool", pool).functions.slot0().call(block_identifier=block)[0]
        t0, t1, _ = devchain.pool_tokens(pool)
        exact = Fraction(sqrt_p * sqrt_p, 2**192) * Fraction(10**t0.decimals, 10**t1.decimals)
        assert reading.extra["price_exact"] == f"{exact.numerator}/{exact.denominator}"
        assert conn.pool.requests[dead] == 1  # tried once, then the live URL goes first
    finally:
        await conn.aclose()


def test_sync_throttle_waits_for_a_free_slot() -> None:
    """The sync side's limiter, on an injected clock: the third request in one period waits
    exactly until the first leaves the window."""
    from adapters.evm.chain import SyncThrottle

    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    throttle = SyncThrottle(2, period=1.0, clock=lambda: now[0], sleep=sleep)
    throttle.acquire()
    now[0] += 0.25
    throttle.acquire()
    assert slept == []
    throttle.acquire()  # window [100, 101) is full: wait until 101
    assert slept == [0.75] and now[0] == 101.0
    now[0] += 5
    throttle.acquire()
    assert slept == [0.75]  # the window emptied meanwhile


def test_sync_failover_never_lands_on_another_chain(anvil: Anvil) -> None:
    """Each URL is asked its chain id before its first use: a node of another chain in the
    list is skipped while the right one answers, and refused once it is all that is left."""
    other = Anvil(chain_id=999).start()
    primary = Anvil(chain_id=31337).start()
    try:
        conn = ChainConnection([other.url, primary.url, anvil.url], chain_id=31337, timeout=5)
        assert conn.connect_sync() == 31337
        balance = conn.w3.eth.get_balance(conn.w3.to_checksum_address("0x" + "22" * 20))
        assert balance == 0
        assert conn.provider.requests[other.url] == 1  # asked its chain id once, never used
        primary.stop()  # failover: the next URL of the right chain takes over
        assert conn.w3.eth.block_number == int(anvil.rpc("eth_blockNumber"), 16)  # type: ignore[arg-type]
        assert conn.provider.requests[other.url] == 1
        lonely = ChainConnection([other.url], chain_id=31337, timeout=5)
        with pytest.raises(WrongChain, match="serves chain 999, expected 31337"):
            lonely.w3.eth.get_balance(conn.w3.to_checksum_address("0x" + "22" * 20))
    finally:
        primary.stop()
        other.stop()


async def test_async_failover_never_lands_on_another_chain(anvil: Anvil) -> None:
    """The pool's first request to each URL carries an eth_chainId in the same JSON-RPC
    batch (no extra HTTP request): another chain's node is skipped, and refused alone."""
    other = Anvil(chain_id=999).start()
    primary = Anvil(chain_id=31337).start()
    conn = ChainConnection([other.url, primary.url, anvil.url], chain_id=31337, timeout=5)
    lonely = ChainConnection([other.url], chain_id=31337, timeout=5)
    try:
        assert await conn.async_w3.eth.get_balance(conn.w3.to_checksum_address("0x" + "22" * 20)) == 0
        assert conn.pool.requests[other.url] == 1 and conn.pool.requests[primary.url] == 1
        assert await conn.connect() == 31337
        primary.stop()
        assert await conn.async_w3.eth.block_number == int(anvil.rpc("eth_blockNumber"), 16)  # type: ignore[arg-type]
        assert conn.pool.requests[other.url] == 1  # never asked again
        with pytest.raises(WrongChain, match="serves chain 999, expected 31337"):
            await lonely.pool.batch([("eth_blockNumber", []), ("eth_gasPrice", [])])
    finally:
        await conn.aclose()
        await lonely.aclose()
        primary.stop()
        other.stop()
