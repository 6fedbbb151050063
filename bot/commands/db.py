"""`lphedge db`: the bot's database schema (Alembic migrations in bot/db/migrations).

``db upgrade`` brings the database to the newest revision (every store also does this when
it opens the database); ``db current`` says where it is; ``db downgrade REV`` undoes
revisions (``base`` drops every table of ours). The URL is the settings' database
(``DATABASE_URL`` / ``LPHEDGE_DB_PATH``) unless ``--db`` gives one. sqlalchemy and alembic
are imported inside the commands so that ``lphedge --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.errors import UserError

if TYPE_CHECKING:
    from sqlalchemy import Engine

DbOption = Annotated[
    str | None, typer.Option("--db", help="database URL (default: the settings' database)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _url(db: str | None) -> str:
    if db:
        import re

        # make_url's scheme pattern; the value is not echoed (it may carry a password)
        if not re.match(r"^[\w+]+://", db):
            raise UserError("database <unparsable database_url>: --db: Could not parse SQLAlchemy URL "
                            "(dialect[+driver]://..., e.g. sqlite:///lphedge.db)")
        return db
    from bot.settings import load_settings

    return load_settings().sqlalchemy_url


def _engine(url: str, *, create: bool = True) -> Engine | None:
    """An engine, checked by one connection; None for a SQLite file that does not exist
    when ``create`` is false (``db current`` must not create an empty file)."""
    from pathlib import Path

    from sqlalchemy.exc import SQLAlchemyError

    from bot.db.engine import db_error, is_memory, make_engine, normalize_url

    try:
        u = normalize_url(url)
        if (not create and u.get_backend_name() == "sqlite" and not is_memory(u)
                and not Path(str(u.database)).exists()):
            return None
        engine = make_engine(u)
        with engine.connect():
            pass
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise db_error(url, exc) from None
    return engine


def _run(url: str, what: Any) -> Any:
    """Run a migration step, every failure as one line naming the (safe) URL."""
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from bot.db.engine import db_error
    from policies.errors import InvalidInput

    try:
        return what()
    except CommandError as exc:  # e.g. an unknown revision
        raise db_error(url, InvalidInput(" ".join(str(exc).split()))) from None
    except (SQLAlchemyError, ImportError, InvalidInput) as exc:
        raise db_error(url, exc) from None


def _out(as_json: bool, data: dict[str, Any], line: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        print(line)


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(help="The bot's database: schema migrations (Alembic).",
                         no_args_is_help=True)
    app.add_typer(db_app, name="db")

    @db_app.command("upgrade")
    def upgrade_cmd(db: DbOption = None, as_json: JsonOption = False) -> None:
        """Migrate the database to the newest schema (adopting one made before migrations)."""
        from bot.db.engine import safe_db_url
        from bot.db.migrate import head, upgrade

        url = _url(db)
        engine = _engine(url)
        assert engine is not None
        try:
            m = _run(url, lambda: upgrade(engine))
        finally:
            engine.dispose()
        data = {"database": safe_db_url(url), "before": m.before, "after": m.after,
                "head": head(), "applied": list(m.applied)}
        line = (f"{data['database']}: upgraded {m.before or 'unversioned'} -> {m.after} "
                f"(applied {', '.join(m.applied)})" if m.applied
                else f"{data['database']}: already at head {m.after}")
        _out(as_json, data, line)

    @db_app.command("current")
    def current_cmd(db: DbOption = None, as_json: JsonOption = False) -> None:
        """The database's schema revision and the newest one."""
        from bot.db.engine import safe_db_url
        from bot.db.migrate import current, head

        url = _url(db)
        engine = _engine(url, create=False)
        try:
            rev = None if engine is None else _run(url, lambda: current(engine))
        finally:
            if engine is not None:
                engine.dispose()
        data = {"database": safe_db_url(url), "current": rev, "head": head(),
                "up_to_date": rev == head()}
        line = (f"{data['database']}: at {rev or 'no revision'}"
                + (" (head)" if rev == head() else f" (head is {head()}: run `lphedge db upgrade`)"))
        _out(as_json, data, line)

    @db_app.command("downgrade")
    def downgrade_cmd(
        revision: Annotated[str, typer.Argument(help="revision to go down to, or 'base'")],
        db: DbOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Undo revisions down to REVISION ('base' drops every table of the bot: data lost)."""
        import re

        from bot.db.engine import safe_db_url
        from bot.db.migrate import downgrade, revisions

        url = _url(db)
        known = revisions()
        if not (revision == "base" or re.fullmatch(r"-\d+", revision)
                or any(r.startswith(revision) for r in known)):
            # named before the database is opened (opening creates a missing SQLite file)
            raise UserError(f"database {safe_db_url(url)}: REVISION {revision!r} is not a revision "
                            f"(one of base, {', '.join(known)}, -N)")
        engine = _engine(url)
        assert engine is not None
        try:
            m = _run(url, lambda: downgrade(engine, revision))
        finally:
            engine.dispose()
        data = {"database": safe_db_url(url), "before": m.before, "after": m.after,
                "undone": list(m.applied)}
        _out(as_json, data, f"{data['database']}: downgraded {m.before or 'unversioned'} -> {m.after or 'base'}"
                            f" (undid {', '.join(m.applied) or 'nothing'})")
