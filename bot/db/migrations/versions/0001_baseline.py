"""baseline: today's schema (the seven tables create_all made before migrations)

A baseline that adopts databases made before migrations: it creates only the tables that
are missing and checks that each table already there has exactly the columns below (else it
stops, naming the table and the columns that differ). See bot/db/migrate.py.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes
from alembic import op

from bot.db.migrate import SchemaMismatch

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Str = sqlmodel.sql.sqltypes.AutoString
When = sqlmodel.sql.sqltypes.UTCDateTime


def _col(name: str, type_: sa.types.TypeEngine | type, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, type_, nullable=nullable)


# table name -> (columns and constraints, indexed columns)
TABLES: dict[str, tuple[Callable[[], list[Any]], list[str]]] = {
    "governance_audit": (lambda: [
        _col("id", sa.Integer()), _col("created_at", When()), _col("event", Str()),
        _col("subject", Str()), _col("subject_hash", Str()), _col("chain_id", sa.Integer()),
        _col("safe", Str()), _col("actor", Str()), _col("reason", Str()), _col("detail", Str()),
        sa.PrimaryKeyConstraint("id"),
    ], ["created_at", "event", "subject", "subject_hash"]),
    "governance_override": (lambda: [
        _col("id", sa.Integer()), _col("override_hash", Str()), _col("chain_id", sa.Integer()),
        _col("safe", Str()), _col("nonce", sa.Integer()), _col("kind", Str()),
        _col("params", Str()), _col("reason", Str()), _col("expiry", sa.Integer()),
        _col("signers", Str()), _col("applied_at", When()),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain_id", "safe", "nonce", name="uq_override_nonce"),
        sa.UniqueConstraint("override_hash"),
    ], []),
    "governance_policy_approval": (lambda: [
        _col("id", sa.Integer()), _col("policy_hash", Str()), _col("chain_id", sa.Integer()),
        _col("safe", Str()), _col("signatures", Str()), _col("content", sa.LargeBinary()),
        _col("source_path", Str()), _col("approved_at", When()),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain_id", "safe", "policy_hash", name="uq_policy_approval"),
    ], ["policy_hash"]),
    "market_signal_state": (lambda: [
        _col("key", Str()), _col("level", sa.Integer(), nullable=True), _col("ts", sa.Integer()),
        sa.PrimaryKeyConstraint("key"),
    ], []),
    "market_tvl_sample": (lambda: [
        _col("id", sa.Integer()), _col("key", Str()), _col("ts", sa.Integer()),
        _col("tvl_usd", sa.Float()), _col("source", Str()),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", "ts"),
    ], ["key", "ts"]),
    "position_snapshot": (lambda: [
        _col("id", sa.Integer()), _col("taken_at", When()), _col("chain_id", sa.Integer()),
        _col("position_manager", Str()), _col("token_id", Str()), _col("tick", sa.Integer()),
        _col("sqrt_price_x96", Str()), _col("liquidity", Str()), _col("amount0", Str()),
        _col("amount1", Str()), _col("fees0", Str()), _col("fees1", Str()),
        _col("in_range", sa.Boolean()), _col("price", sa.Float()), _col("value", sa.Float()),
        _col("fees_value", sa.Float()), _col("delta", sa.Float()), _col("gamma", sa.Float()),
        sa.PrimaryKeyConstraint("id"),
    ], ["taken_at", "token_id"]),
    "watched_position": (lambda: [
        _col("id", sa.Integer()), _col("chain_id", sa.Integer()),
        _col("position_manager", Str()), _col("token_id", Str()), _col("owner", Str()),
        _col("pool", Str()), _col("token0", Str()), _col("token1", Str()),
        _col("fee", sa.Integer()), _col("tick_lower", sa.Integer()),
        _col("tick_upper", sa.Integer()), _col("first_seen", When()), _col("last_seen", When()),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain_id", "position_manager", "token_id"),
    ], []),
}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())
    # check every table already there before creating anything
    for name, (items, _indexed) in TABLES.items():
        if name in existing:
            want = {i.name for i in items() if isinstance(i, sa.Column)}
            have = {c["name"] for c in inspector.get_columns(name)}
            if want != have:
                missing, extra = sorted(want - have), sorted(have - want)
                raise SchemaMismatch(
                    f"table {name} is not the pre-migration schema: missing columns "
                    f"{', '.join(missing) or 'none'}; unexpected columns {', '.join(extra) or 'none'}"
                )
    for name, (items, indexed) in TABLES.items():
        if name in existing:
            have_ix = {ix["name"] for ix in inspector.get_indexes(name)}
            for column in indexed:
                if f"ix_{name}_{column}" not in have_ix:
                    op.create_index(f"ix_{name}_{column}", name, [column], unique=False)
            continue
        op.create_table(name, *items())
        for column in indexed:
            op.create_index(f"ix_{name}_{column}", name, [column], unique=False)


def downgrade() -> None:
    for name, (_items, indexed) in reversed(TABLES.items()):
        for column in indexed:
            op.drop_index(f"ix_{name}_{column}", table_name=name)
        op.drop_table(name)
