"""Observe and assess the market for one tick: every configured source read concurrently
(each throttled and time-bounded), turned into signal levels and a regime per underlying.
Used by `lphedge signals` and meant for the daemon's observe step."""


import asyncio
from dataclasses import replace
from typing import Any

from bot.settings import MarketSettings
from policies import signals as S
from policies.types import Level, Regime, SignalReading

# a level last known longer ago than this is no hysteresis state for the next run
STATE_MAX_AGE_S = 86400


async def collect(cfg: MarketSettings, now: int, previous: dict[str, Level | None],
                  engine: Any = None) -> dict[str, Any]:
    """Observe every configured source concurrently and assess the signals (pure part)."""
    from adapters.market.base import describe_error
    from adapters.market.funding import FundingFeed
    from adapters.market.volatility import DeribitVol, realised_vol_reading

    sources: list[dict[str, Any]] = []
    regimes: list[Regime] = []
    shared = await _shared_signals(cfg, now, previous, sources, engine)
    for und in cfg.underlyings:
        feeds = [FundingFeed.create(v, und, api_url=cfg.api_urls.get(v), timeout_s=cfg.timeout_s,
                                    rate_limit=cfg.rate_limit) for v in cfg.funding_venues]

        async def history(feed: FundingFeed) -> tuple[str, Any]:
            try:
                return feed.venue, await feed.history(now - 31 * 86400, limit=1000, until_s=now)
            except Exception as exc:  # outside failure: venue unknown, with the reason
                return feed.venue, describe_error(exc, cfg.timeout_s)

        results = await asyncio.gather(*[history(f) for f in feeds])
        currents = await asyncio.gather(*[f.current() for f in feeds])
        await asyncio.gather(*[f.close() for f in feeds])
        sources.extend(r.as_dict(now) for r in currents)
        venues: dict[str, list[S.FundingPoint]] = {}
        for venue, res in results:
            if isinstance(res, str):
                sources.append({"name": f"funding_history:{venue}:{und}", "status": "unknown",
                                "reason": res})
                venues[venue] = []
            else:
                venues[venue] = res
                sources.append({"name": f"funding_history:{venue}:{und}", "status": "ok",
                                "points": len(res), "latest_ts": res[-1].ts if res else None})
        key = f"{und}:"
        sigs = [S.funding(venues, now, previous.get(key + S.FUNDING))]
        if cfg.deribit:
            vol = DeribitVol.create(und, cfg.api_urls.get("deribit"), cfg.timeout_s,
                                    cfg.rate_limit)
            try:
                sigs += await _deribit_signals(vol, und, now, previous, sources)
                rv = await realised_vol_reading(vol, f"{und}/USD:{und}", now)
                sources.append(rv.as_dict(now))
            finally:
                await vol.close()
        else:
            sigs += [SignalReading(n, None, "deribit disabled in config")
                     for n in (S.IV_PERCENTILE, S.TERM_STRUCTURE, S.RSI_MACD)]
        sigs += shared
        regimes.append(S.aggregate(und, sigs))
    return {"now": now, "regimes": regimes, "shared": shared, "sources": sources}


async def _deribit_signals(vol: Any, und: str, now: int, previous: dict[str, Level | None],
                           sources: list[dict[str, Any]]) -> list[SignalReading]:
    from adapters.market.base import describe_error

    key = f"{und}:"
    out: list[SignalReading] = []
    try:
        dvol = await vol.dvol_history(now, days=95)
        out.append(S.iv_percentile(dvol, now, previous.get(key + S.IV_PERCENTILE)))
        sources.append({"name": f"dvol:{und}", "status": "ok", "points": len(dvol)})
    except Exception as exc:
        why = describe_error(exc, vol.guard.timeout_s)
        out.append(SignalReading(S.IV_PERCENTILE, None, f"DVOL unknown: {why}"))
        sources.append({"name": f"dvol:{und}", "status": "unknown", "reason": why})
    try:
        ts = await vol.term_structure()
        out.append(S.term_structure(ts.pairs(), ts.as_of, now,
                                    previous.get(key + S.TERM_STRUCTURE)))
        sources.append({"name": f"options:{und}", "status": "ok", "expiries": len(ts.points),
                        "atm_iv": [[p.expiry, p.atm_iv] for p in ts.points]})
    except Exception as exc:
        why = describe_error(exc, vol.guard.timeout_s)
        out.append(SignalReading(S.TERM_STRUCTURE, None, f"option chain unknown: {why}"))
        sources.append({"name": f"options:{und}", "status": "unknown", "reason": why})
    try:
        bars = await vol.ohlcv(f"{und}/USD:{und}", "1d", now - 200 * 86400)
        out.append(S.rsi_macd([(b.ts, b.close) for b in bars], now,
                              previous.get(key + S.RSI_MACD)))
    except Exception as exc:
        why = describe_error(exc, vol.guard.timeout_s)
        out.append(SignalReading(S.RSI_MACD, None, f"OHLCV unknown: {why}"))
    return out


def _about(s: SignalReading, subject: str) -> SignalReading:
    """The reading with the thing it is about in its evidence (state key, display)."""
    return replace(s, evidence={**s.evidence, "subject": subject})


async def _shared_signals(cfg: MarketSettings, now: int, previous: dict[str, Level | None],
                          sources: list[dict[str, Any]], engine: Any) -> list[SignalReading]:
    """Depeg per stable asset, pool and protocol TVL drops: shared by every underlying."""
    from adapters.market.base import Reading
    from adapters.market.defillama import DefiLlama
    from adapters.market.stables import CexBook, ChainlinkFeed, UniswapStablePool, to_peg_quote

    readings: dict[str, list[Reading]] = {}
    if cfg.feeds or cfg.pools:
        pool = await _chain_pool(cfg)
        w3 = pool.w3
        try:
            for f in cfg.feeds:
                r = await ChainlinkFeed(w3, f["address"], f["label"],
                                        int(f.get("heartbeat", 86400))).read()
                readings.setdefault(f["asset"], []).append(r)
            for p in cfg.pools:
                r = await UniswapStablePool(w3, p["address"], p["label"],
                                            bool(p.get("asset_is_token0", True))).read()
                readings.setdefault(p["asset"], []).append(r)
        finally:
            await pool.close()
    for b in cfg.books:
        book = CexBook.create(b["venue"], b["symbol"], cfg.api_urls.get(b["venue"]),
                              cfg.timeout_s, bool(b.get("invert", False)))
        try:
            readings.setdefault(b["asset"], []).append(await book.read())
        finally:
            await book.close()
    out: list[SignalReading] = []
    for asset, rs in sorted(readings.items()):
        sources.extend(r.as_dict(now) for r in rs)
        # on-chain ages count by the chain's clock, CEX ages by the wall clock
        quotes = [to_peg_quote(r, now) for r in rs]
        out.append(_about(S.depeg(asset, quotes, now, previous.get(f"{asset}:{S.DEPEG}")),
                          asset))
    if cfg.tvl_pools:
        out += await _pool_tvl_signals(cfg, now, previous, sources, engine)
    if cfg.defillama_slugs:
        llama = DefiLlama(cfg.defillama_url, cfg.timeout_s)
        for slug in cfg.defillama_slugs:
            from adapters.market.base import describe_error

            try:
                series = await llama.protocol_tvl(slug)
                sources.append({"name": f"defillama:{slug}", "status": "ok",
                                "points": len(series)})
                daily = S.TvlDropConfig(max_age=2 * 86400, min_coverage_hours=24)
                out.append(_about(S.tvl_drop(series, now, previous.get(f"{slug}:{S.TVL_DROP}"),
                                             daily), slug))
            except Exception as exc:
                why = describe_error(exc, cfg.timeout_s)
                sources.append({"name": f"defillama:{slug}", "status": "unknown", "reason": why})
                out.append(SignalReading(S.TVL_DROP, None, f"{slug}: {why}",
                                         {"subject": slug}))
    return out


async def _pool_tvl_signals(cfg: MarketSettings, now: int, previous: dict[str, Level | None],
                            sources: list[dict[str, Any]], engine: Any) -> list[SignalReading]:
    """Pool TVL now (balances x Chainlink prices), stored, and its drop over 48 h."""
    from adapters.market.stables import ChainlinkFeed
    from adapters.market.tvl import PoolTvl
    from bot import market_store

    pool = await _chain_pool(cfg)
    w3 = pool.w3
    out: list[SignalReading] = []
    try:
        for p in cfg.tvl_pools:
            label = str(p["label"])
            tokens = [(p["feed0"], p.get("heartbeat0", 86400)), (p["feed1"], p.get("heartbeat1", 86400))]
            prices = [await ChainlinkFeed(w3, feed, f"{label}:token{i}", heartbeat).read()
                      for i, (feed, heartbeat) in enumerate(tokens)]
            r = await PoolTvl(w3, p["address"], label).read(*prices)
            sources.append(r.as_dict())
            key = f"tvl:{label}"
            if r.value is None or r.as_of is None:
                out.append(SignalReading(S.TVL_DROP, None, f"{label}: TVL unknown: {r.reason}",
                                         {"subject": key}))
                continue
            if engine is None:
                out.append(SignalReading(S.TVL_DROP, None, f"{label}: no store (--no-state) "
                                         "for TVL history", {"subject": key}))
                continue
            market_store.record_tvl(engine, key, r.as_of, r.value, r.source)
            series = market_store.tvl_series(engine, key, r.as_of - 7 * 86400)
            # samples are stamped by the chain's clock: judge them at the latest block's time
            out.append(_about(S.tvl_drop(series, r.as_of, previous.get(f"{key}:{S.TVL_DROP}")),
                              key))
    finally:
        await pool.close()
    return out


async def _chain_pool(cfg: MarketSettings) -> Any:
    """The market chain's RPC pool over every URL of its [[chains]] entry (throttled at
    its rate_limit). The first URL that answers eth_chainId leads (RpcPool orders by
    health), so a dead first URL fails over; all dead: the readings say unknown with the
    reason. An RPC serving another chain than the configured chain_id is refused."""
    from adapters.evm.rpc import RpcPool
    from bot.errors import UserError

    chain = cfg.rpc_chain
    pool = RpcPool(list(chain.rpc_urls), timeout=cfg.timeout_s, rate_limit=chain.rate_limit)
    try:
        served = await pool.chain_id()
    except Exception:  # unreachable: each reading says so with its own reason
        return pool
    if chain.chain_id is not None and served != chain.chain_id:
        await pool.close()
        raise UserError(f"chains {chain.name}: the RPC serves chain {served}, "
                        f"not chain_id {chain.chain_id}")
    return pool


def state_keys(result: dict[str, Any]) -> dict[str, Level | None]:
    levels: dict[str, Level | None] = {}
    groups = [(r.underlying, r.signals) for r in result["regimes"]]
    for underlying, signals in [*groups, ("shared", tuple(result["shared"]))]:
        for s in signals:
            subject = s.evidence.get("subject")
            if subject is not None:
                levels[f"{subject}:{s.name}"] = s.level
            else:
                levels[f"{underlying}:{s.name}"] = s.level
    return levels
