"""execution: intents, their orders (client order id unique) and every order transition

Three new tables (bot/db/models.py, bot/order_store.py): ``exec_intent`` (one leg of one
decision, unique per (chain, Safe, decision, leg)), ``exec_order`` (one attempt at a leg,
its client order id unique, its state changed only through policies/orders.py) and
``exec_order_event`` (every transition, in order). Nothing existing changes, so the
downgrade drops exactly these tables (children first).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Str = sqlmodel.sql.sqltypes.AutoString
When = sqlmodel.sql.sqltypes.UTCDateTime


def _col(name: str, type_: sa.types.TypeEngine | type,  # type: ignore[type-arg]
         nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, type_, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "exec_intent",
        _col("id", sa.Integer()), _col("chain_id", sa.Integer()), _col("safe", Str()),
        _col("decision_id", Str()), _col("leg", sa.Integer()), _col("kind", Str()),
        _col("venue", Str()), _col("payload", Str()), _col("created_at", When()),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain_id", "safe", "decision_id", "leg", name="uq_exec_intent_leg"),
    )
    op.create_table(
        "exec_order",
        _col("id", sa.Integer()), _col("intent_id", sa.Integer()), _col("attempt", sa.Integer()),
        _col("client_order_id", Str()), _col("venue", Str()), _col("symbol", Str()),
        _col("side", Str()), _col("size", Str()), _col("limit_price", Str(), nullable=True),
        _col("state", Str()), _col("filled", Str()), _col("notional", Str()),
        _col("venue_order_id", Str(), nullable=True), _col("fill_ids", Str()),
        _col("fee_cents", sa.BigInteger()), _col("reason", Str()), _col("version", sa.Integer()),
        _col("created_at", When()), _col("updated_at", When()),
        sa.ForeignKeyConstraint(["intent_id"], ["exec_intent.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_order_id", name="uq_exec_order_client_id"),
        sa.UniqueConstraint("intent_id", "attempt", name="uq_exec_order_attempt"),
    )
    op.create_index("ix_exec_order_state", "exec_order", ["state"], unique=False)
    op.create_table(
        "exec_order_event",
        _col("id", sa.Integer()), _col("order_id", sa.Integer()), _col("seq", sa.Integer()),
        _col("event", Str()), _col("from_state", Str()), _col("to_state", Str()),
        _col("detail", Str()), _col("at", When()),
        sa.ForeignKeyConstraint(["order_id"], ["exec_order.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "seq", name="uq_exec_order_event_seq"),
    )


def downgrade() -> None:
    op.drop_table("exec_order_event")
    op.drop_index("ix_exec_order_state", table_name="exec_order")
    op.drop_table("exec_order")
    op.drop_table("exec_intent")
