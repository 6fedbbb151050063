"""Every table of the bot's database, in one metadata (``SQLModel.metadata``) that the
migrations compare against. The stores re-export their models, so ``from bot.store import
WatchedPosition`` and friends keep working.

Chain integers (liquidity, amounts, fee growth) exceed 64 bits, so they are stored as
decimal text and read back exactly; floats only for value and greeks.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.db.types import UTCDateTime, utcnow

# -- positions (bot/store.py) ----------------------------------------------------------------


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
    first_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PositionSnapshot(SQLModel, table=True):
    __tablename__ = "position_snapshot"

    id: int | None = Field(default=None, primary_key=True)
    taken_at: datetime = Field(default_factory=utcnow, index=True, sa_type=UTCDateTime)
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


# -- governance audit trail (bot/audit_store.py) ---------------------------------------------


class AuditEvent(SQLModel, table=True):
    __tablename__ = "governance_audit"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True, sa_type=UTCDateTime)
    event: str = Field(index=True)  # one of bot.audit_store.EVENTS
    subject: str = Field(index=True)  # policy | override | safe_tx | roles
    subject_hash: str = Field(index=True)  # 0x-hex
    chain_id: int
    safe: str
    actor: str = ""  # signer / proposer address, never a key
    reason: str = ""
    detail: str = "{}"  # JSON


class OverrideRecord(SQLModel, table=True):
    __tablename__ = "governance_override"
    __table_args__ = (UniqueConstraint("chain_id", "safe", "nonce", name="uq_override_nonce"),)

    id: int | None = Field(default=None, primary_key=True)
    override_hash: str = Field(unique=True)
    chain_id: int
    safe: str
    nonce: int
    kind: str
    params: str  # canonical JSON
    reason: str
    expiry: int  # unix seconds
    signers: str  # comma-separated addresses
    applied_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PolicyApproval(SQLModel, table=True):
    __tablename__ = "governance_policy_approval"
    __table_args__ = (UniqueConstraint("chain_id", "safe", "policy_hash", name="uq_policy_approval"),)

    id: int | None = Field(default=None, primary_key=True)
    policy_hash: str = Field(index=True)
    chain_id: int
    safe: str
    signatures: str  # 0x-hex, packed; "0x" when the Safe signed on-chain
    content: bytes  # the approved policy file's bytes
    source_path: str = ""
    approved_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# -- market history (bot/market_store.py) ----------------------------------------------------


class TvlSample(SQLModel, table=True):
    __tablename__ = "market_tvl_sample"
    __table_args__ = (UniqueConstraint("key", "ts"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(index=True)  # e.g. "tvl:USDC/USDT/100" or "defillama:uniswap"
    ts: int = Field(index=True)  # unix seconds when the value was true
    tvl_usd: float
    source: str


class SignalState(SQLModel, table=True):
    __tablename__ = "market_signal_state"

    key: str = Field(primary_key=True)  # "<underlying>:<signal name>"
    level: int | None = None
    ts: int = 0


TABLES = tuple(
    m.__table__  # type: ignore[union-attr]
    for m in (WatchedPosition, PositionSnapshot, AuditEvent, OverrideRecord, PolicyApproval,
              TvlSample, SignalState)
)
metadata = SQLModel.metadata
