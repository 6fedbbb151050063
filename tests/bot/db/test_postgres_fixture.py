"""The PostgreSQL fixture fails (never skips) when the server binaries are missing, and the
server it runs is real: scram password auth on loopback, one fresh database per test."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.support import postgres as pg


def test_missing_binaries_fail_the_test_not_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("glob.glob", lambda pattern: [])
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert pg.find_bindir() is None
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL server binaries not found"):
        pg.start_server()


def test_each_test_gets_an_empty_database_of_its_own(postgres_server: pg.PostgresServer,
                                                     postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar() == \
                postgres_url.rsplit("/", 1)[1]
            assert conn.execute(text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            )).scalar() == 0
            assert conn.execute(text("SHOW password_encryption")).scalar() == "scram-sha-256"
    finally:
        engine.dispose()
    wrong = create_engine(postgres_url.replace(postgres_server.password, "nope"))
    with pytest.raises(Exception, match="password authentication failed"):
        wrong.connect()
    wrong.dispose()
