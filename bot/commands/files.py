"""Output files of CLI commands: checked before any side effect, written whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

from bot.errors import UserError


def check_out_path(path: Path, flag: str) -> None:
    """``path`` (given as ``flag``) is a writable file path, known before anything is read,
    downloaded or written (a write error after the work read as an outside failure)."""
    if path.is_dir():
        raise UserError(f"{flag} {path} is a directory")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: {parent} is not a writable directory")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{flag} {path} is not writable")


def check_database(url: str, source: str) -> None:
    """The database a command will record into, checked before anything is read from the
    chain (a bad path used to fail after the read, the positions never shown), without
    creating anything: a SQLite file must be a SQLite database or not exist yet in a
    writable directory; any other URL must parse with its driver installed. ``source`` is
    what set the URL (``LPHEDGE_DB_PATH``, ``--db``...), named in the one line."""
    from bot.db.engine import db_error, is_memory, normalize_url, safe_db_url

    try:
        u = normalize_url(url)
        u.get_dialect().import_dbapi()
    except Exception as exc:  # unparsable URL, unknown dialect, driver missing
        raise UserError(f"{source}: {db_error(url, exc)}") from None
    if u.get_backend_name() != "sqlite" or is_memory(u):
        return
    path = Path(str(u.database))
    where = f"{source}: database {safe_db_url(url)}"
    if path.is_dir():
        raise UserError(f"{where} is a directory")
    if path.exists():
        with path.open("rb") as fh:
            head = fh.read(16)
        if head and head != b"SQLite format 3\0":
            raise UserError(f"{where} is not a SQLite database")
        if not os.access(path, os.R_OK | os.W_OK):
            raise UserError(f"{where} is not writable")
    elif not path.parent.is_dir():
        raise UserError(f"{where}: directory {path.parent} does not exist")
    elif not os.access(path.parent, os.W_OK | os.X_OK):
        raise UserError(f"{where}: directory {path.parent} is not writable")


MAX_UNIX_TIME = 4_102_444_800  # 2100-01-01T00:00:00Z


def check_unix_time(value: int | None, flag: str) -> None:
    """A --now given in unix seconds: a time the chain and the venues can have (a value in
    milliseconds or a negative one is refused by name, never turned into a date)."""
    if value is not None and not 0 < value <= MAX_UNIX_TIME:
        raise UserError(f"{flag} must be unix seconds in (0, {MAX_UNIX_TIME}] (up to 2100-01-01), got {value}")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (temp file in the same directory,
    then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
