"""The one time type of the bot's database: a UTC-aware ``datetime``.

It is sqlmodel's ``UTCDateTime`` (a ``DateTime(timezone=True)`` column, the type
create_all made before migrations existed, so the baseline schema is unchanged): naive
values are refused, aware values are converted to UTC before they are stored, so SQLite
(text, no offset) and PostgreSQL (``timestamptz``) hold the same instant; read back, every
value is aware with tzinfo=UTC. Every datetime column names it explicitly (``sa_type``), and
``utcnow`` is the one default.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel.sql.sqltypes import UTCDateTime

__all__ = ["UTCDateTime", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)
