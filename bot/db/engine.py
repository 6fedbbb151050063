"""One engine factory and one session scope for every store.

``make_engine(url)`` takes any SQLAlchemy URL. SQLite gets the pragmas a daemon and a CLI
sharing one file need (foreign keys on, WAL for file databases, a busy timeout instead of
"database is locked"), and an in-memory URL gets one shared connection so every session
sees the same database. ``postgresql://`` (no driver) means psycopg 3, the driver lphedge
ships with (the ``postgres`` extra); ``postgresql+psycopg://`` is taken as given.
The schema is not created here: ``bot.db.migrate.upgrade`` does that.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

SQLITE_BUSY_TIMEOUT_MS = 5000


def normalize_url(url: str | URL) -> URL:
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def _is_memory(u: URL) -> bool:
    return u.database in (None, "", ":memory:") or "mode=memory" in str(u)


def make_engine(url: str | URL) -> Engine:
    """An engine for ``url`` (no tables created)."""
    u = normalize_url(url)
    kwargs: dict[str, Any] = {}
    if u.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False}
        if _is_memory(u):
            kwargs["poolclass"] = StaticPool
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(u, **kwargs)
    if u.get_backend_name() == "sqlite":
        memory = _is_memory(u)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error, always close."""
    session = Session(engine)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
