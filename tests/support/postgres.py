"""A real, throwaway PostgreSQL server for the suite (Debian package ``postgresql``).

``postgres_server`` (one per test session and xdist worker) runs ``initdb`` into a fresh
temp dir, starts ``postgres`` on a free loopback port with a random password (scram on
TCP), and removes it all at the end. ``postgres_url`` gives each test a database of its
own (``CREATE DATABASE`` per test, dropped afterwards), as a SQLAlchemy URL
``postgresql+psycopg://lphedge:<password>@127.0.0.1:<port>/<db>``.

PostgreSQL refuses to run as root; when the suite runs as root (CI containers) the server
commands run as the ``postgres`` user through ``runuser`` and the temp dir is handed to it.
Missing binaries fail the tests that need them (``make test`` installs the package): a
skipped database test would be a migration nobody ran.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

USER = "lphedge"


def find_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<v>/bin with initdb, else initdb on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    bindir: Path
    root: Path
    port: int = 0
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    run_as: str | None = None  # OS user the server runs as (None: the current one)
    started_in_s: float = 0.0

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _cmd(self, *argv: str) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *argv] if self.run_as else list(argv)

    def _run(self, *argv: str, timeout: float = 120) -> None:
        out = subprocess.run(self._cmd(*argv), cwd=self.root, capture_output=True, text=True,
                             timeout=timeout)
        if out.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{Path(argv[0]).name} failed ({out.returncode}): "
                               f"{out.stderr.strip()[-2000:]}\n{tail}")

    def start(self) -> None:
        t0 = time.monotonic()
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        (self.root / "sock").mkdir()
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            for p in (self.root, pwfile, self.root / "sock"):
                os.chown(p, entry.pw_uid, entry.pw_gid)
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER,
                  f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        pwfile.unlink()
        for attempt in range(5):  # the port is free when picked, maybe not when bound
            self.port = _free_port()
            opts = (f"-h 127.0.0.1 -p {self.port} -k {self.root / 'sock'} -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                          str(self.root / "server.log"), "-o", opts, "-w", "-t", "60", "start")
                break
            except RuntimeError:
                if attempt == 4:
                    raise
        self.started_in_s = time.monotonic() - t0

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m",
                                     "immediate", "-w", "stop"),
                           cwd=self.root, capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER,
                             password=self.password, dbname="postgres", autocommit=True) as conn:
            conn.execute(sql.encode())  # names are generated below, never input

    def create_database(self) -> str:
        name = "t_" + secrets.token_hex(6)
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_server() -> PostgresServer:
    bindir = find_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, "
                    "no initdb on PATH): run `make bootstrap` or "
                    "`apt-get install -y postgresql`", pytrace=False)
    run_as = None
    if os.geteuid() == 0:  # postgres refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root and there is no `postgres` user to run PostgreSQL as",
                        pytrace=False)
        run_as = "postgres"
    server = PostgresServer(bindir, Path(tempfile.mkdtemp(prefix="lphedge-pg-")), run_as=run_as)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server, for this test only."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)
