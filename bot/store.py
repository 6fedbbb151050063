"""Repository of watched positions and their snapshots (tables in bot/db/models.py).

Like every store: built on an engine from ``bot.db.open_engine`` (schema migrated to head)
or a URL it opens so, and every unit of work is one ``bot.db.session_scope``. Chain
integers (liquidity, amounts, fee growth) exceed 64 bits, so they are stored as decimal
text and read back exactly.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import select

from bot.db import open_engine, safe_db_url, session_scope, utcnow
from bot.db.models import PositionSnapshot, WatchedPosition
from policies.lp_math import PositionMetrics
from policies.types import Position

__all__ = ["PositionSnapshot", "PositionStore", "WatchedPosition", "safe_db_url", "utcnow"]


class PositionStore:
    def __init__(self, db: Engine | str) -> None:
        self.engine = open_engine(db) if isinstance(db, str) else db

    def record(self, chain_id: int, rows: list[tuple[Position, PositionMetrics]],
               at: datetime | None = None) -> int:
        """Upsert the watched positions and append one snapshot each, in one transaction."""
        at = at or utcnow()
        with session_scope(self.engine) as session:
            for pos, m in rows:
                key = (chain_id, pos.position_manager, str(pos.token_id))
                watched = session.exec(
                    select(WatchedPosition).where(
                        WatchedPosition.chain_id == key[0],
                        WatchedPosition.position_manager == key[1],
                        WatchedPosition.token_id == key[2],
                    )
                ).first()
                if watched is None:
                    watched = WatchedPosition(
                        chain_id=chain_id, position_manager=pos.position_manager,
                        token_id=str(pos.token_id), owner=pos.owner, pool=pos.pool.address,
                        token0=pos.pool.token0.address, token1=pos.pool.token1.address,
                        fee=pos.pool.fee, tick_lower=pos.tick_lower, tick_upper=pos.tick_upper,
                        first_seen=at,
                    )
                watched.owner, watched.last_seen = pos.owner, at
                session.add(watched)
                session.add(
                    PositionSnapshot(
                        taken_at=at, chain_id=chain_id, position_manager=pos.position_manager,
                        token_id=str(pos.token_id), tick=pos.pool.tick,
                        sqrt_price_x96=str(pos.pool.sqrt_price_x96), liquidity=str(pos.liquidity),
                        amount0=str(m.amount0), amount1=str(m.amount1), fees0=str(m.fees0),
                        fees1=str(m.fees1), in_range=m.in_range, price=m.price, value=m.value,
                        fees_value=m.fees_value, delta=m.delta, gamma=m.gamma,
                    )
                )
        return len(rows)
