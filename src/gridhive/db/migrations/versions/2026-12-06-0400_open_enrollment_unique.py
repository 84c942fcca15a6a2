"""enrollments: at most one open enrollment per site and program, guarded by the database.

Revision ID: b7e1a0c20008
Revises: b7e1a0c20007
Create Date: 2026-12-06 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7e1a0c20008"
down_revision: str | None = "b7e1a0c20007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The open statuses of enrollments.models.OPEN_STATUSES, as stored.
_OPEN = "status IN ('CREATED', 'SUBMITTED', 'PENDING', 'ACTIVE', 'NEEDS_ACTION', 'PAUSED')"


def upgrade() -> None:
    # Only two requests racing past the service's check could have made a second open
    # enrollment. Say which, instead of failing on the index with the database's message.
    twice = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT site_pk, program_id, count(*) FROM enrollments "
                f"WHERE {_OPEN} GROUP BY site_pk, program_id HAVING count(*) > 1"
            )
        )
        .all()
    )
    if twice:
        pairs = ", ".join(f"site {site} in program {program}" for site, program, _ in twice[:5])
        raise RuntimeError(
            f"{len(twice)} site(s) have more than one open enrollment in a program ({pairs}): "
            "unenroll the extra ones (PATCH /v1/enrollments/{id}), then upgrade again"
        )
    op.create_index(
        "uq_enrollments_open_site_program",
        "enrollments",
        ["site_pk", "program_id"],
        unique=True,
        sqlite_where=sa.text(_OPEN),
        postgresql_where=sa.text(_OPEN),
    )


def downgrade() -> None:
    op.drop_index("uq_enrollments_open_site_program", table_name="enrollments")
