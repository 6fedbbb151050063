"""`lphedge signals`: current market readings, signal levels and the regime per underlying;
`lphedge history download`: funding, OHLCV and DVOL history in the recorded CSV formats.

What is watched comes from a TOML file (bot/signals_config.py: ``--config``, or
``LPHEDGE_SIGNALS_CONFIG``);
see docs/signals.md. Every source is throttled and time-bounded; an unreachable,
stale or malformed source shows as unknown with its reason, never as a default.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.errors import UserError
from bot.signals_config import SignalsConfig, load_config
from policies import signals as S
from policies.types import Level, Regime, SignalReading

# a level last known longer ago than this is no hysteresis state for the next run
STATE_MAX_AGE_S = 86400


def _level(level: Level | None) -> str:
    return "unknown" if level is None else level.name.lower()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Level):
        return value.name.lower()
    return value


def signal_dict(s: SignalReading) -> dict[str, Any]:
    return {"name": s.name, "level": _level(s.level), "reason": s.reason,
            "evidence": _jsonable(s.evidence)}


async def collect(cfg: SignalsConfig, now: int, previous: dict[str, Level | None],
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


async def _shared_signals(cfg: SignalsConfig, now: int, previous: dict[str, Level | None],
                          sources: list[dict[str, Any]], engine: Any) -> list[SignalReading]:
    """Depeg per stable asset, pool and protocol TVL drops: shared by every underlying."""
    from adapters.market.base import Reading
    from adapters.market.defillama import DefiLlama
    from adapters.market.stables import CexBook, ChainlinkFeed, UniswapStablePool, to_peg_quote

    readings: dict[str, list[Reading]] = {}
    if cfg.feeds or cfg.pools:
        from web3 import AsyncHTTPProvider, AsyncWeb3

        w3 = AsyncWeb3(AsyncHTTPProvider(cfg.rpc_url, request_kwargs={"timeout": cfg.timeout_s}))
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
            await w3.provider.disconnect()
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


async def _pool_tvl_signals(cfg: SignalsConfig, now: int, previous: dict[str, Level | None],
                            sources: list[dict[str, Any]], engine: Any) -> list[SignalReading]:
    """Pool TVL now (balances x Chainlink prices), stored, and its drop over 48 h."""
    from web3 import AsyncHTTPProvider, AsyncWeb3

    from adapters.market.stables import ChainlinkFeed
    from adapters.market.tvl import PoolTvl
    from bot import market_store

    w3 = AsyncWeb3(AsyncHTTPProvider(cfg.rpc_url, request_kwargs={"timeout": cfg.timeout_s}))
    out: list[SignalReading] = []
    try:
        for p in cfg.tvl_pools:
            label = str(p["label"])
            prices = [await ChainlinkFeed(w3, p[f"feed{i}"], f"{label}:token{i}",
                                          int(p.get(f"heartbeat{i}", 86400))).read() for i in (0, 1)]
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
        await w3.provider.disconnect()
    return out


def _state_keys(result: dict[str, Any]) -> dict[str, Level | None]:
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


def render(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "now": result["now"],
        "now_iso": datetime.fromtimestamp(result["now"], UTC).isoformat(),
        "regimes": [{"underlying": r.underlying, "level": _level(r.level), "reason": r.reason,
                     "signals": [signal_dict(s) for s in r.signals]}
                    for r in result["regimes"]],
        "shared_signals": [signal_dict(s) for s in result["shared"]],
        "sources": _jsonable(result["sources"]),
    }


def _print_human(out: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    groups = [(f"{reg['underlying']}: {reg['level']} — {reg['reason']}", reg["signals"])
              for reg in out["regimes"]]
    if not groups and out["shared_signals"]:
        groups = [("shared signals (no underlying configured)", out["shared_signals"])]
    for title, signals in groups:
        table = Table(title=title)
        table.add_column("signal")
        table.add_column("level")
        table.add_column("reason")
        for s in signals:
            style = {"calm": "green", "elevated": "yellow", "stress": "red",
                     "crisis": "bold red", "unknown": "magenta"}[s["level"]]
            table.add_row(s["name"], f"[{style}]{s['level']}[/]", s["reason"])
        console.print(table)
    unknown = [s for s in out["sources"] if s.get("status") == "unknown"]
    for s in unknown:
        console.print(f"[magenta]unknown[/] {s['name']}: {s.get('reason')}")


def _safe_db_url(url: str) -> str:
    """The database URL with its password hidden (it goes to stderr and logs)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even a URL: say so without echoing it
        return "<unparsable database_url>"


def _check_download_args(kind: str, venue: str | None, symbol: str | None,
                         timeframe: str) -> None:
    """Arguments known before any request (they used to fail inside the download and read
    as "malformed response: ValueError: ...")."""
    import ccxt

    from adapters.market import download as dl
    from adapters.market.funding import DEFAULT_SYMBOLS

    if venue is not None and not hasattr(ccxt, venue):
        raise UserError(f"--venue {venue!r} is not a ccxt venue")
    if kind == "funding" and symbol is None and (venue or "binanceusdm") not in DEFAULT_SYMBOLS:
        raise UserError(f"--venue {venue!r} has no default perp symbol: give --symbol "
                        f"(or one of {', '.join(DEFAULT_SYMBOLS)})")
    if kind == "ohlcv" and timeframe not in dl.TIMEFRAMES:
        raise UserError(f"--timeframe {timeframe!r}: expected one of {', '.join(dl.TIMEFRAMES)}")


def _check_out(out: Path) -> None:
    """--out must be a writable file path, known before anything is downloaded (a write
    error after the download read as "venue unreachable: [Errno 21] ...")."""
    if out.is_dir():
        raise UserError(f"--out {out} is a directory")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: {parent} is not a writable directory")
    if out.exists() and not os.access(out, os.W_OK):
        raise UserError(f"--out {out} is not writable")


def _parse_day(text: str, what: str) -> int:
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return int(datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp())
        except ValueError:
            continue
    raise UserError(f"{what} {text!r}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ")


def register(app: typer.Typer) -> None:
    """Add `signals` and `history download` to the app."""

    @app.command("signals")
    def signals_cmd(
        json_out: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
        config: Annotated[str | None, typer.Option(help="signals TOML config")] = None,
        now: Annotated[int | None, typer.Option(help="evaluate at this unix time")] = None,
        no_state: Annotated[bool, typer.Option("--no-state", help="do not read/write hysteresis state")] = False,
    ) -> None:
        """Current market readings, signal levels with evidence, and the regime."""
        cfg = load_config(config)
        at = now if now is not None else int(time.time())
        engine = None
        previous: dict[str, Level | None] = {}
        if not no_state:
            from bot import market_store

            try:
                engine = market_store.make_engine(cfg.database_url)
                previous = market_store.load_levels(engine, at, STATE_MAX_AGE_S)
            except Exception as exc:
                raise UserError(f"database {_safe_db_url(cfg.database_url)}: "
                                f"{' '.join(str(exc).split())[:200]}") from None
        result = asyncio.run(collect(cfg, at, previous, engine))
        if engine is not None:
            from bot import market_store

            market_store.save_levels(engine, _state_keys(result), at)
        out = render(result)
        if json_out:
            sys.stdout.write(json.dumps(out, indent=2, sort_keys=True) + "\n")
        else:
            _print_human(out)

    history_app = typer.Typer(help="Market history files (CSV formats of the recorded set).",
                              no_args_is_help=True)
    app.add_typer(history_app, name="history")

    @history_app.command("download")
    def download_cmd(
        kind: Annotated[str, typer.Argument(help="funding | ohlcv | dvol")],
        out: Annotated[Path, typer.Option("--out", help="CSV file to write")],
        since: Annotated[str, typer.Option(help="start, YYYY-MM-DD (UTC)")],
        until: Annotated[str | None, typer.Option(help="end, YYYY-MM-DD (UTC); default now")] = None,
        venue: Annotated[str | None, typer.Option(help="ccxt venue id")] = None,
        symbol: Annotated[str | None, typer.Option(help="ccxt symbol, e.g. ETH/USDT")] = None,
        base: Annotated[str, typer.Option(help="underlying for funding/DVOL")] = "ETH",
        timeframe: Annotated[str, typer.Option(help="OHLCV bar size")] = "1h",
        api_url: Annotated[str | None, typer.Option(help="venue base URL override")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    ) -> None:
        """Download funding, OHLCV or DVOL history into the recorded CSV format."""
        from adapters.market import download as dl

        if kind not in dl.KINDS:
            raise UserError(f"kind {kind!r}: expected one of {', '.join(dl.KINDS)}")
        start = _parse_day(since, "--since")
        end = _parse_day(until, "--until") if until else int(time.time())
        if end <= start:
            raise UserError("--until must be after --since")
        _check_out(out)
        _check_download_args(kind, venue, symbol, timeframe)
        try:
            if kind == "funding":
                res = asyncio.run(dl.download_funding(venue or "binanceusdm", base, start, end,
                                                      out, symbol, api_url))
            elif kind == "ohlcv":
                res = asyncio.run(dl.download_ohlcv(venue or "binance", symbol or f"{base}/USDT",
                                                    timeframe, start, end, out, api_url))
            else:
                res = asyncio.run(dl.download_dvol(base, start, end, out, api_url))
        except UserError:
            raise
        except Exception as exc:
            from adapters.market.base import describe_error

            raise UserError(f"history download {kind}: {describe_error(exc, 20.0)}") from None
        info = {"kind": res.kind, "venue": res.venue, "symbol": res.symbol, "path": res.path,
                "rows": res.rows, "first_ts": res.first_ts, "last_ts": res.last_ts}
        if json_out:
            sys.stdout.write(json.dumps(info) + "\n")
        else:
            typer.echo(f"wrote {res.rows} rows of {res.kind} ({res.venue} {res.symbol}) "
                       f"to {res.path}")
