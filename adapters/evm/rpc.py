"""Async JSON-RPC access over several endpoints: throttled, timed out, failing over.

Each endpoint is an AsyncWeb3 HTTP provider with its own asyncio-throttle limiter.
Transport failures (refused, reset, timeout, HTTP 5xx/429) move to the next endpoint;
a JSON-RPC error answer (e.g. a revert) is the chain's answer and is raised as is.
``requests`` counts HTTP requests per endpoint, so callers and tests can see the
cost of a read.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from asyncio_throttle import Throttler
from web3 import AsyncWeb3
from web3.providers.rpc import AsyncHTTPProvider

from adapters.redact import redact_urls
from policies.errors import Refused, Transient


def _secret_parts(url: str) -> list[str]:
    """The parts of ``url`` that may hold a key: path, query, fragment, userinfo."""
    parts = urllib.parse.urlsplit(url)
    out = [parts.path, parts.query, parts.fragment, parts.username or "", parts.password or ""]
    return [p for p in out if p and p != "/"]


def scrub(text: str, urls: Sequence[str] = ()) -> str:
    """``text`` with every URL cut to its host (adapters.redact), and any path, query or
    credential of ``urls`` removed even where it appears without its scheme (requests
    writes "Max retries exceeded with url: /v2/<key>")."""
    text = redact_urls(text)
    for url in urls:
        for secret in sorted(_secret_parts(url), key=len, reverse=True):
            text = text.replace(secret, "/...")
    return text


class RpcError(Transient):
    """The node answered with a JSON-RPC error (not a transport problem); the readings of
    this tick are unknown and the next tick asks again."""

    def __init__(self, method: str, error: Any) -> None:
        self.method = method
        self.error = error
        message = error.get("message") if isinstance(error, dict) else str(error)
        super().__init__(redact_urls(f"{method}: {message}"))


class RpcUnavailable(Transient):
    """No endpoint could be reached."""


class WrongChain(Refused):
    """The RPC serves another chain than the one configured: nothing is read or sent."""


class JsonRpc(Protocol):
    """What readers need from a node connection."""

    async def request(self, method: str, params: list[Any]) -> Any: ...

    async def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]: ...


@dataclass
class _Endpoint:
    url: str
    w3: AsyncWeb3[Any]
    throttler: Throttler
    failures: int = 0
    chain_id: int | None = None  # what it served when first asked (with an expected chain id)


@dataclass
class RpcPool:
    """Several RPC URLs for one chain, tried in order of health."""

    urls: list[str]
    timeout: float = 10.0
    rate_limit: int = 50  # requests per period per endpoint
    period: float = 1.0
    # With an expected chain id, each endpoint's first request carries an eth_chainId in the
    # same JSON-RPC batch (no extra HTTP request): a failover never reads another chain.
    expected_chain_id: int | None = None
    requests: Counter[str] = field(default_factory=Counter)
    _endpoints: list[_Endpoint] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("at least one RPC URL is required")
        for url in self.urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"RPC URL must be http(s): {scrub(url, [url])}")
            provider = AsyncHTTPProvider(
                url,
                request_kwargs={"timeout": aiohttp.ClientTimeout(total=self.timeout)},
                exception_retry_configuration=None,  # failover is ours, not a blind retry
            )
            self._endpoints.append(
                _Endpoint(url, AsyncWeb3(provider), Throttler(rate_limit=self.rate_limit, period=self.period))
            )

    @property
    def w3(self) -> AsyncWeb3[Any]:
        """The healthiest endpoint's AsyncWeb3, for anything not on the hot path."""
        return self._ordered()[0].w3

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def _ordered(self) -> list[_Endpoint]:
        return sorted(self._endpoints, key=lambda e: e.failures)

    async def raw(self, fn: str, payload: Any) -> Any:
        """``provider.<fn>(*payload)`` on the healthiest endpoint that answers: the raw
        JSON-RPC response(s), errors included (adapters.evm.chain.PoolProvider uses it)."""
        return await self._send(fn, payload)

    async def _send(self, fn: str, payload: Any) -> Any:
        errors: list[str] = []
        wrong: list[str] = []
        expected = self.expected_chain_id
        for ep in self._ordered():
            if expected is not None and ep.chain_id is not None and ep.chain_id != expected:
                wrong.append(f"the RPC serves chain {ep.chain_id}, expected {expected}")
                continue
            try:
                if expected is not None and ep.chain_id is None:
                    result = await self._first_call(ep, fn, payload)
                    if ep.chain_id is not None and ep.chain_id != expected:
                        wrong.append(f"the RPC serves chain {ep.chain_id}, expected {expected}")
                        continue
                else:
                    result = await self._call(ep, fn, payload)
                ep.failures = 0
                return result
            except (TimeoutError, aiohttp.ClientError, OSError, json.JSONDecodeError) as exc:
                ep.failures += 1
                # aiohttp puts the full URL (key included) into some error texts
                what = (f"{type(exc).__name__} {exc}".strip() if not isinstance(exc, json.JSONDecodeError)
                        else "answered with a body that is not JSON (not a JSON-RPC endpoint?)")
                errors.append(scrub(ep.url, [ep.url]) + ": " + scrub(what, [ep.url]))
        if wrong and not errors:
            raise WrongChain("wrong chain: " + "; ".join(dict.fromkeys(wrong)))
        errors += [f"another URL: {w}" for w in dict.fromkeys(wrong)]
        raise RpcUnavailable("cannot reach any RPC endpoint (" + "; ".join(errors) + ")")

    async def _call(self, ep: _Endpoint, fn: str, payload: Any) -> Any:
        async with ep.throttler:
            self.requests[ep.url] += 1
            coro = getattr(ep.w3.provider, fn)(*payload)
            return await asyncio.wait_for(coro, timeout=self.timeout)

    async def _first_call(self, ep: _Endpoint, fn: str, payload: Any) -> Any:
        """The call with an eth_chainId in front, in one batch; records what ``ep`` serves."""
        calls = [("eth_chainId", []), *(payload[0] if fn == "make_batch_request" else [tuple(payload)])]
        answers = await self._call(ep, "make_batch_request", (calls,))
        if isinstance(answers, dict):  # this node takes no batches: ask on its own, then call
            first = await self._call(ep, "make_request", ("eth_chainId", []))
            if "result" in first:
                ep.chain_id = int(first["result"], 16)
            return None if ep.chain_id != self.expected_chain_id else await self._call(ep, fn, payload)
        if "result" in answers[0]:
            ep.chain_id = int(answers[0]["result"], 16)
        return answers[1] if fn == "make_request" else answers[1:]

    async def request(self, method: str, params: list[Any]) -> Any:
        response = await self._send("make_request", (method, params))
        if "error" in response:
            raise RpcError(method, response["error"])
        return response["result"]

    async def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one HTTP request (JSON-RPC batch); results in call order."""
        if not calls:
            return []
        if len(calls) == 1:
            return [await self.request(*calls[0])]
        responses = await self._send("make_batch_request", (calls,))
        if isinstance(responses, dict):  # the node refused the whole batch
            raise RpcError("batch", responses.get("error", responses))
        out = []
        for (method, _), resp in zip(calls, responses, strict=True):
            if "error" in resp:
                raise RpcError(method, resp["error"])
            out.append(resp["result"])
        return out

    async def chain_id(self) -> int:
        return int(await self.request("eth_chainId", []), 16)

    async def close(self) -> None:
        for ep in self._endpoints:
            provider = ep.w3.provider
            if isinstance(provider, AsyncHTTPProvider):
                await provider.disconnect()
