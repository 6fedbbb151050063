"""Every test here runs on both databases the bot supports: a SQLite file and a real
PostgreSQL server (tests/support/postgres.py, one fresh database per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bot.db.engine import make_engine

HERE = Path(__file__).resolve().parent


# PostgreSQL runs a server process: marked `cli` so `make test-fast` keeps only SQLite
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.cli)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lphedge.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    try:
        yield eng
    finally:
        eng.dispose()


def create_legacy_schema(engine: Engine) -> None:
    """The schema create_all made before migrations, frozen in legacy_schema_<dialect>.sql."""
    sql = (HERE / f"legacy_schema_{engine.dialect.name}.sql").read_text()
    statements = [s.strip() for s in sql.split(";")]
    with engine.begin() as conn:
        for stmt in statements:
            body = "\n".join(line for line in stmt.splitlines() if not line.startswith("--"))
            if body.strip():
                conn.exec_driver_sql(body)
