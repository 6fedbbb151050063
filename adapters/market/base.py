"""Market readings: a value that is fresh, or explicitly unknown with a reason.

Every market source returns :class:`Reading` values. A reading carries when the
value was true (``as_of``), where it came from, how old it may get
(``max_age_s``) and, when the value is unknown, why. Outside failures (rate
limits, maintenance, malformed payloads, timeouts, unreachable hosts) become an
unknown reading with a clear reason; they never raise out of a source and never
turn into a default value.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import aiohttp
import ccxt.async_support as ccxt
from asyncio_throttle.throttler import Throttler

from adapters.redact import redact_urls
from policies.errors import Transient

T = TypeVar("T")


def now_s() -> int:
    return int(time.time())


@dataclass(frozen=True, slots=True)
class Reading:
    """One market value. ``value is None`` means unknown; ``reason`` says why."""

    name: str  # what: e.g. "funding:binanceusdm:ETH/USDT:USDT"
    value: float | None
    as_of: int | None  # unix seconds when the value was true at the source
    source: str  # e.g. "binanceusdm", "chainlink:0x..."
    max_age_s: int  # older than this is stale (unknown)
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        return self.value is not None

    def age(self, now: int) -> int | None:
        return None if self.as_of is None else now - self.as_of

    def checked(self, now: int) -> Reading:
        """This reading, or an unknown one if it is stale, from the future or not finite."""
        if self.value is None:
            return self
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            return self.unknown(f"not a number: {self.value!r}")
        if not math.isfinite(self.value):
            return self.unknown(f"not finite: {self.value!r}")
        if self.as_of is None:
            return self.unknown("no timestamp at source")
        if self.as_of > now + 60:
            return self.unknown(f"timestamp {self.as_of} is in the future (now {now})")
        if now - self.as_of > self.max_age_s:
            return self.unknown(f"stale: {now - self.as_of}s old, bound {self.max_age_s}s")
        return self

    def unknown(self, reason: str) -> Reading:
        return replace(self, value=None, reason=reason,
                       extra={**self.extra, "last_value": self.value})

    def as_dict(self, now: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "value": self.value, "as_of": self.as_of, "source": self.source,
            "max_age_s": self.max_age_s, "reason": self.reason, "status":
            "ok" if self.value is not None else "unknown"}
        if now is not None and self.as_of is not None:
            out["age_s"] = now - self.as_of
        if self.extra:
            out["extra"] = self.extra
        return out


def unknown(name: str, source: str, max_age_s: int, reason: str, **extra: Any) -> Reading:
    return Reading(name, None, None, source, max_age_s, reason, dict(extra))


class SourceError(Transient):
    """A source answered, but with something unusable (missing field, bad value): the
    reading is unknown this tick and the next one asks again."""


def describe_error(exc: BaseException, timeout_s: float) -> str:
    """One clear line for an outside failure (alert-worthy, no traceback)."""
    if isinstance(exc, (asyncio.TimeoutError, ccxt.RequestTimeout)):
        return f"timeout after {timeout_s:g}s"
    if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        return f"rate limited (429): {_short(exc)}"
    if isinstance(exc, ccxt.OnMaintenance):
        return f"venue in maintenance: {_short(exc)}"
    if isinstance(exc, aiohttp.ClientResponseError):  # an HTTP error status (e.g. an RPC)
        status = f"HTTP {exc.status} {exc.message}".strip()
        if exc.status == 429:
            return f"rate limited (429): {status}"
        if exc.status >= 500:
            return f"venue unavailable: {status}"
        return f"refused: {status} (check the URL and its key)"
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientConnectorError | ConnectionError):
        return f"venue unreachable: {_short(exc)} ({type(cause).__name__})"
    if isinstance(exc, ccxt.BadResponse | ccxt.NullResponse | json.JSONDecodeError):
        return f"malformed response: {_short(exc)}"
    if isinstance(exc, ccxt.ExchangeNotAvailable):
        return f"venue unavailable: {_short(exc)}"
    if isinstance(exc, ccxt.NetworkError | aiohttp.ClientError | OSError):
        return f"venue unreachable: {_short(exc)}"
    if isinstance(exc, ccxt.ExchangeError):
        return f"venue error: {_short(exc)}"
    if isinstance(exc, SourceError):
        return redact_urls(str(exc))
    if isinstance(exc, KeyError | IndexError | TypeError | ValueError):
        return f"malformed response: {type(exc).__name__}: {_short(exc)}"
    return f"{type(exc).__name__}: {_short(exc)}"


def _short(exc: BaseException, limit: int = 160) -> str:
    text = redact_urls(" ".join(str(exc).split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Guard:
    """Throttle (asyncio-throttle) plus timeout plus error mapping for one source."""

    def __init__(self, source: str, rate_limit: int = 5, period_s: float = 1.0,
                 timeout_s: float = 10.0) -> None:
        self.source = source
        self.timeout_s = timeout_s
        self.throttler = Throttler(rate_limit=rate_limit, period=period_s)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one outside call under the throttle and the timeout (exceptions propagate)."""
        async with self.throttler:
            return await asyncio.wait_for(fn(), timeout=self.timeout_s)

    async def reading(self, name: str, max_age_s: int,
                      fn: Callable[[], Awaitable[Reading]], now: Callable[[], int] = now_s
                      ) -> Reading:
        """A reading from ``fn``, or an unknown one naming the failure; always checked."""
        try:
            result = await self.call(fn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every outside failure becomes an unknown reading
            return unknown(name, self.source, max_age_s, describe_error(exc, self.timeout_s))
        return result.checked(now())


class FundingSource(Protocol):
    """Funding of one perp on one venue (adapters.market.funding.FundingFeed)."""

    @property
    def name(self) -> str: ...

    async def current(self) -> Reading: ...

    async def history(self, since_s: int, limit: int | None = None,
                      until_s: int | None = None) -> list[Any]: ...


class PriceSource(Protocol):
    """One price of a stable in its peg unit: a Chainlink feed, a Uniswap pool, a CEX book
    (adapters.market.stables); interchangeable for the depeg signal."""

    @property
    def name(self) -> str: ...

    async def read(self) -> Reading: ...


def finite(value: Any, what: str, *, positive: bool = False) -> float:
    """A float from a payload field, or SourceError naming what is wrong."""
    if value is None:
        raise SourceError(f"missing field: {what}")
    if isinstance(value, bool):
        raise SourceError(f"{what} is not a number: {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise SourceError(f"{what} is not a number: {value!r}") from None
    if not math.isfinite(out):
        raise SourceError(f"{what} is not finite: {value!r}")
    if positive and out <= 0:
        raise SourceError(f"{what} is not positive: {value!r}")
    return out


def answered_json(exchange: Any, what: str) -> None:
    """SourceError if the venue's last answer was not JSON. ccxt parses an unparsable
    answer as an empty result (no rows, no quotes, an empty book), which must not pass
    for "nothing there"; call it when a ccxt call came back empty."""
    raw = getattr(exchange, "last_http_response", None)
    if isinstance(raw, str):
        try:
            json.loads(raw)
        except ValueError:
            raise SourceError(f"malformed response: {what} answer is not JSON") from None


def ms_to_s(ms: Any, what: str = "timestamp") -> int:
    if ms is None:
        raise SourceError(f"missing field: {what}")
    try:
        return int(ms) // 1000
    except (TypeError, ValueError):
        raise SourceError(f"{what} is not a timestamp: {ms!r}") from None


def make_exchange(venue: str, api_url: str | None = None, timeout_s: float = 10.0,
                  options: dict[str, Any] | None = None) -> Any:
    """A ccxt async exchange; ``api_url`` points every API key of its urls at one base
    (tests point it at a loopback server speaking the venue's wire format)."""
    cls = getattr(ccxt, venue, None)
    if cls is None:
        raise ValueError(f"unknown ccxt venue: {venue}")
    config: dict[str, Any] = {"timeout": int(timeout_s * 1000), "enableRateLimit": False}
    exchange = cls(config)
    opts = {**VENUE_OPTIONS.get(venue, {}), **(options or {})}
    for key, value in opts.items():
        exchange.options[key] = value
    if api_url:
        point_at(exchange, api_url)
    return exchange


# Market loading limited to what the signals use: fewer requests per start.
VENUE_OPTIONS: dict[str, dict[str, Any]] = {
    "bybit": {"fetchMarkets": {"types": ["linear"]}},
    "okx": {"fetchMarkets": {"types": ["swap"]}},
    "hyperliquid": {"fetchMarkets": {"types": ["swap"]}},
    "binance": {"fetchMarkets": {"types": ["spot"]}},
    "deribit": {"fetchMarkets": {"fetchAllMarkets": True}},
}


def point_at(exchange: Any, base: str) -> None:
    """Rewrite every URL under ``exchange.urls['api']`` to ``base`` (path kept)."""
    base = base.rstrip("/")

    def rewrite(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: rewrite(v) for k, v in value.items()}
        if isinstance(value, str) and value.startswith("http"):
            rest = value.split("//", 1)[1]
            path = rest[rest.find("/"):] if "/" in rest else ""
            return base + path
        return value

    exchange.urls["api"] = rewrite(exchange.urls["api"])
    exchange.hostname = base.split("//", 1)[1]
