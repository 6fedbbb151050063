"""Alembic environment for lphedge. Run from code (bot.db.migrate passes the engine in
``config.attributes["engine"]``) or from the alembic CLI with ``sqlalchemy.url`` set.
SQLite gets batch mode (render_as_batch) so ALTERs become copy-and-move."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import Connection, Engine, text
from sqlmodel import SQLModel

import bot.db.models  # noqa: F401  (every table on SQLModel.metadata)
from bot.db.engine import make_engine

config = context.config
target_metadata = SQLModel.metadata


def _engine() -> Engine:
    engine = config.attributes.get("engine")
    if isinstance(engine, Engine):
        return engine
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: set sqlalchemy.url or pass an engine")
    return make_engine(url)


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=bool(url and url.startswith("sqlite")),
    )
    with context.begin_transaction():
        context.run_migrations()


# Any fixed 64-bit number: the PostgreSQL advisory lock every lphedge migration takes.
PG_MIGRATION_LOCK = 0x6C70686564676501


def _lock(connection: Connection) -> None:
    """Serialize migrations across processes and hosts: the second one waits, then finds
    the database at head and does nothing. PostgreSQL: a transaction-scoped advisory lock
    (released at commit). SQLite: BEGIN IMMEDIATE takes the write lock up front (waiting
    up to the busy timeout), and makes the whole upgrade one transaction, so a refused
    baseline leaves nothing half-written even though pysqlite would autocommit DDL."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_MIGRATION_LOCK})
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _record(ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any],
            run_args: Mapping[str, Any]) -> None:
    # the revision applied (upgrade) or undone (downgrade), for bot.db.migrate to report
    config.attributes.setdefault("applied", []).append(step.up_revision_id)


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection, connection.begin():
        # one outer transaction (alembic sees it as external and runs inside it)
        _lock(connection)
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            on_version_apply=_record,
        )
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
