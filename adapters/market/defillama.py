"""DefiLlama protocol TVL through aiohttp (no key): GET {base}/protocol/{slug}.

The answer's ``tvl`` is a daily series of {date (unix seconds), totalLiquidityUSD}.
The base URL is configurable (tests point it at a loopback server).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from adapters.market.base import Guard, Reading, SourceError, describe_error, finite, unknown

DEFAULT_BASE_URL = "https://api.llama.fi"
MAX_TVL_USD = 1e13


@dataclass
class DefiLlama:
    base_url: str = DEFAULT_BASE_URL
    timeout_s: float = 10.0
    rate_limit: int = 2
    max_age_s: int = 2 * 86400  # daily series: the last point may be a day old

    def __post_init__(self) -> None:
        self.guard = Guard("defillama", rate_limit=self.rate_limit, timeout_s=self.timeout_s)

    async def _get(self, path: str) -> Any:
        url = self.base_url.rstrip("/") + path
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
            text = await resp.text()
            if resp.status == 429:
                raise SourceError(f"rate limited (429) by {url}")
            if resp.status >= 500:
                raise SourceError(f"venue unavailable: HTTP {resp.status} from {url}")
            if resp.status != 200:
                raise SourceError(f"HTTP {resp.status} from {url}: {text[:120]}")
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise SourceError(f"malformed response: {exc.msg} at char {exc.pos}") from None

    async def protocol_tvl(self, slug: str) -> list[tuple[int, float]]:
        """Daily TVL series (unix seconds, USD); raises on failures and bad rows."""

        async def get() -> Any:
            return await self._get(f"/protocol/{slug}")

        body = await self.guard.call(get)
        if not isinstance(body, dict) or not isinstance(body.get("tvl"), list):
            raise SourceError("malformed response: no tvl list")
        out: dict[int, float] = {}
        for row in body["tvl"]:
            if not isinstance(row, dict):
                raise SourceError(f"malformed tvl row: {row!r}")
            ts = int(finite(row.get("date"), "tvl date"))
            value = finite(row.get("totalLiquidityUSD"), f"totalLiquidityUSD at {ts}")
            if value < 0 or value > MAX_TVL_USD:
                raise SourceError(f"absurd TVL {value:g} at {ts}")
            out[ts] = value
        return sorted(out.items())

    async def latest(self, slug: str, now: int) -> Reading:
        name = f"defillama:{slug}"
        try:
            series = await self.protocol_tvl(slug)
        except Exception as exc:  # outside failure -> unknown with reason
            return unknown(name, "defillama", self.max_age_s, describe_error(exc, self.timeout_s))
        if not series:
            return unknown(name, "defillama", self.max_age_s, "empty tvl series")
        ts, value = series[-1]
        return Reading(name, value, ts, "defillama", self.max_age_s, "ok",
                       {"points": len(series)}).checked(now)
