"""A loopback JSON-RPC proxy that counts what crosses it: HTTP requests and calls by method.

It forwards bytes unchanged to a real node (anvil), so counts are independent of the
client's own bookkeeping. `delay` makes it slow (to exercise timeouts); `fail` makes
it answer 503 (to exercise failover).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web


@dataclass
class CountingProxy:
    upstream: str
    delay: float = 0.0
    fail: bool = False
    mine_inside_batches: bool = False  # mine a block between the items of a batch
    http_requests: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.http_requests = 0
        self.calls.clear()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.http_requests += 1
        payload = json.loads(body)
        for item in payload if isinstance(payload, list) else [payload]:
            self.calls[item["method"]] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            return web.Response(status=503, text="unavailable")
        assert self._session is not None
        if self.mine_inside_batches and isinstance(payload, list) and len(payload) > 1:
            answers = []
            for item in payload:
                answers.append(await self._post(json.dumps(item).encode()))
                await self._post(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "evm_mine", "params": []}).encode())
            return web.json_response(answers)
        async with self._session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            return web.Response(body=await resp.read(), status=resp.status, content_type="application/json")

    async def _post(self, body: bytes) -> object:
        assert self._session is not None
        async with self._session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            return await resp.json()

    async def start(self) -> CountingProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self._session:
            await self._session.close()
