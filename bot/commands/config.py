"""`lphedge config check`: the resolved settings (bot/settings.py) with every secret masked
and where each value came from; a bad field is one line naming its path (exit 2).

Masked: URLs are cut to scheme://host[:port] (adapters/redact.py: API keys live in paths,
queries and userinfo), database URLs keep everything but the password. Key material is
never read: for a key named by env variable or file, only whether it is there is shown.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

config_app = typer.Typer(help="The settings tree (env, .env, one TOML file).", no_args_is_help=True)


def masked(doc: dict[str, Any]) -> dict[str, Any]:
    """The settings dump with every secret masked."""
    from adapters.redact import redact_urls
    from bot.db.engine import safe_db_url

    def walk(value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, path) for v in value]
        if isinstance(value, str):
            if path == ("db", "url"):
                # the password hidden, and any other URL in it (a query) cut like the rest
                return redact_urls(safe_db_url(value)) if "?" in value else safe_db_url(value)
            return redact_urls(value)
        return value

    out: dict[str, Any] = walk(doc, ())
    return out


def key_status(settings: Any) -> dict[str, str]:
    """For each key named by env variable or file: whether it is there (never its value)."""
    import os
    from pathlib import Path

    out: dict[str, str] = {}
    named: list[tuple[str, Any]] = []
    for name, venue in settings.venues.items():
        named += [(f"venues.{name}.{f}", getattr(venue, f)) for f in
                  ("api_key_env", "api_key_file", "api_secret_env", "api_secret_file")]
    for i, sink in enumerate(settings.alerts.sinks):
        named += [(f"alerts.sinks.{i}.{f}", getattr(sink, f)) for f in
                  ("url_env", "url_file", "secret_env", "secret_file")]
    named.append(("api.token_file", settings.api.token_file))
    for where, ref in named:
        if ref is None:
            continue
        if where.endswith("_env"):
            out[where] = f"{ref}: {'set' if os.environ.get(str(ref)) else 'NOT SET'}"
        else:
            out[where] = f"{ref}: {'present' if Path(ref).is_file() else 'MISSING'}"
    return out


def _check_db_url(url: str) -> None:
    from sqlalchemy.engine import make_url

    from bot.errors import UserError

    try:
        make_url(url)
    except Exception:
        raise UserError("setting db.url: not a SQLAlchemy URL (dialect[+driver]://..., "
                        "e.g. sqlite:///lphedge.db)") from None


def _flat(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        return [kv for k, v in value.items() for kv in _flat(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [kv for i, v in enumerate(value) for kv in _flat(v, f"{path}.{i}")]
    return [(path, value)]


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


@config_app.command("check")
def check(
    config: Annotated[str | None, typer.Option("--config", help="TOML config file (default: LPHEDGE_CONFIG)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Resolve the settings from every source and print them, secrets masked."""
    from bot.settings import load_settings

    settings = load_settings(config)
    _check_db_url(settings.sqlalchemy_url)
    doc = masked(settings.model_dump(mode="json"))
    origins = settings.origins
    keys = key_status(settings)
    if as_json:
        sys.stdout.write(json.dumps({"settings": doc, "sources": origins, "keys": keys},
                                    indent=2, sort_keys=True) + "\n")
        return
    for path, value in _flat(doc):
        origin = origins.get(path, "default")
        typer.echo(f"{path} = {json.dumps(value)}  # {origin}")
    for path, status in keys.items():
        typer.echo(f"# {path}: {status}")
