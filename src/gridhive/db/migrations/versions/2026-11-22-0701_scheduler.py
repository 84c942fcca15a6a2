"""durable scheduler: scheduled jobs, and how often a command was sent again.

Revision ID: b7e1a0c20003
Revises: b7e1a0c20002
Create Date: 2026-11-22 07:01:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gridhive.db.base

revision: str = "b7e1a0c20003"
down_revision: str | None = "b7e1a0c20002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = sa.text("state IN ('pending', 'running')")


def upgrade() -> None:
    op.create_table(
        "scheduled_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("due_at", gridhive.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending", "running", "done", "dead", name="jobstate", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("lease_until", gridhive.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("leased_by", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("created_at", gridhive.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("done_at", gridhive.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_jobs")),
        sa.UniqueConstraint("kind", "key", name=op.f("uq_scheduled_jobs_kind_key")),
    )
    with op.batch_alter_table("scheduled_jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_scheduled_jobs_due_open",
            ["due_at"],
            unique=False,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        )
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("resend_count", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_column("resend_count")
    with op.batch_alter_table("scheduled_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_scheduled_jobs_due_open")
    op.drop_table("scheduled_jobs")
