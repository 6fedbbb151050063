"""The one time type of the bot's database: a UTC-aware ``datetime``.

It is sqlmodel's ``UTCDateTime`` (a ``DateTime(timezone=True)`` column, the type
create_all made before migrations existed, so the baseline schema is unchanged): naive
values are refused, aware values are converted to UTC before they are stored, so SQLite
(text, no offset) and PostgreSQL (``timestamptz``) hold the same instant; read back, every
value is aware with tzinfo=UTC. Every column that records when the bot did something
(``*_at``, ``first_seen``/``last_seen``) is this type, names it explicitly (``sa_type``),
and defaults to ``utcnow``.

Columns that stay integer unix seconds, on purpose (they are data, not bookkeeping):

- ``governance_override.expiry``: the ``expiry`` field of the signed EIP-712 override
  message (a uint); the stored value must be that exact integer, compared with the
  ``now`` the caller passes.
- ``market_tvl_sample.ts``, ``market_signal_state.ts``: when a market value was true, as
  the market adapters and the pure signal code (policies/, no datetime, no clock) carry it;
  queries compare them with integer ``now`` and windows (48 h drop, state max age).
- the hedge book's ``expiry`` (option expiry), ``since`` (layer engaged, for hysteresis
  and cooldown in policies/) and a budget fill's ``ts``: integers in the pure domain types
  they are loaded into.

Converting them would add a datetime<->int step at every boundary for no gain in meaning.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel.sql.sqltypes import UTCDateTime

__all__ = ["UTCDateTime", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)
