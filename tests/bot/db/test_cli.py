"""`lphedge db upgrade|current|downgrade` through the real entry point (bot.cli.main, in
process): JSON and text on both databases, and every way of failing to open the database
as one line on stderr, exit 2, the password never shown, nothing created."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.db.engine import make_engine
from bot.db.migrate import current, head, revisions
from tests.bot.db.conftest import create_legacy_schema
from tests.support.postgres import PostgresServer


def lphedge(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            *args: str) -> tuple[int, str, str]:
    from bot.cli import main

    monkeypatch.setattr(sys, "argv", ["lphedge", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def run_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             *args: str) -> Any:
    code, out, err = lphedge(monkeypatch, capsys, *args, "--json")
    assert (code, err) == (0, ""), err
    return json.loads(out)


def assert_one_line_error(code: int, out: str, err: str, *needles: str,
                          secret: str = "") -> None:
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: database "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    if secret:
        assert secret not in err


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k in ("DATABASE_URL", "LPHEDGE_DATABASE_URL", "LPHEDGE_DB_PATH", "LPHEDGE_CONFIG"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_upgrade_current_downgrade_json(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    cur = run_json(monkeypatch, capsys, "db", "current", "--db", db_url)
    assert (cur["current"], cur["head"], cur["up_to_date"]) == (None, head(), False)
    up = run_json(monkeypatch, capsys, "db", "upgrade", "--db", db_url)
    assert (up["before"], up["after"], up["head"], up["applied"]) == (None, head(), head(), revisions())
    assert "***" in up["database"] or db_url.startswith("sqlite")
    assert run_json(monkeypatch, capsys, "db", "upgrade", "--db", db_url)["applied"] == []
    cur = run_json(monkeypatch, capsys, "db", "current", "--db", db_url)
    assert (cur["current"], cur["up_to_date"]) == (head(), True)
    down = run_json(monkeypatch, capsys, "db", "downgrade", "base", "--db", db_url)
    assert (down["before"], down["after"], down["undone"]) == (head(), None, revisions()[::-1])
    engine = make_engine(db_url)
    try:
        assert current(engine) is None
    finally:
        engine.dispose()


def test_text_output_and_the_settings_database(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    code, out, err = lphedge(monkeypatch, capsys, "db", "current")
    assert (code, err) == (0, "") and out == (
        f"sqlite:///{db}: at no revision (head is {head()}: run `lphedge db upgrade`)\n")
    assert not db.exists()  # `current` does not create the file
    code, out, _ = lphedge(monkeypatch, capsys, "db", "upgrade")
    assert code == 0 and out == (f"sqlite:///{db}: upgraded unversioned -> {head()} "
                                 f"(applied {', '.join(revisions())})\n")
    code, out, _ = lphedge(monkeypatch, capsys, "db", "upgrade")
    assert code == 0 and out == f"sqlite:///{db}: already at head {head()}\n"
    code, out, _ = lphedge(monkeypatch, capsys, "db", "current")
    assert code == 0 and out == f"sqlite:///{db}: at {head()} (head)\n"


def test_upgrade_adopts_a_legacy_database(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    engine = make_engine(db_url)
    create_legacy_schema(engine)
    engine.dispose()
    up = run_json(monkeypatch, capsys, "db", "upgrade", "--db", db_url)
    assert (up["before"], up["after"], up["applied"]) == (None, head(), revisions())


def test_a_foreign_table_is_one_line(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    engine = make_engine(db_url)
    create_legacy_schema(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE governance_override ADD COLUMN note VARCHAR")
    engine.dispose()
    code, out, err = lphedge(monkeypatch, capsys, "db", "upgrade", "--db", db_url)
    assert_one_line_error(code, out, err, "table governance_override", "unexpected columns note",
                          "missing columns none")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once it is closed


@pytest.mark.parametrize("cmd", [["upgrade"], ["current"], ["downgrade", "base"]])
def test_unreachable_server_hides_the_password(cmd: list[str], monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql://lphedge:hunter2secret@127.0.0.1:{_closed_port()}/bot"
    code, out, err = lphedge(monkeypatch, capsys, "db", *cmd, "--db", url)
    assert_one_line_error(code, out, err, "Connection refused", secret="hunter2secret")


def test_wrong_password_on_a_real_server(postgres_server: PostgresServer,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql+psycopg://lphedge:wrong-pw-123@127.0.0.1:{postgres_server.port}/postgres"
    code, out, err = lphedge(monkeypatch, capsys, "db", "upgrade", "--db", url)
    assert_one_line_error(code, out, err, "password authentication failed", secret="wrong-pw-123")
    assert postgres_server.password not in err


def test_psycopg_missing(monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails
    url = "postgresql+psycopg://lphedge:hunter2secret@127.0.0.1:5432/bot"
    code, out, err = lphedge(monkeypatch, capsys, "db", "upgrade", "--db", url)
    assert_one_line_error(code, out, err, "driver is not installed (no module psycopg)",
                          "lphedge[postgres]", secret="hunter2secret")


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("not a url", "--db: Could not parse SQLAlchemy URL"),
        ("nosuchdb://u:hunter2secret@h/d", "unknown database driver (nosuchdb)"),
        ("sqlite:////proc/lphedge-nope/bot.db", "unable to open database file"),
    ],
)
def test_bad_url_or_unwritable_path(url: str, needle: str, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = lphedge(monkeypatch, capsys, "db", "upgrade", "--db", url)
    assert_one_line_error(code, out, err, needle, secret="hunter2secret")


def test_unknown_revision(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                          tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    run_json(monkeypatch, capsys, "db", "upgrade", "--db", url)
    code, out, err = lphedge(monkeypatch, capsys, "db", "downgrade", "nope", "--db", url)
    assert_one_line_error(code, out, err, "REVISION 'nope' is not a revision")
    engine = make_engine(url)
    try:
        assert current(engine) == head()  # nothing undone
    finally:
        engine.dispose()
