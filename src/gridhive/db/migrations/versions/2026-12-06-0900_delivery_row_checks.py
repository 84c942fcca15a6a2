"""deliveries: no foreign keys to their message and endpoint.

An event over 10,000 batteries whose OEM takes webhooks writes 30,000 deliveries in the
request's transaction, and the two per-row checks (on PostgreSQL a lookup and a lock of the
parent row each) were a large part of that write. Messages are never deleted; deleting an
endpoint now deletes its deliveries itself (their attempts still go by cascade).

Revision ID: b7e1a0c20013
Revises: b7e1a0c20012
Create Date: 2026-12-06 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7e1a0c20013"
down_revision: str | None = "b7e1a0c20012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("fk_deliveries_endpoint_id_webhook_endpoints", type_="foreignkey")
        batch_op.drop_constraint("fk_deliveries_message_id_outbound_messages", type_="foreignkey")


def downgrade() -> None:
    # Deliveries of endpoints deleted meanwhile would break the restored key.
    op.execute(
        sa.text(
            "DELETE FROM deliveries WHERE endpoint_id IS NOT NULL"
            " AND endpoint_id NOT IN (SELECT id FROM webhook_endpoints)"
        )
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_deliveries_message_id_outbound_messages",
            "outbound_messages",
            ["message_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_foreign_key(
            "fk_deliveries_endpoint_id_webhook_endpoints",
            "webhook_endpoints",
            ["endpoint_id"],
            ["id"],
            ondelete="CASCADE",
        )
