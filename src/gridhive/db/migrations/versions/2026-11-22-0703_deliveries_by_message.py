"""deliveries by message, latest first: ix_deliveries_message_seq (message_id, seq) replaces
ix_deliveries_message_id, so finding a message's latest delivery is one index probe.

Revision ID: b7e1a0c20005
Revises: b7e1a0c20004
Create Date: 2026-11-22 07:03:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b7e1a0c20005"
down_revision: str | None = "b7e1a0c20004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_message_id")
        batch_op.create_index("ix_deliveries_message_seq", ["message_id", "seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_message_seq")
        batch_op.create_index("ix_deliveries_message_id", ["message_id"], unique=False)
