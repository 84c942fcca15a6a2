"""telemetry published: one row per program and window sent (telemetry.published idempotency).

Revision ID: b7e1a0c20006
Revises: b7e1a0c20005
Create Date: 2026-11-22 07:04:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gridhive.db.base

revision: str = "b7e1a0c20006"
down_revision: str | None = "b7e1a0c20005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "telemetry_publications",
        sa.Column("program_id", sa.Uuid(), nullable=False),
        sa.Column("window_start", gridhive.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_at", gridhive.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_telemetry_publications_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "program_id", "window_start", name=op.f("pk_telemetry_publications")
        ),
    )


def downgrade() -> None:
    op.drop_table("telemetry_publications")
