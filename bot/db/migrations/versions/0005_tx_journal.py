"""on-chain transaction journal (issue 11): one row per transaction, committed before broadcast

One new table (bot/db/models.py TxJournalEntry, bot/tx_journal.py): ``tx_journal``, a row
per signed transaction (chain, sender, nonce, target, calldata hash, intent and client id,
hash, the signed bytes, state, block number and hash), unique per (chain, sender, nonce),
per client id and per hash. Nothing existing changes, so the downgrade drops exactly it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Str = sqlmodel.sql.sqltypes.AutoString
When = sqlmodel.sql.sqltypes.UTCDateTime


def _col(name: str, type_: sa.types.TypeEngine | type,  # type: ignore[type-arg]
         nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, type_, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "tx_journal",
        _col("id", sa.Integer()), _col("chain_id", sa.Integer()), _col("sender", Str()),
        _col("nonce", sa.BigInteger()), _col("target", Str(), nullable=True),
        _col("calldata_hash", Str()), _col("value", Str()), _col("intent_id", Str()),
        _col("client_id", Str()), _col("tx_hash", Str()), _col("raw_tx", Str()),
        _col("state", Str()), _col("block_number", sa.BigInteger(), nullable=True),
        _col("block_hash", Str(), nullable=True), _col("final", sa.Boolean()),
        _col("reason", Str()), _col("version", sa.Integer()),
        _col("created_at", When()), _col("updated_at", When()),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain_id", "sender", "nonce", name="uq_tx_journal_nonce"),
        sa.UniqueConstraint("client_id", name="uq_tx_journal_client_id"),
        sa.UniqueConstraint("tx_hash", name="uq_tx_journal_tx_hash"),
    )
    op.create_index("ix_tx_journal_intent_id", "tx_journal", ["intent_id"], unique=False)
    op.create_index("ix_tx_journal_state", "tx_journal", ["state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tx_journal_state", table_name="tx_journal")
    op.drop_index("ix_tx_journal_intent_id", table_name="tx_journal")
    op.drop_table("tx_journal")
