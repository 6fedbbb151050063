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
from typing import NamedTuple

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from policies.errors import InvalidInput

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaMismatch(InvalidInput):
    """A table already in the database is not the one the migrations expect."""


class Migrated(NamedTuple):
    before: str | None  # revision before (None: no alembic_version, empty or pre-migration)
    after: str | None  # revision after (None: base)
    applied: tuple[str, ...]  # revisions this call applied (upgrade) or undid (downgrade)


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


def revisions() -> list[str]:
    """Every revision, oldest first (one linear history)."""
    return [r.revision for r in reversed(list(_script().walk_revisions()))]


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> Migrated:
    """Migrate to ``revision``. Safe to run from several processes at once: env.py takes a
    lock (see there), so one applies each revision and the others find it done."""
    before = current(engine)
    if before == (head() if revision == "head" else revision):
        return Migrated(before, before, ())
    cfg = alembic_config(engine)
    command.upgrade(cfg, revision)
    return Migrated(before, current(engine), tuple(cfg.attributes.get("applied", ())))


def downgrade(engine: Engine, revision: str) -> Migrated:
    """Undo revisions down to ``revision`` ("base": drop every table of ours)."""
    before = current(engine)
    cfg = alembic_config(engine)
    command.downgrade(cfg, revision)
    return Migrated(before, current(engine), tuple(cfg.attributes.get("applied", ())))
