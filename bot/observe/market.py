"""MarketObserver: every market source of a tick, read concurrently under one deadline,
assessed into signal readings and a regime per underlying, returned as a frozen snapshot.

The observer owns its clients for its whole life (``async with`` or ``aclose()``): one
ccxt exchange per (venue, underlying) feed, one Deribit client per underlying, one per
CEX book, one DefiLlama client and one RPC pool (every URL of the market's chain, chain id
checked once) for the chain readers (Chainlink feeds, stable pools, pool TVL). Markets
loaded once stay loaded; venue throttles persist across ticks.

Unknown stays unknown: a source that fails, answers badly, is stale or does not answer
before the tick deadline gives an unknown reading with its reason, never a default; each
signal carries the time its newest input was true (``as_of``) and a staleness verdict.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import partial
from types import MappingProxyType, TracebackType
from typing import Any, Literal

from policies import signals as S
from policies.hedge import OptionQuote, PerpQuote
from policies.types import Level, Regime, SignalReading
from policies.vocab import FUNDING_VENUES

Verdict = Literal["fresh", "stale", "unknown"]
FUNDING_HISTORY_S = 31 * 86400


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class MarketConfig:
    """What the market observer watches (mapped from settings in one place)."""

    underlyings: tuple[str, ...] = ("ETH",)
    funding_venues: tuple[str, ...] = FUNDING_VENUES
    api_urls: Mapping[str, str] = field(default_factory=dict)  # venue -> base URL override
    timeout_s: float = 10.0  # per request
    rate_limit: int = 5  # requests per second per source
    deribit: bool = True  # DVOL, option chain (term structure), OHLCV
    defillama_url: str = "https://api.llama.fi"
    defillama_slugs: tuple[str, ...] = ()
    rpc_urls: tuple[str, ...] = ()  # the market chain's RPC URLs (feeds, pools, tvl_pools)
    chain_name: str = "default"
    chain_id: int | None = None  # refuse an RPC serving another chain
    rpc_rate_limit: int = 50
    feeds: tuple[Mapping[str, Any], ...] = ()  # asset, label, address, heartbeat
    pools: tuple[Mapping[str, Any], ...] = ()  # asset, label, address, asset_is_token0
    books: tuple[Mapping[str, Any], ...] = ()  # asset, venue, symbol, invert
    tvl_pools: tuple[Mapping[str, Any], ...] = ()  # label, address, feed0, feed1, heartbeat0/1
    option_venues: tuple[str, ...] = ()  # option quotes from these venues ("deribit")
    perp_venues: tuple[str, ...] = ()  # perp quotes (funding per 8 h) from these funding venues
    deadline_s: float | None = None  # the whole tick; default 6 x timeout_s

    @property
    def deadline(self) -> float:
        return self.deadline_s if self.deadline_s is not None else 6 * self.timeout_s

    @classmethod
    def from_settings(cls, market: Any, *, option_venues: tuple[str, ...] = (),
                      perp_venues: tuple[str, ...] = ()) -> MarketConfig:
        """The one mapping from settings (bot.settings.MarketSettings, its chain resolved)
        to the observer's config."""
        needs_chain = bool(market.feeds or market.pools or market.tvl_pools)
        chain = market.rpc_chain if needs_chain else None
        return cls(
            underlyings=tuple(market.underlyings), funding_venues=tuple(market.funding_venues),
            api_urls=dict(market.api_urls), timeout_s=float(market.timeout_s),
            rate_limit=int(market.rate_limit), deribit=bool(market.deribit),
            defillama_url=market.defillama_url, defillama_slugs=tuple(market.defillama_slugs),
            rpc_urls=tuple(chain.rpc_urls) if chain else (),
            chain_name=chain.name if chain else "default",
            chain_id=chain.chain_id if chain else None,
            rpc_rate_limit=chain.rate_limit if chain else 50,
            feeds=tuple(market.feeds), pools=tuple(market.pools), books=tuple(market.books),
            tvl_pools=tuple(market.tvl_pools), option_venues=option_venues,
            perp_venues=perp_venues)


# ----------------------------------------------------------------------------- snapshot
@dataclass(frozen=True, slots=True)
class SignalObservation:
    """One signal reading with the time its newest input was true and a verdict:
    fresh (known), stale (unknown because too old) or unknown (missing, failed)."""

    reading: SignalReading
    as_of: int | None
    verdict: Verdict

    @property
    def name(self) -> str:
        return self.reading.name

    @property
    def level(self) -> Level | None:
        return self.reading.level


@dataclass(frozen=True, slots=True)
class UnderlyingMarket:
    underlying: str
    signals: tuple[SignalObservation, ...]
    regime: Regime


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """What one source answered this tick (status ok | unknown, with its reason)."""

    name: str
    status: str
    reason: str
    data: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dict(self.data)


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    now: int
    underlyings: tuple[UnderlyingMarket, ...]
    shared: tuple[SignalObservation, ...]  # depeg per asset, TVL drops: in every regime
    option_quotes: tuple[OptionQuote, ...]
    perp_quotes: tuple[PerpQuote, ...]
    sources: tuple[SourceStatus, ...]

    @property
    def regimes(self) -> tuple[Regime, ...]:
        return tuple(u.regime for u in self.underlyings)

    def levels(self) -> dict[str, Level | None]:
        """Hysteresis state for the next tick: "<subject or underlying>:<signal>" -> level."""
        out: dict[str, Level | None] = {}
        groups = [(u.underlying, u.regime.signals) for u in self.underlyings]
        for who, signals in [*groups, ("shared", tuple(s.reading for s in self.shared))]:
            for s in signals:
                subject = s.evidence.get("subject")
                out[f"{subject if subject is not None else who}:{s.name}"] = s.level
        return out

    def as_result(self) -> dict[str, Any]:
        """The dict `lphedge signals` renders (now, regimes, shared readings, sources)."""
        return {"now": self.now, "regimes": list(self.regimes),
                "shared": [s.reading for s in self.shared],
                "sources": [s.to_json() for s in self.sources]}


def _verdict(r: SignalReading) -> Verdict:
    if r.level is not None:
        return "fresh"
    return "stale" if "stale" in r.reason else "unknown"


def _obs(r: SignalReading, as_of: int | None) -> SignalObservation:
    return SignalObservation(r, as_of, _verdict(r))


def _about(s: SignalReading, subject: str) -> SignalReading:
    """The reading with the thing it is about in its evidence (state key, display)."""
    return replace(s, evidence={**s.evidence, "subject": subject})


@dataclass(frozen=True, slots=True)
class _Failed:
    reason: str


# ----------------------------------------------------------------------------- observer
class MarketObserver:
    """Long-lived: build once, ``await read(now)`` every tick, ``aclose()`` at the end."""

    def __init__(self, cfg: MarketConfig, *, engine: Any = None) -> None:
        from adapters.market.defillama import DefiLlama
        from adapters.market.funding import FundingFeed
        from adapters.market.stables import CexBook, ChainlinkFeed, UniswapStablePool
        from adapters.market.tvl import PoolTvl
        from adapters.market.volatility import DeribitVol

        self.cfg = cfg
        self.engine = engine  # market_store engine: pool TVL history (None: no history)
        c = cfg
        self._funding = {(u, v): FundingFeed.create(v, u, api_url=c.api_urls.get(v),
                                                    timeout_s=c.timeout_s, rate_limit=c.rate_limit)
                         for u in c.underlyings for v in c.funding_venues}
        self._vol = ({u: DeribitVol.create(u, c.api_urls.get("deribit"), c.timeout_s, c.rate_limit)
                      for u in c.underlyings} if c.deribit else {})
        self._books = [(b, CexBook.create(b["venue"], b["symbol"], c.api_urls.get(b["venue"]),
                                          c.timeout_s, bool(b.get("invert", False))))
                       for b in c.books]
        self._llama = DefiLlama(c.defillama_url, c.timeout_s) if c.defillama_slugs else None
        self._pool: Any = None
        self._conn: Any = None
        self._chain_checked = False
        if c.feeds or c.pools or c.tvl_pools:
            from adapters.evm.chain import ChainConnection

            # the one chain access path (adapters/evm/chain.py): its RpcPool, and an
            # AsyncWeb3 whose every request goes through that pool (throttle, timeout,
            # failover per request, redaction) for the contract readers
            self._conn = ChainConnection(list(c.rpc_urls), timeout=c.timeout_s,
                                         rate_limit=c.rpc_rate_limit)
            self._pool = self._conn.pool
        self._chain_types = (ChainlinkFeed, UniswapStablePool, PoolTvl)
        self._chain_sources(None)
        self._levels: dict[str, Level | None] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    async def __aenter__(self) -> MarketObserver:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        closers: list[Awaitable[Any]] = [f.close() for f in self._funding.values()]
        closers += [v.close() for v in self._vol.values()]
        closers += [b.close() for _, b in self._books]
        if self._conn is not None:
            closers.append(self._conn.aclose())
        await asyncio.gather(*closers, return_exceptions=True)

    # -- one tick ------------------------------------------------------------------------------
    async def read(self, now: int, previous: Mapping[str, Level | None] | None = None
                   ) -> MarketSnapshot:
        """Every source now, under the tick deadline; ``previous`` levels (hysteresis)
        default to the levels of this observer's last tick."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("MarketObserver is closed")
            prev = dict(self._levels if previous is None else previous)
            if self._pool is not None:
                await self._check_chain()
                self._chain_sources(self._conn.async_w3)  # every URL, failover per request
            results = self._from_chains(await self._gather(self._units(now)))
            snap = self._assess(now, prev, results)
            self._levels = snap.levels()
            return snap

    def _chain_sources(self, w3: Any) -> None:
        """Chain readers over ``w3`` (light objects, rebuilt each tick so that they follow
        the pool's healthiest endpoint)."""
        chainlink, stable, pool_tvl = self._chain_types
        c = self.cfg
        self._chainlink: list[tuple[Mapping[str, Any], Any]] = [
            (f, chainlink(w3, f["address"], f["label"], int(f.get("heartbeat", 86400))))
            for f in c.feeds]
        self._stable_pools: list[tuple[Mapping[str, Any], Any]] = [
            (p, stable(w3, p["address"], p["label"], bool(p.get("asset_is_token0", True))))
            for p in c.pools]
        self._tvl: list[tuple[str, Any, Any, Any]] = []
        for p in c.tvl_pools:
            label = str(p["label"])
            prices = [chainlink(w3, p[f"feed{i}"], f"{label}:token{i}",
                                int(p.get(f"heartbeat{i}", 86400))) for i in (0, 1)]
            self._tvl.append((label, pool_tvl(w3, p["address"], label), prices[0], prices[1]))

    async def _check_chain(self) -> None:
        """Once: the chain the RPC serves is the configured one (refused by name if not).
        Unreachable now: each chain reading says so with its own reason; asked again next
        tick."""
        from bot.errors import UserError

        if self._chain_checked:
            return
        try:
            served = await self._pool.chain_id()
        except Exception:  # unreachable: the readings carry the reason
            return
        if self.cfg.chain_id is not None and served != self.cfg.chain_id:
            raise UserError(f"chains {self.cfg.chain_name}: the RPC serves chain {served}, "
                            f"not chain_id {self.cfg.chain_id}")
        self._chain_checked = True

    def _units(self, now: int) -> dict[tuple[str, ...], Callable[[], Awaitable[Any]]]:
        from adapters.market.volatility import realised_vol_reading

        units: dict[tuple[str, ...], Callable[[], Awaitable[Any]]] = {}
        for (u, v), feed in self._funding.items():
            units[("funding_history", u, v)] = partial(
                feed.history, now - FUNDING_HISTORY_S, limit=1000, until_s=now)
            units[("funding_current", u, v)] = feed.current
        for u, vol in self._vol.items():
            perp = f"{u}/USD:{u}"
            units[("dvol", u)] = partial(vol.dvol_history, now, days=95)
            if "deribit" in self.cfg.option_venues:  # one fetch: term structure and quotes
                units[("chain", u)] = vol.option_chain
            else:
                units[("term", u)] = vol.term_structure
            units[("ohlcv", u)] = partial(vol.ohlcv, perp, "1d", now - 200 * 86400)
            units[("rv", u)] = partial(realised_vol_reading, vol, perp, now)
        for i, (_, src) in enumerate(self._chainlink):
            units[("chainlink", str(i))] = src.read
        for i, (_, src) in enumerate(self._stable_pools):
            units[("stable_pool", str(i))] = src.read
        for i, (_, src) in enumerate(self._books):
            units[("book", str(i))] = src.read
        for i, (_, pool, p0, p1) in enumerate(self._tvl):
            async def tvl(pool: Any = pool, p0: Any = p0, p1: Any = p1) -> Any:
                prices = await asyncio.gather(p0.read(), p1.read())
                return await pool.read(*prices)
            units[("tvl", str(i))] = tvl
        if self._llama is not None:
            for slug in self.cfg.defillama_slugs:
                units[("defillama", slug)] = partial(self._llama.protocol_tvl, slug)
        return units

    def _from_chains(self, res: dict[tuple[str, ...], Any]) -> dict[tuple[str, ...], Any]:
        """The term structure and the option quotes of each fetched option chain (a failed
        fetch fails both with its reason; a bad payload fails what it breaks)."""
        from adapters.market.base import describe_error
        from adapters.market.options import parse_chain

        for u, vol in self._vol.items():
            chain = res.pop(("chain", u), None)
            if chain is None:
                continue
            if isinstance(chain, _Failed):
                res[("term", u)] = res[("options", u)] = chain
                continue
            derived: tuple[tuple[tuple[str, ...], Callable[[], Any]], ...] = (
                (("term", u), partial(vol.term_structure_of, chain)),
                (("options", u), partial(parse_chain, "deribit", u, chain, vol.exchange.markets)))
            for key, derive in derived:
                try:
                    res[key] = derive()
                except Exception as exc:  # a bad payload: unknown, with the reason
                    res[key] = _Failed(describe_error(exc, self.cfg.timeout_s))
        return res

    async def _gather(self, units: dict[tuple[str, ...], Callable[[], Awaitable[Any]]]
                      ) -> dict[tuple[str, ...], Any]:
        """Run every unit concurrently; a failure or a unit still running at the deadline
        becomes _Failed(reason)."""
        from adapters.market.base import describe_error

        async def run(fn: Callable[[], Awaitable[Any]]) -> Any:
            try:
                return await fn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # outside failure: unknown, with the reason
                return _Failed(describe_error(exc, self.cfg.timeout_s))

        tasks = {key: asyncio.ensure_future(run(fn)) for key, fn in units.items()}
        if not tasks:
            return {}
        _, pending = await asyncio.wait(tasks.values(), timeout=self.cfg.deadline)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        late = _Failed(f"no answer within the tick deadline of {self.cfg.deadline:g}s")
        return {key: (late if t in pending else t.result()) for key, t in tasks.items()}

    # -- assess (pure given the results, except the TVL history store) -------------------
    def _assess(self, now: int, prev: dict[str, Level | None],
                res: dict[tuple[str, ...], Any]) -> MarketSnapshot:
        from adapters.market.base import Reading, unknown
        from adapters.market.stables import to_peg_quote

        sources: list[dict[str, Any]] = []

        def reading(key: tuple[str, ...], src: Any) -> Reading:
            r = res[key]
            if isinstance(r, _Failed):  # only the deadline: sources never raise
                return unknown(src.name, src.name, _max_age(src), r.reason)
            assert isinstance(r, Reading)
            return r

        # shared: depeg per asset from every peg source
        peg: dict[str, list[Reading]] = {}
        for i, (f, src) in enumerate(self._chainlink):
            peg.setdefault(f["asset"], []).append(reading(("chainlink", str(i)), src))
        for i, (p, src) in enumerate(self._stable_pools):
            peg.setdefault(p["asset"], []).append(reading(("stable_pool", str(i)), src))
        for i, (b, src) in enumerate(self._books):
            peg.setdefault(b["asset"], []).append(reading(("book", str(i)), src))
        shared: list[SignalObservation] = []
        for asset, rs in sorted(peg.items()):
            sources.extend(r.as_dict(now) for r in rs)
            quotes = [to_peg_quote(r, now) for r in rs]  # chain ages by the chain's clock
            sig = _about(S.depeg(asset, quotes, now, prev.get(f"{asset}:{S.DEPEG}")), asset)
            stamps = [r.as_of for r in rs if r.as_of is not None and r.value is not None]
            shared.append(_obs(sig, max(stamps) if stamps else None))
        shared += self._tvl_signals(now, prev, res, sources)
        for slug in self.cfg.defillama_slugs:
            series = res[("defillama", slug)]
            if isinstance(series, _Failed):
                sources.append({"name": f"defillama:{slug}", "status": "unknown",
                                "reason": series.reason})
                shared.append(_obs(SignalReading(S.TVL_DROP, None, f"{slug}: {series.reason}",
                                                 {"subject": slug}), None))
                continue
            sources.append({"name": f"defillama:{slug}", "status": "ok", "points": len(series)})
            daily = S.TvlDropConfig(max_age=2 * 86400, min_coverage_hours=24)
            sig = _about(S.tvl_drop(series, now, prev.get(f"{slug}:{S.TVL_DROP}"), daily), slug)
            shared.append(_obs(sig, series[-1][0] if series else None))

        underlyings: list[UnderlyingMarket] = []
        perp_quotes: list[PerpQuote] = []
        option_quotes: list[OptionQuote] = []
        for u in self.cfg.underlyings:
            sigs: list[SignalObservation] = []
            venues: dict[str, list[S.FundingPoint]] = {}
            currents = [reading(("funding_current", u, v), self._funding[(u, v)])
                        for v in self.cfg.funding_venues]
            sources.extend(r.as_dict(now) for r in currents)
            for v, cur in zip(self.cfg.funding_venues, currents, strict=True):
                hist = res[("funding_history", u, v)]
                name = f"funding_history:{v}:{u}"
                if isinstance(hist, _Failed):
                    sources.append({"name": name, "status": "unknown", "reason": hist.reason})
                    venues[v] = []
                else:
                    venues[v] = hist
                    sources.append({"name": name, "status": "ok", "points": len(hist),
                                    "latest_ts": hist[-1].ts if hist else None})
                if v in self.cfg.perp_venues:
                    perp_quotes.append(_perp_quote(self._funding[(u, v)], u, cur))
            stamps = [p[-1].ts for p in venues.values() if p]
            sigs.append(_obs(S.funding(venues, now, prev.get(f"{u}:{S.FUNDING}")),
                             max(stamps) if stamps else None))
            if u in self._vol:
                sigs += self._deribit(u, now, prev, res, sources)
                opts = res.get(("options", u))
                if isinstance(opts, _Failed):
                    sources.append({"name": f"option_quotes:deribit:{u}", "status": "unknown",
                                    "reason": opts.reason})
                elif opts is not None:
                    option_quotes.extend(opts)
                    sources.append({"name": f"option_quotes:deribit:{u}", "status": "ok",
                                    "quotes": len(opts)})
            else:
                sigs += [_obs(SignalReading(n, None, "deribit disabled in config"), None)
                         for n in (S.IV_PERCENTILE, S.TERM_STRUCTURE, S.RSI_MACD)]
            for v in self.cfg.option_venues:
                if v != "deribit" or u not in self._vol:
                    why = ("deribit disabled in config" if v == "deribit" else
                           f"no option market-data adapter for venue {v}")
                    sources.append({"name": f"option_quotes:{v}:{u}", "status": "unknown",
                                    "reason": why})
            sigs += shared
            regime = S.aggregate(u, [s.reading for s in sigs])
            underlyings.append(UnderlyingMarket(u, tuple(sigs), regime))
        return MarketSnapshot(now, tuple(underlyings), tuple(shared), tuple(option_quotes),
                              tuple(perp_quotes),
                              tuple(SourceStatus(str(s.get("name")), str(s.get("status")),
                                                 str(s.get("reason") or ""),
                                                 MappingProxyType(s))
                                    for s in sources))

    def _deribit(self, u: str, now: int, prev: dict[str, Level | None],
                 res: dict[tuple[str, ...], Any], sources: list[dict[str, Any]]
                 ) -> list[SignalObservation]:
        from adapters.market.base import unknown

        key = f"{u}:"
        out: list[SignalObservation] = []
        dvol = res[("dvol", u)]
        if isinstance(dvol, _Failed):
            out.append(_obs(SignalReading(S.IV_PERCENTILE, None, f"DVOL unknown: {dvol.reason}"),
                            None))
            sources.append({"name": f"dvol:{u}", "status": "unknown", "reason": dvol.reason})
        else:
            out.append(_obs(S.iv_percentile(dvol, now, prev.get(key + S.IV_PERCENTILE)),
                            dvol[-1][0] if dvol else None))
            sources.append({"name": f"dvol:{u}", "status": "ok", "points": len(dvol)})
        ts = res[("term", u)]
        if isinstance(ts, _Failed):
            out.append(_obs(SignalReading(S.TERM_STRUCTURE, None,
                                          f"option chain unknown: {ts.reason}"), None))
            sources.append({"name": f"options:{u}", "status": "unknown", "reason": ts.reason})
        else:
            out.append(_obs(S.term_structure(ts.pairs(), ts.as_of, now,
                                             prev.get(key + S.TERM_STRUCTURE)), ts.as_of))
            sources.append({"name": f"options:{u}", "status": "ok", "expiries": len(ts.points),
                            "atm_iv": [[p.expiry, p.atm_iv] for p in ts.points]})
        bars = res[("ohlcv", u)]
        if isinstance(bars, _Failed):
            out.append(_obs(SignalReading(S.RSI_MACD, None, f"OHLCV unknown: {bars.reason}"),
                            None))
        else:
            out.append(_obs(S.rsi_macd([(b.ts, b.close) for b in bars], now,
                                       prev.get(key + S.RSI_MACD)),
                            bars[-1].ts if bars else None))
        rv = res[("rv", u)]
        if isinstance(rv, _Failed):
            rv = unknown(f"realised_vol:{u}/USD:{u}", "deribit", 2 * 86400, rv.reason)
        sources.append(rv.as_dict(now))
        return out

    def _tvl_signals(self, now: int, prev: dict[str, Level | None],
                     res: dict[tuple[str, ...], Any], sources: list[dict[str, Any]]
                     ) -> list[SignalObservation]:
        """Pool TVL now (balances x Chainlink prices), stored, and its drop over 48 h."""
        from adapters.market.base import unknown

        out: list[SignalObservation] = []
        for i, (label, pool, _, _) in enumerate(self._tvl):
            r = res[("tvl", str(i))]
            if isinstance(r, _Failed):
                r = unknown(pool.name, pool.name, 0, r.reason)
            sources.append(r.as_dict())
            key = f"tvl:{label}"
            if r.value is None or r.as_of is None:
                out.append(_obs(SignalReading(S.TVL_DROP, None, f"{label}: TVL unknown: "
                                              f"{r.reason}", {"subject": key}), None))
                continue
            if self.engine is None:
                out.append(_obs(SignalReading(S.TVL_DROP, None, f"{label}: no store (--no-state) "
                                              "for TVL history", {"subject": key}), r.as_of))
                continue
            from bot.market_store import MarketStore

            store = MarketStore(self.engine)
            store.record_tvl(key, r.as_of, r.value, r.source)
            series = store.tvl_series(key, r.as_of - 7 * 86400)
            # samples are stamped by the chain's clock: judge them at the latest block's time
            sig = _about(S.tvl_drop(series, r.as_of, prev.get(f"{key}:{S.TVL_DROP}")), key)
            out.append(_obs(sig, r.as_of))
        return out


def _max_age(src: Any) -> int:
    """The staleness bound of a source (its heartbeat or max age)."""
    return int(getattr(src, "heartbeat_s", 0) or getattr(src, "max_age_s", 0) or 86400)


def _perp_quote(feed: Any, underlying: str, cur: Any) -> PerpQuote:
    """A perp quote from the current funding reading (no extra request): the rate per 8 h,
    the venue's minimum size as the step; mark unknown (not read). Unknown funding stays
    None (decide then leaves that venue out)."""
    rate = cur.value
    hours = (cur.extra or {}).get("interval_hours")
    rate_8h = (rate * 8.0 / hours if rate is not None and hours and math.isfinite(rate)
               else None)
    from adapters.market.options import size_step

    market = (feed.exchange.markets or {}).get(feed.symbol) or {}
    step = size_step(market) or Decimal("0.001")  # decide's own default when none is known
    return PerpQuote(feed.venue, underlying, None, rate_8h,
                     cur.as_of if cur.as_of is not None else 0, step)
