"""Every table of the bot's database, in one metadata (``SQLModel.metadata``) that the
migrations compare against. The stores re-export their models, so ``from bot.store import
WatchedPosition`` and friends keep working.

Chain integers (liquidity, amounts, fee growth) exceed 64 bits, so they are stored as
decimal text and read back exactly; floats only for value and greeks.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, UniqueConstraint
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
    policy_hash: str = ""  # the approved policy hash it was signed against (0004)
    signatures: str = ""  # 0x-hex, packed: re-verified each time it is used (0004)


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
    sequence: int = 0  # the policy's [governance] sequence (0004)


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


# -- hedge book and budget spent (bot/book_store.py, revision 0002) -------------------------
# What decide needs from the past, per (chain, Safe): the book it starts from and the
# premium and fees spent. Sizes are decimal text (exact), money integer cents.


class HedgeOption(SQLModel, table=True):
    """A long option held, attributed to one protection layer."""

    __tablename__ = "hedge_option"
    __table_args__ = (UniqueConstraint("chain_id", "safe", "venue", "symbol", "layer",
                                       name="uq_hedge_option"),)

    id: int | None = Field(default=None, primary_key=True)
    chain_id: int
    safe: str
    venue: str
    symbol: str
    underlying: str
    kind: str  # put | call
    strike: float
    expiry: int  # unix seconds
    size_step: str  # decimal text
    size: str  # decimal text, > 0
    layer: str


class HedgePerp(SQLModel, table=True):
    __tablename__ = "hedge_perp"
    __table_args__ = (UniqueConstraint("chain_id", "safe", "venue", "underlying",
                                       name="uq_hedge_perp"),)

    id: int | None = Field(default=None, primary_key=True)
    chain_id: int
    safe: str
    venue: str
    underlying: str
    size: str  # signed decimal text, negative = short


class HedgeEngagement(SQLModel, table=True):
    """A layer engaged for an underlying since ``since`` (hysteresis, cooldown)."""

    __tablename__ = "hedge_engagement"
    __table_args__ = (UniqueConstraint("chain_id", "safe", "underlying", "layer",
                                       name="uq_hedge_engagement"),)

    id: int | None = Field(default=None, primary_key=True)
    chain_id: int
    safe: str
    underlying: str
    layer: str
    since: int  # unix seconds


class HedgeExitPending(SQLModel, table=True):
    """An LP position with an on-chain exit in flight."""

    __tablename__ = "hedge_exit_pending"
    __table_args__ = (UniqueConstraint("chain_id", "safe", "token_id",
                                       name="uq_hedge_exit_pending"),)

    id: int | None = Field(default=None, primary_key=True)
    chain_id: int
    safe: str
    token_id: str  # uint256 as decimal text


class BudgetSpend(SQLModel, table=True):
    """Premium or fees spent on protection: one row per fill, integer cents, keyed by the
    session (UTC day) and budget period it counts against."""

    __tablename__ = "budget_spend"
    __table_args__ = (UniqueConstraint("chain_id", "safe", "ref", name="uq_budget_spend_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    chain_id: int
    safe: str
    ts: int  # unix seconds of the fill
    session: str = Field(index=True)  # UTC day, "2026-12-03"
    period: str = Field(index=True)  # budget period, "2026-12"
    cents: int = Field(sa_type=BigInteger)  # > 0
    what: str  # premium | fee
    ref: str  # client order id (or another unique reference): recorded once
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class BudgetPeriod(SQLModel, table=True):
    """The expected fee income of one budget period (the budget is a share of it)."""

    __tablename__ = "budget_period"
    __table_args__ = (UniqueConstraint("chain_id", "safe", "period", name="uq_budget_period"),)

    id: int | None = Field(default=None, primary_key=True)
    chain_id: int
    safe: str
    period: str
    expected_fee_income_cents: int = Field(sa_type=BigInteger)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# -- execution: intents, their orders and every transition (bot/order_store.py, 0003) ------
# An intent row and its order row (PENDING_SUBMIT) are committed before anything is sent;
# the order's state changes only through policies/orders.py. Sizes and prices are decimal
# text (exact), fees integer cents.


class ExecIntent(SQLModel, table=True):
    """One leg of one decision, to be carried out on one venue."""

    __tablename__ = "exec_intent"
    __table_args__ = (UniqueConstraint("chain_id", "safe", "decision_id", "leg",
                                       name="uq_exec_intent_leg"),)

    id: int | None = Field(default=None, primary_key=True)
    chain_id: int
    safe: str
    decision_id: str
    leg: int
    kind: str  # policies.vocab intent kind
    venue: str
    payload: str  # canonical JSON of the leg (symbol, side, size, limit, the intent)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ExecOrder(SQLModel, table=True):
    """One attempt at an intent's leg: our client order id and the order's state."""

    __tablename__ = "exec_order"
    __table_args__ = (UniqueConstraint("client_order_id", name="uq_exec_order_client_id"),
                      UniqueConstraint("intent_id", "attempt", name="uq_exec_order_attempt"))

    id: int | None = Field(default=None, primary_key=True)
    intent_id: int = Field(foreign_key="exec_intent.id")
    attempt: int
    client_order_id: str
    venue: str
    symbol: str
    side: str  # buy | sell
    size: str  # decimal text
    limit_price: str | None = None  # decimal text, None: market
    state: str = Field(index=True)  # policies.orders.OrderState
    filled: str = "0"  # decimal text
    notional: str = "0"  # decimal text, sum of fill qty x price
    venue_order_id: str | None = None
    fill_ids: str = "[]"  # JSON list of the venue's trade ids applied
    fee_cents: int = Field(default=0, sa_type=BigInteger)
    reason: str = ""
    version: int = 0  # bumped by every update; an update expects the version it read
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ExecOrderEvent(SQLModel, table=True):
    """Every transition an order went through, in order (what happened, for audit and the
    crash harness)."""

    __tablename__ = "exec_order_event"
    __table_args__ = (UniqueConstraint("order_id", "seq", name="uq_exec_order_event_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="exec_order.id")
    seq: int
    event: str  # policies.orders.EventKind, or "created"
    from_state: str
    to_state: str
    detail: str = "{}"  # JSON
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


TABLES = tuple(
    m.__table__  # type: ignore[union-attr]
    for m in (WatchedPosition, PositionSnapshot, AuditEvent, OverrideRecord, PolicyApproval,
              TvlSample, SignalState, HedgeOption, HedgePerp, HedgeEngagement, HedgeExitPending,
              BudgetSpend, BudgetPeriod, ExecIntent, ExecOrder, ExecOrderEvent)
)
metadata = SQLModel.metadata


# -- on-chain transaction journal (bot/tx_journal.py, 0005) ---------------------------------
# One row per transaction the bot signs, committed BEFORE its broadcast, with the signed
# bytes (a recovery broadcasts the SAME transaction, never a new one). One row per
# (chain, sender, nonce) and per client id: a second transaction for either is refused by
# the database itself. ``state`` changes only through bot/tx_journal.py's transition table.


class TxJournalEntry(SQLModel, table=True):
    __tablename__ = "tx_journal"
    __table_args__ = (UniqueConstraint("chain_id", "sender", "nonce", name="uq_tx_journal_nonce"),
                      UniqueConstraint("client_id", name="uq_tx_journal_client_id"),
                      UniqueConstraint("tx_hash", name="uq_tx_journal_tx_hash"))

    id: int | None = Field(default=None, primary_key=True)
    chain_id: int
    sender: str  # checksum address
    nonce: int = Field(sa_type=BigInteger)
    target: str | None = None  # None: a contract creation
    calldata_hash: str  # 0x keccak256 of the calldata
    value: str = "0"  # wei, decimal text
    intent_id: str = Field(index=True)
    client_id: str  # the intent's step (e.g. "<intent>:decrease")
    tx_hash: str  # 0x hex
    raw_tx: str  # 0x hex of the signed transaction (public once broadcast; no secret)
    state: str = Field(index=True)  # pending|broadcast|confirmed|failed|reorged|replaced
    block_number: int | None = Field(default=None, sa_type=BigInteger)
    block_hash: str | None = None
    final: bool = False  # confirmed and re-checked for the reorg depth: no longer checked
    reason: str = ""
    version: int = 0  # bumped by every update; an update expects the version it read
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
