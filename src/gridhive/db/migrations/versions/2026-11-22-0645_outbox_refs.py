"""outbox refs: the event and command an outbound message is about (timelines, ack deadlines).

Revision ID: b7e1a0c20001
Revises: ad1aeaa9edeb
Create Date: 2026-11-22 06:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7e1a0c20001"
down_revision: str | None = "ad1aeaa9edeb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("command_id", sa.Uuid(), nullable=True))
        batch_op.create_index(
            "ix_outbound_messages_event",
            ["event_id"],
            unique=False,
            sqlite_where=sa.text("event_id IS NOT NULL"),
            postgresql_where=sa.text("event_id IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_messages_event")
        batch_op.drop_column("command_id")
        batch_op.drop_column("event_id")
