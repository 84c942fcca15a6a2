"""web sessions: (filled in by the pages work).

Revision ID: b7e1a0c20005
Revises: b7e1a0c20004
Create Date: 2026-11-22 07:03:00
"""

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = "b7e1a0c20005"
down_revision: str | None = "b7e1a0c20004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
