"""`lphedge signals`: current market readings, signal levels and the regime per underlying;
`lphedge history download`: funding, OHLCV and DVOL history in the recorded CSV formats.

What is watched is the [market] section (and [[chains]], [db]) of the one config file
(bot/settings.py: ``--config`` or ``LPHEDGE_CONFIG``, env ``LPHEDGE_MARKET__*``);
see docs/signals.md. Every source is throttled and time-bounded; an unreachable,
stale or malformed source shows as unknown with its reason, never as a default.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.errors import UserError
from policies.types import Level, SignalReading


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
    from bot.commands.files import check_out_path

    check_out_path(out, "--out")


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
        config: Annotated[str | None, typer.Option(help="lphedge TOML config ([market], [[chains]], [db]); default LPHEDGE_CONFIG")] = None,
        now: Annotated[int | None, typer.Option(help="evaluate at this unix time")] = None,
        no_state: Annotated[bool, typer.Option("--no-state", help="do not read/write hysteresis state")] = False,
    ) -> None:
        """Current market readings, signal levels with evidence, and the regime."""
        from bot.commands.files import check_unix_time
        from bot.market_signals import STATE_MAX_AGE_S, collect  # ccxt, web3: only when run
        from bot.settings import load_settings
        from bot.store import safe_db_url

        check_unix_time(now, "--now")
        settings = load_settings(config, label="signals config")
        cfg, db_url = settings.market, settings.sqlalchemy_url
        at = now if now is not None else int(time.time())
        engine = None
        previous: dict[str, Level | None] = {}
        if not no_state:
            from bot.db import open_engine
            from bot.market_store import MarketStore

            try:
                engine = open_engine(db_url)
                previous = MarketStore(engine).load_levels(at, STATE_MAX_AGE_S)
            except UserError:  # open_engine's one line already names the (safe) URL
                raise
            except Exception as exc:
                raise UserError(f"database {safe_db_url(db_url)}: "
                                f"{' '.join(str(exc).split())[:200]}") from None
        snapshot = asyncio.run(collect(cfg, at, previous, engine))
        if engine is not None:
            from bot.market_store import MarketStore

            MarketStore(engine).save_levels(snapshot.levels(), at)
        out = render(snapshot.as_result())
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
        if api_url is not None and not api_url.startswith(("http://", "https://")):
            raise UserError("--api-url must be an http(s) URL")
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
