"""governance: policy approval sequence, override bound to the policy hash in force

Issue 9. ``governance_policy_approval.sequence`` is the approved policy's
``[governance] sequence`` (part of its signed hash), so the highest sequence the bot
has seen is one query; ``governance_override.policy_hash`` is the policy hash an
override was signed against (part of its EIP-712 message): a newer approval retires
overrides bound to an older one. Existing rows get sequence 0 and the zero policy hash
(bound to no policy: retired as soon as any policy is in force).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NO_POLICY = "0x" + "00" * 32  # bot.governance.NO_POLICY: signed while no policy was in force


def upgrade() -> None:
    with op.batch_alter_table("governance_policy_approval") as batch:
        batch.add_column(sa.Column("sequence", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("governance_override") as batch:
        batch.add_column(sa.Column("policy_hash", sqlmodel.sql.sqltypes.AutoString(),
                                   nullable=False, server_default=NO_POLICY))
        batch.add_column(sa.Column("signatures", sqlmodel.sql.sqltypes.AutoString(),
                                   nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("governance_override") as batch:
        batch.drop_column("signatures")
        batch.drop_column("policy_hash")
    with op.batch_alter_table("governance_policy_approval") as batch:
        batch.drop_column("sequence")
