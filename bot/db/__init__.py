"""The bot's database: one engine factory, one session scope, one time type, one schema
(bot/db/models.py) and the Alembic migrations that create it (bot/db/migrations)."""

from __future__ import annotations

from sqlalchemy import Engine

from bot.db.engine import make_engine, normalize_url, session_scope
from bot.db.types import UTCDateTime, utcnow

__all__ = ["UTCDateTime", "make_engine", "normalize_url", "open_engine", "session_scope",
           "utcnow"]


def open_engine(url: str) -> Engine:
    """An engine for ``url`` with the schema migrated to head: what every store uses."""
    from bot.db.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    return engine
