"""One way to reach a chain: a connection built from (RPC URLs, expected chain id, timeout,
rate limit) that hands out every kind of client the code needs, all over the same URLs.

- ``pool``: the async :class:`~adapters.evm.rpc.RpcPool` (throttled per endpoint, timed
  out, failing over in order of health, JSON-RPC batches) for the batched readers;
- ``async_w3``: an ``AsyncWeb3`` whose provider sends through that pool, for code that
  wants contract objects (the market chain readers);
- ``w3``: a sync ``Web3`` over the same URL list with the same failover, throttle,
  timeout and redaction, for safe-eth-py, the Safe/Roles/governance commands and anvil control calls;
- ``ethereum_client()``: safe-eth-py's ``EthereumClient`` whose ``w3`` is that sync Web3.

The chain id is checked once, on connect (``connect`` / ``connect_sync``), against the
expected one. Transport failures (refused, reset, timeout, HTTP 4xx/5xx) move to the next
URL; when every URL failed the error is :class:`RpcUnavailable` (Transient). Error texts
never carry a URL's path, query or userinfo (where API keys live).

web3.py's HTTPProvider takes one URL and safe-eth-py's EthereumClient one URL; the
failover provider below is written by hand because neither library offers one for
HTTP (web3's retry configuration retries the same URL).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import requests
from web3 import AsyncWeb3, Web3
from web3.providers.async_base import AsyncJSONBaseProvider
from web3.providers.base import JSONBaseProvider
from web3.providers.rpc import HTTPProvider
from web3.types import RPCEndpoint, RPCResponse

from adapters.evm.rpc import RpcError, RpcPool, RpcUnavailable, WrongChain, scrub
from policies.errors import InvalidInput

if TYPE_CHECKING:
    from safe_eth.eth import EthereumClient

__all__ = [
    "ChainConnection", "FailoverHTTPProvider", "PoolProvider", "RpcError",
    "RpcUnavailable", "WrongChain", "scrub",
]


class BadRpcUrl(InvalidInput):
    """An RPC URL that cannot be used (not http(s), none given)."""


def _check_urls(urls: Sequence[str]) -> list[str]:
    out = [u.strip() for u in urls if u and u.strip()]
    if not out:
        raise BadRpcUrl("at least one RPC URL is required")
    for url in out:
        if not url.startswith(("http://", "https://")):
            raise BadRpcUrl(f"RPC URL must be http(s): {scrub(url, [url])}")
    return out


# ------------------------------------------------------------------------------ sync side
class SyncThrottle:
    """At most ``rate_limit`` requests per ``period`` seconds (a sliding window), blocking
    the calling thread until a slot frees: the sync twin of the pool's asyncio-throttle
    (which only works inside an event loop). Hand-written: a dozen lines, and the clock
    and sleep are injectable so that tests need no wall-clock timing."""

    def __init__(self, rate_limit: int, period: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate_limit, self.period = rate_limit, period
        self._clock, self._sleep = clock, sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            while True:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self.period:
                    self._sent.popleft()
                if len(self._sent) < self.rate_limit:
                    self._sent.append(now)
                    return
                self._sleep(self._sent[0] + self.period - now)


class FailoverHTTPProvider(JSONBaseProvider):
    """A sync JSON-RPC provider over several URLs: each request goes to the healthiest URL
    first and moves on after a transport failure; a JSON-RPC error answer is the chain's
    answer and is returned as is (web3 raises it). Thread-safe (the health order is kept
    under a lock; each URL has its own HTTPProvider and requests session)."""

    def __init__(self, urls: Sequence[str], timeout: float = 10.0, rate_limit: int = 50,
                 period: float = 1.0, expected_chain_id: int | None = None) -> None:
        super().__init__()
        self.urls = _check_urls(urls)
        # with an expected chain id, each URL is asked its chain id once, before its first
        # use: a failover never lands on a node of another chain
        self.expected_chain_id = expected_chain_id
        self.timeout = timeout
        self.global_ccip_read_enabled = False  # a contract must not make us fetch URLs
        self._providers = [
            HTTPProvider(u, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
            for u in self.urls
        ]
        self._failures = [0] * len(self.urls)
        self._throttles = [SyncThrottle(rate_limit, period) for _ in self.urls]
        self._chain_ids: dict[int, dict[str, Any]] = {}  # URL index -> its eth_chainId answer
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()

    def __str__(self) -> str:
        return "FailoverHTTPProvider(" + ", ".join(scrub(u, [u]) for u in self.urls) + ")"

    def _order(self) -> list[int]:
        with self._lock:
            return sorted(range(len(self.urls)), key=lambda i: self._failures[i])

    def _send(self, fn: str, arg: Any, *more: Any) -> Any:
        errors: list[str] = []
        wrong: list[str] = []
        chain_id_call = fn == "make_request" and arg == "eth_chainId"
        for i in self._order():
            url = self.urls[i]
            try:
                if self.expected_chain_id is not None and i not in self._chain_ids and not chain_id_call:
                    self._ask_chain_id(i)
                served = self._served(i)
                if served is not None and self.expected_chain_id is not None and served != self.expected_chain_id:
                    wrong.append(f"the RPC serves chain {served}, expected {self.expected_chain_id}")
                    continue
                if chain_id_call and i in self._chain_ids:
                    # a URL's chain id does not change: web3 asks it before every
                    # transaction and estimate; each URL is asked once
                    return dict(self._chain_ids[i])
                self._throttles[i].acquire()
                self.requests[url] += 1
                result = getattr(self._providers[i], fn)(arg, *more)
            except (requests.RequestException, OSError, TimeoutError, json.JSONDecodeError) as exc:
                with self._lock:
                    self._failures[i] += 1
                errors.append(scrub(url, [url]) + ": " + scrub(_describe(exc), [url]))
                continue
            with self._lock:
                self._failures[i] = 0
            if chain_id_call and isinstance(result, dict) and "result" in result:
                self._chain_ids[i] = dict(result)
                served = self._served(i)
                if self.expected_chain_id is not None and served != self.expected_chain_id:
                    wrong.append(f"the RPC serves chain {served}, expected {self.expected_chain_id}")
                    continue
            return result
        if wrong and not errors:
            raise WrongChain("wrong chain: " + "; ".join(dict.fromkeys(wrong)))
        if wrong:
            errors += [f"another URL: {w}" for w in dict.fromkeys(wrong)]
        raise RpcUnavailable("cannot reach any RPC endpoint (" + "; ".join(errors) + ")")

    def _ask_chain_id(self, i: int) -> None:
        """Ask URL ``i`` its chain id (transport errors propagate to the failover loop)."""
        self._throttles[i].acquire()
        self.requests[self.urls[i]] += 1
        answer = self._providers[i].make_request(RPCEndpoint("eth_chainId"), [])
        if isinstance(answer, dict) and "result" in answer:
            self._chain_ids[i] = dict(answer)

    def _served(self, i: int) -> int | None:
        answer = self._chain_ids.get(i)
        return None if answer is None else int(str(answer["result"]), 16)

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        return cast(RPCResponse, self._send("make_request", method, params))

    def make_batch_request(self, batch_requests: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse] | RPCResponse:
        return cast("list[RPCResponse] | RPCResponse", self._send("make_batch_request", batch_requests))

    def is_connected(self, show_traceback: bool = False) -> bool:
        try:
            return "result" in self.make_request(RPCEndpoint("web3_clientVersion"), [])
        except RpcUnavailable:
            if show_traceback:
                raise
            return False


def _describe(exc: BaseException) -> str:
    """A short, key-free description of a transport failure."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTPError {exc.response.status_code}"
    if isinstance(exc, requests.Timeout | TimeoutError):
        return f"{type(exc).__name__} (no answer within the timeout)"
    if isinstance(exc, json.JSONDecodeError):  # a captive portal, a proxy's error page
        return "answered with a body that is not JSON (not a JSON-RPC endpoint?)"
    return type(exc).__name__


# ----------------------------------------------------------------------------- async side
class PoolProvider(AsyncJSONBaseProvider):
    """An AsyncWeb3 provider that sends every request through an RpcPool (throttle,
    timeout, failover, redaction, request counting), so contract objects and the batched
    readers share one set of connections."""

    def __init__(self, pool: RpcPool) -> None:
        super().__init__()
        self.pool = pool
        self.global_ccip_read_enabled = False

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        return cast(RPCResponse, await self.pool.raw("make_request", (method, params)))

    async def make_batch_request(self, requests: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse] | RPCResponse:
        return cast("list[RPCResponse] | RPCResponse", await self.pool.raw("make_batch_request", (requests,)))

    async def is_connected(self, show_traceback: bool = False) -> bool:
        try:
            return "result" in await self.make_request(RPCEndpoint("web3_clientVersion"), [])
        except RpcUnavailable:
            if show_traceback:
                raise
            return False

    async def disconnect(self) -> None:
        await self.pool.close()


# ----------------------------------------------------------------------------- connection
class ChainConnection:
    """Every client of one chain, over one list of URLs (see the module docstring).

    Cheap to build (no I/O); ``connect``/``connect_sync`` check the chain id once.
    Close with ``aclose()`` (async users) or ``close()``."""

    def __init__(
        self,
        rpc_urls: Sequence[str],
        *,
        chain_id: int | None = None,
        timeout: float = 10.0,
        rate_limit: int = 50,
    ) -> None:
        self.urls = _check_urls(rpc_urls)
        self.expected_chain_id = chain_id
        self.timeout = timeout
        self.rate_limit = rate_limit
        self._pool: RpcPool | None = None
        self._async_w3: AsyncWeb3[Any] | None = None
        self._w3: Web3 | None = None
        self._chain_id: int | None = None
        self._client: EthereumClient | None = None

    def __repr__(self) -> str:
        return f"ChainConnection({', '.join(scrub(u, [u]) for u in self.urls)}, chain_id={self.expected_chain_id})"

    # clients, built on first use
    @property
    def pool(self) -> RpcPool:
        if self._pool is None:
            self._pool = RpcPool(self.urls, timeout=self.timeout, rate_limit=self.rate_limit,
                                 expected_chain_id=self.expected_chain_id)
        return self._pool

    @property
    def async_w3(self) -> AsyncWeb3[Any]:
        if self._async_w3 is None:
            self._async_w3 = AsyncWeb3(PoolProvider(self.pool))
        return self._async_w3

    @property
    def w3(self) -> Web3:
        if self._w3 is None:
            self._w3 = Web3(FailoverHTTPProvider(self.urls, timeout=self.timeout, rate_limit=self.rate_limit,
                                                 expected_chain_id=self.expected_chain_id))
        return self._w3

    def endpoint_w3s(self) -> list[Web3]:
        """One sync Web3 per URL (same timeout, throttle, chain-id check and scrubbing as
        ``w3``, but no failover): for cross-checking what each endpoint says, where the
        failover client would answer from whichever endpoint works."""
        return [Web3(FailoverHTTPProvider([u], timeout=self.timeout, rate_limit=self.rate_limit,
                                          expected_chain_id=self.expected_chain_id))
                for u in self.urls]

    @property
    def provider(self) -> FailoverHTTPProvider:
        return cast(FailoverHTTPProvider, self.w3.provider)

    def ethereum_client(self) -> EthereumClient:
        """safe-eth-py's client, talking through ``w3`` (all URLs, failover, timeout).

        EthereumClient takes one URL and builds its own Web3 from it; the parts of it we
        use (Safe reads, SafeTx, MultiSend) go through ``client.w3``, which is replaced
        here by ours before its managers copy it. Its raw ``http_session`` paths (batch
        calls, tracing) would still use the first URL: lphedge does not call them."""
        if self._client is None:
            from safe_eth.eth import EthereumClient

            class _Client(EthereumClient):
                def __str__(inner) -> str:  # the client's URL may carry a key
                    return f"EthereumClient over {self!r}"

            client = _Client(self.urls[0], provider_timeout=int(max(1, self.timeout)))  # type: ignore[arg-type]
            client.w3 = client.slow_w3 = self.w3
            client.w3_provider = client.w3_slow_provider = self.w3.provider  # type: ignore[assignment]
            from safe_eth.eth.ethereum_client import (
                BatchCallManager,
                Erc20Manager,
                Erc721Manager,
                TracingManager,
            )

            client.erc20 = Erc20Manager(client)
            client.erc721 = Erc721Manager(client)
            client.tracing = TracingManager(client)
            client.batch_call_manager = BatchCallManager(client)
            self._client = client
        return self._client

    # chain id, once
    def check_chain_id(self, chain_id: int) -> int:
        """Record the chain id the RPC reported; WrongChain if it is not the expected one."""
        if self.expected_chain_id is not None and chain_id != self.expected_chain_id:
            raise WrongChain(f"wrong chain: the RPC serves chain {chain_id}, expected {self.expected_chain_id}")
        self._chain_id = chain_id
        return chain_id

    @property
    def chain_id(self) -> int:
        """The checked chain id (connects through the sync side on first use)."""
        return self._chain_id if self._chain_id is not None else self.connect_sync()

    async def connect(self) -> int:
        """Ask the chain id once (through the pool) and check it; returns it."""
        if self._chain_id is None:
            self.check_chain_id(await self.pool.chain_id())
        assert self._chain_id is not None
        return self._chain_id

    def connect_sync(self) -> int:
        if self._chain_id is None:
            self.check_chain_id(int(self.rpc("eth_chainId"), 16))
        assert self._chain_id is not None
        return self._chain_id

    # raw sync calls (anvil control, tests)
    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """One JSON-RPC call on the sync side; RpcError for an error answer."""
        response = self.provider.make_request(RPCEndpoint(method), params or [])
        if "error" in response:
            raise RpcError(method, response["error"])
        return response.get("result")

    def rpc_batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one HTTP request; results in call order; RpcError on any error."""
        if not calls:
            return []
        responses = self.provider.make_batch_request([(RPCEndpoint(m), p) for m, p in calls])
        if isinstance(responses, dict):
            raise RpcError("batch", responses.get("error", responses))
        out = []
        for (method, _), resp in zip(calls, responses, strict=True):
            if "error" in resp:
                raise RpcError(method, resp["error"])
            out.append(resp.get("result"))
        return out

    @property
    def http_requests(self) -> int:
        """HTTP requests sent so far over both sides."""
        sync = sum(self.provider.requests.values()) if self._w3 is not None else 0
        return sync + (self._pool.total_requests if self._pool is not None else 0)

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.http_session.close()
            self._client = None
