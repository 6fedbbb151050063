"""One engine factory and one session scope for every store.

``make_engine(url)`` takes any SQLAlchemy URL. SQLite gets the pragmas a daemon and a CLI
sharing one file need (foreign keys on, WAL for file databases, a busy timeout instead of
"database is locked"), and an in-memory URL gets one shared connection so every session
sees the same database. ``postgresql://`` (no driver) means psycopg 3, the driver lphedge
ships with (the ``postgres`` extra); ``postgresql+psycopg://`` is taken as given.
The schema is not created here: ``bot.db.migrate.upgrade`` does that.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from policies.errors import InvalidInput

SQLITE_BUSY_TIMEOUT_MS = 5000


def safe_db_url(url: str | URL) -> str:
    """The database URL with its password hidden, fit for stderr and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even a URL: say so without echoing it
        return "<unparsable database_url>"


def db_error(url: str | URL, exc: BaseException) -> InvalidInput:
    """One line for a database that cannot be opened or migrated (bad URL, missing driver,
    unwritable SQLite path, server down, wrong password), naming the URL with its password
    hidden and never echoing the password, whatever the driver put in its message."""
    if isinstance(exc, InvalidInput):  # already ours (e.g. SchemaMismatch): just say where
        reason = str(exc)
    elif isinstance(exc, ImportError):  # the dialect's DBAPI module (psycopg) is missing
        reason = (f"its driver is not installed (no module {exc.name or '?'}); for PostgreSQL: "
                  "pip install 'lphedge[postgres]'")
    else:
        orig = getattr(exc, "orig", None)  # the DBAPI's own error, without SQLAlchemy's links
        text = str(orig if orig is not None else exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        if "Can't load plugin" in reason:
            reason = f"unknown database driver ({reason.split(':')[-1].strip()})"
    try:
        password = make_url(url).password
    except Exception:
        password = None
    if password:  # as a token of its own, so that a password "b" leaves "database" alone
        reason = re.sub(rf"(?<![A-Za-z0-9]){re.escape(str(password))}(?![A-Za-z0-9])", "***",
                        reason)
    return InvalidInput(f"database {safe_db_url(url)}: {' '.join(reason.split())}")


def normalize_url(url: str | URL) -> URL:
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def is_memory(u: URL) -> bool:
    return u.database in (None, "", ":memory:") or "mode=memory" in str(u)


def make_engine(url: str | URL) -> Engine:
    """An engine for ``url`` (no tables created)."""
    u = normalize_url(url)
    kwargs: dict[str, Any] = {}
    if u.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False}
        if is_memory(u):
            kwargs["poolclass"] = StaticPool
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(u, **kwargs)
    if u.get_backend_name() == "sqlite":
        memory = is_memory(u)

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
    # rows stay readable after the scope (repositories return them): no expiry on commit
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
