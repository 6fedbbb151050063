"""Schema management: Alembic migrations in bot/db/migrations, run by every store.

``upgrade(engine)`` brings a database to the newest revision (head). It is cheap when the
database is already there (one SELECT of ``alembic_version``), so stores call it each time
they open an engine instead of ``create_all``.

Databases made before migrations existed (by ``SQLModel.metadata.create_all``, some or all
of the seven tables, no ``alembic_version``) need no ``alembic stamp``: the first revision
(0001) is a baseline that creates only the tables that are missing and checks that each one
already there has the columns today's schema gives it (else it stops and names the table
and columns), so ``upgrade`` on such a database adopts it at revision 0001 and keeps its
rows. This is stamp-less detection by a baseline check.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.set_main_option(
            "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
        )
        cfg.attributes["engine"] = engine
    return cfg


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    rev = _script().get_current_head()
    assert rev is not None
    return rev


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate to ``revision``; returns (revision before, revision after)."""
    before = current(engine)
    target = head() if revision == "head" else revision
    if before == target:
        return before, before
    try:
        command.upgrade(alembic_config(engine), revision)
    except Exception:
        if current(engine) != target:  # not another process that migrated it meanwhile
            raise
    return before, current(engine)


def downgrade(engine: Engine, revision: str) -> tuple[str | None, str | None]:
    before = current(engine)
    command.downgrade(alembic_config(engine), revision)
    return before, current(engine)
