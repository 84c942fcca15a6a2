"""outbound messages: payloads shared through templates; no foreign key to organizations.

- `payload_templates` holds the event object that thousands of an event's messages share,
  with placeholders for the ids that differ (webhooks/templates.py). Such a message stores
  `template_id` and no payload of its own, so `outbound_messages.payload` may be NULL.
  Existing messages keep their payloads.
- `outbound_messages.org_id` loses its foreign key: organizations are never deleted, every
  message is written by code that holds its organization, and the check was a quarter of the
  time to insert an event's 300,000 messages on PostgreSQL.

Revision ID: b7e1a0c20009
Revises: b7e1a0c20008
Create Date: 2026-12-06 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gridhive.db.base
from gridhive.webhooks.templates import render

revision: str = "b7e1a0c20009"
down_revision: str | None = "b7e1a0c20008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payload_templates",
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", gridhive.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payload_templates")),
    )
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("template_id", sa.Uuid(), nullable=True))
        batch_op.alter_column("payload", existing_type=sa.JSON(), nullable=True)
        batch_op.drop_constraint("fk_outbound_messages_org_id_organizations", type_="foreignkey")


def downgrade() -> None:
    # Messages that name a template get their payload back before the column is required again.
    messages = sa.table(
        "outbound_messages",
        sa.column("id", sa.Uuid()),
        sa.column("subject_id", sa.String()),
        sa.column("command_id", sa.Uuid()),
        sa.column("template_id", sa.Uuid()),
        sa.column("payload", sa.Text()),  # the JSON text as stored
    )
    templates = sa.table(
        "payload_templates", sa.column("id", sa.Uuid()), sa.column("body", sa.Text())
    )
    bind = op.get_bind()
    templated = bind.execute(
        sa.select(
            messages.c.id,
            messages.c.subject_id,
            messages.c.command_id,
            # As text: PostgreSQL's driver would otherwise hand the JSON over parsed.
            sa.cast(templates.c.body, sa.Text),
        ).join(templates, templates.c.id == messages.c.template_id)
    ).all()
    for message_id, subject_id, command_id, body in templated:
        payload = render(body, subject_id, command_id)
        bind.execute(messages.update().where(messages.c.id == message_id).values(payload=payload))
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_outbound_messages_org_id_organizations",
            "organizations",
            ["org_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.alter_column("payload", existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column("template_id")
    op.drop_table("payload_templates")
