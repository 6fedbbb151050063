"""Repository of market history kept by the bot: TVL samples (pool on chain, protocol from
DefiLlama), so a drop over 48 hours is known intraday, and the last levels of each signal
(hysteresis state survives a restart). Tables in bot/db/models.py.

Like every store: built on an engine from ``bot.db.open_engine`` (schema migrated to head)
or a URL it opens so, and every unit of work is one ``bot.db.session_scope``. Times are unix
seconds (see bot/db/types.py for why these columns are not datetimes).
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.db import open_engine, session_scope
from bot.db.models import SignalState, TvlSample
from policies.types import Level

__all__ = ["MarketStore", "SignalState", "TvlSample"]


class MarketStore:
    def __init__(self, db: Engine | str) -> None:
        self.engine = open_engine(db) if isinstance(db, str) else db

    def record_tvl(self, key: str, ts: int, tvl_usd: float, source: str) -> bool:
        """Store one sample (idempotent per key and ts); False if it was already there."""
        with session_scope(self.engine) as session:
            existing = session.exec(select(TvlSample).where(TvlSample.key == key,
                                                            TvlSample.ts == ts)).first()
            if existing is not None:
                return False
            session.add(TvlSample(key=key, ts=ts, tvl_usd=tvl_usd, source=source))
            return True

    def tvl_series(self, key: str, since: int) -> list[tuple[int, float]]:
        with session_scope(self.engine) as session:
            rows = session.exec(select(TvlSample).where(TvlSample.key == key, TvlSample.ts >= since)
                                .order_by(col(TvlSample.ts))).all()
            return [(r.ts, r.tvl_usd) for r in rows]

    def save_levels(self, levels: dict[str, Level | None], ts: int) -> None:
        """Store each signal's level at ``ts``. An unknown reading (None) keeps the last known
        level and its time: one venue hiccup must not reset hysteresis (a level held inside
        its band would otherwise drop a step on recovery: a flap caused by an outage)."""
        with session_scope(self.engine) as session:
            for key, level in levels.items():
                row = session.get(SignalState, key)
                if level is None and row is not None and row.level is not None:
                    continue  # keep the last known level, stamped when it was known
                row = row or SignalState(key=key)
                row.level = None if level is None else int(level)
                row.ts = ts
                session.add(row)

    def load_levels(self, now: int | None = None,
                    max_age_s: int | None = None) -> dict[str, Level | None]:
        """Last known level per signal; with ``now`` and ``max_age_s``, a level known longer
        ago than that is no hysteresis state any more (None)."""
        with session_scope(self.engine) as session:
            out: dict[str, Level | None] = {}
            for r in session.exec(select(SignalState)).all():
                expired = now is not None and max_age_s is not None and now - r.ts > max_age_s
                out[r.key] = None if r.level is None or expired else Level(r.level)
            return out

