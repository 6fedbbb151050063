"""hedge book and budget spent: what decide needs from the past

Six new tables (bot/db/models.py, bot/book_store.py): held options, perps, engaged layers,
exits in flight, premium/fees spent (integer cents, per session and budget period) and the
expected fee income of each budget period. Nothing existing changes, so the downgrade drops
exactly these tables.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Str = sqlmodel.sql.sqltypes.AutoString
When = sqlmodel.sql.sqltypes.UTCDateTime


def _col(name: str, type_: sa.types.TypeEngine | type) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, type_, nullable=False)


def _owner() -> list[sa.Column]:  # type: ignore[type-arg]
    return [_col("id", sa.Integer()), _col("chain_id", sa.Integer()), _col("safe", Str())]


def upgrade() -> None:
    op.create_table(
        "hedge_option", *_owner(),
        _col("venue", Str()), _col("symbol", Str()), _col("underlying", Str()),
        _col("kind", Str()), _col("strike", sa.Float()), _col("expiry", sa.Integer()),
        _col("size_step", Str()), _col("size", Str()), _col("layer", Str()),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain_id", "safe", "venue", "symbol", "layer", name="uq_hedge_option"),
    )
    op.create_table(
        "hedge_perp", *_owner(),
        _col("venue", Str()), _col("underlying", Str()), _col("size", Str()),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain_id", "safe", "venue", "underlying", name="uq_hedge_perp"),
    )
    op.create_table(
        "hedge_engagement", *_owner(),
        _col("underlying", Str()), _col("layer", Str()), _col("since", sa.Integer()),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain_id", "safe", "underlying", "layer", name="uq_hedge_engagement"),
    )
    op.create_table(
        "hedge_exit_pending", *_owner(),
        _col("token_id", Str()),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain_id", "safe", "token_id", name="uq_hedge_exit_pending"),
    )
    op.create_table(
        "budget_spend", *_owner(),
        _col("ts", sa.Integer()), _col("session", Str()), _col("period", Str()),
        _col("cents", sa.BigInteger()), _col("what", Str()), _col("ref", Str()),
        _col("recorded_at", When()),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain_id", "safe", "ref", name="uq_budget_spend_ref"),
    )
    op.create_index("ix_budget_spend_session", "budget_spend", ["session"], unique=False)
    op.create_index("ix_budget_spend_period", "budget_spend", ["period"], unique=False)
    op.create_table(
        "budget_period", *_owner(),
        _col("period", Str()), _col("expected_fee_income_cents", sa.BigInteger()),
        _col("updated_at", When()),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain_id", "safe", "period", name="uq_budget_period"),
    )


def downgrade() -> None:
    op.drop_table("budget_period")
    op.drop_index("ix_budget_spend_period", table_name="budget_spend")
    op.drop_index("ix_budget_spend_session", table_name="budget_spend")
    op.drop_table("budget_spend")
    op.drop_table("hedge_exit_pending")
    op.drop_table("hedge_engagement")
    op.drop_table("hedge_perp")
    op.drop_table("hedge_option")
