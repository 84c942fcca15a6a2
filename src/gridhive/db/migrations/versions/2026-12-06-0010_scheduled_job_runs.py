"""scheduled jobs: runs begun, so a job whose process dies every time ends dead.

Revision ID: b7e1a0c20007
Revises: b7e1a0c20006
Create Date: 2026-12-06 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7e1a0c20007"
down_revision: str | None = "b7e1a0c20006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DEAD = sa.text("state = 'dead'")


def upgrade() -> None:
    with op.batch_alter_table("scheduled_jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("runs_started", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.create_index(
            "ix_scheduled_jobs_dead_kind",
            ["kind"],
            unique=False,
            sqlite_where=_DEAD,
            postgresql_where=_DEAD,
        )


def downgrade() -> None:
    with op.batch_alter_table("scheduled_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_scheduled_jobs_dead_kind")
        batch_op.drop_column("runs_started")
