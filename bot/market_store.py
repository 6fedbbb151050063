"""Market history kept by the bot: TVL samples (pool on chain, protocol from DefiLlama),
so a drop over 48 hours is known intraday, and the last levels of each signal
(hysteresis state survives a restart).

SQLite by default; the engine and schema come from bot/db (models in bot/db/models.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.db import open_engine
from bot.db.models import SignalState, TvlSample
from policies.types import Level

__all__ = ["SignalState", "TvlSample", "load_levels", "make_engine", "record_tvl",
           "save_levels", "tvl_series"]


def make_engine(url: str) -> Engine:
    """The shared engine (bot.db) with the schema migrated to head."""
    return open_engine(url)


def record_tvl(engine: Engine, key: str, ts: int, tvl_usd: float, source: str) -> bool:
    """Store one sample (idempotent per key and ts); returns False if it was already there."""
    with Session(engine) as session:
        existing = session.exec(select(TvlSample).where(TvlSample.key == key,
                                                        TvlSample.ts == ts)).first()
        if existing is not None:
            return False
        session.add(TvlSample(key=key, ts=ts, tvl_usd=tvl_usd, source=source))
        session.commit()
        return True


def tvl_series(engine: Engine, key: str, since: int) -> list[tuple[int, float]]:
    with Session(engine) as session:
        rows: Sequence[TvlSample] = session.exec(
            select(TvlSample).where(TvlSample.key == key, TvlSample.ts >= since)
            .order_by(TvlSample.ts)).all()  # type: ignore[arg-type]
        return [(r.ts, r.tvl_usd) for r in rows]


def save_levels(engine: Engine, levels: dict[str, Level | None], ts: int) -> None:
    """Store each signal's level at ``ts``. An unknown reading (None) keeps the last known
    level and its time: one venue hiccup must not reset hysteresis (a level held inside
    its band would otherwise drop a step on recovery: a flap caused by an outage)."""
    with Session(engine) as session:
        for key, level in levels.items():
            row = session.get(SignalState, key)
            if level is None and row is not None and row.level is not None:
                continue  # keep the last known level, stamped when it was known
            row = row or SignalState(key=key)
            row.level = None if level is None else int(level)
            row.ts = ts
            session.add(row)
        session.commit()


def load_levels(engine: Engine, now: int | None = None,
                max_age_s: int | None = None) -> dict[str, Level | None]:
    """Last known level per signal; with ``now`` and ``max_age_s``, a level known longer
    ago than that is no hysteresis state any more (None)."""
    with Session(engine) as session:
        out: dict[str, Level | None] = {}
        for r in session.exec(select(SignalState)).all():
            expired = now is not None and max_age_s is not None and now - r.ts > max_age_s
            out[r.key] = None if r.level is None or expired else Level(r.level)
        return out
