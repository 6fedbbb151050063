"""The bot's database: one engine factory, one session scope, one time type, one schema
(bot/db/models.py) and the Alembic migrations that create it (bot/db/migrations)."""

from __future__ import annotations

from sqlalchemy import Engine

from bot.db.engine import db_error, make_engine, normalize_url, safe_db_url, session_scope
from bot.db.types import UTCDateTime, utcnow

__all__ = ["UTCDateTime", "db_error", "make_engine", "normalize_url", "open_engine",
           "safe_db_url", "session_scope", "utcnow"]


def open_engine(url: str) -> Engine:
    """An engine for ``url`` with the schema migrated to head: what every store uses.
    A database that cannot be opened or migrated is one InvalidInput line (``db_error``)."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.db.migrate import upgrade
    from policies.errors import InvalidInput

    try:
        engine = make_engine(url)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise db_error(url, exc) from None
    try:
        upgrade(engine)
    except (SQLAlchemyError, ImportError, InvalidInput) as exc:
        engine.dispose()
        raise db_error(url, exc) from None
    return engine
