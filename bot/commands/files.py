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
