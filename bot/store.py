"""Persistent state (sqlmodel): watched positions and their snapshots.

SQLite by default, any SQLAlchemy URL through DATABASE_URL. Chain integers
(liquidity, amounts, fee growth) exceed 64 bits, so they are stored as decimal
text and read back exactly; floats only for value and greeks.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, UniqueConstraint
from sqlmodel import Field, Session, SQLModel, create_engine, select

from policies.lp_math import PositionMetrics
from policies.types import Position


def utcnow() -> datetime:
    return datetime.now(UTC)


class WatchedPosition(SQLModel, table=True):
    __tablename__ = "watched_position"
    __table_args__ = (UniqueConstraint("chain_id", "position_manager", "token_id"),)

    id: int | None = Field(default=None, primary_key=True)
    chain_id: int
    position_manager: str
    token_id: str  # uint256 as decimal text
    owner: str
    pool: str
    token0: str
    token1: str
    fee: int
    tick_lower: int
    tick_upper: int
    first_seen: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)


class PositionSnapshot(SQLModel, table=True):
    __tablename__ = "position_snapshot"

    id: int | None = Field(default=None, primary_key=True)
    taken_at: datetime = Field(default_factory=utcnow, index=True)
    chain_id: int
    position_manager: str
    token_id: str = Field(index=True)
    tick: int
    sqrt_price_x96: str
    liquidity: str
    amount0: str
    amount1: str
    fees0: str
    fees1: str
    in_range: bool
    price: float
    value: float
    fees_value: float
    delta: float
    gamma: float


def safe_db_url(url: str) -> str:
    """The database URL with its password hidden, fit for stderr and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even a URL: say so without echoing it
        return "<unparsable database_url>"


def make_engine(url: str) -> Engine:
    """An engine with every lphedge table created (idempotent)."""
    connect_args = {"check_same_thread": False} if url.startswith("sqlite") else {}
    engine = create_engine(url, connect_args=connect_args)
    SQLModel.metadata.create_all(engine)
    return engine


def record_positions(
    engine: Engine, chain_id: int, rows: list[tuple[Position, PositionMetrics]], at: datetime | None = None
) -> int:
    """Upsert the watched positions and append one snapshot each, in one transaction."""
    at = at or utcnow()
    with Session(engine) as session:
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
                    chain_id=chain_id, position_manager=pos.position_manager, token_id=str(pos.token_id),
                    owner=pos.owner, pool=pos.pool.address, token0=pos.pool.token0.address,
                    token1=pos.pool.token1.address, fee=pos.pool.fee, tick_lower=pos.tick_lower,
                    tick_upper=pos.tick_upper, first_seen=at,
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
        session.commit()
    return len(rows)
