"""dispatch speed: fewer checks and indexes per row an event writes; an index for overlaps.

- commands: the foreign keys to events and organizations go. A command reaches both through
  its site event (`commands.site_event_pk -> site_events`, whose `event_id` and `tenant_id`
  have their own keys, with the same ON DELETE CASCADE chain), and at 200,000 commands per
  event the two redundant checks were half of PostgreSQL's per-row trigger work.
- commands: `ix_commands_event_id` and `ix_commands_site_event_pk` become one
  `ix_commands_event_site_event (event_id, site_event_pk)`: every query by site event also
  names the event (opt-out, per-site figures), and site events are never deleted on their
  own, so the foreign key's cascade needs no index of its own either.
- commands: `ix_commands_status_ends_at` lets the overlap query read only commands in force
  that end after the new event's window starts, instead of the whole history.
- site_events `ix_site_events_tenant_id` and outbound_messages
  `ix_outbound_messages_org_created` go: no query reads by them (site events are found by
  event or by site, messages through their deliveries or their event), and organizations
  are never deleted, so no cascade looks them up either.

Revision ID: b7e1a0c20002
Revises: b7e1a0c20001
Create Date: 2026-11-22 07:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b7e1a0c20002"
down_revision: str | None = "b7e1a0c20001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_constraint("fk_commands_event_id_events", type_="foreignkey")
        batch_op.drop_constraint("fk_commands_tenant_id_organizations", type_="foreignkey")
        batch_op.create_index("ix_commands_status_ends_at", ["status", "ends_at"], unique=False)
        batch_op.drop_index("ix_commands_event_id")
        batch_op.drop_index("ix_commands_site_event_pk")
        batch_op.create_index(
            "ix_commands_event_site_event", ["event_id", "site_event_pk"], unique=False
        )
    with op.batch_alter_table("site_events", schema=None) as batch_op:
        batch_op.drop_index("ix_site_events_tenant_id")
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_messages_org_created")


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbound_messages_org_created", ["org_id", "created_at"], unique=False
        )
    with op.batch_alter_table("site_events", schema=None) as batch_op:
        batch_op.create_index("ix_site_events_tenant_id", ["tenant_id"], unique=False)
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_index("ix_commands_event_site_event")
        batch_op.create_index("ix_commands_site_event_pk", ["site_event_pk"], unique=False)
        batch_op.create_index("ix_commands_event_id", ["event_id"], unique=False)
        batch_op.drop_index("ix_commands_status_ends_at")
        batch_op.create_foreign_key(
            "fk_commands_tenant_id_organizations",
            "organizations",
            ["tenant_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_foreign_key(
            "fk_commands_event_id_events", "events", ["event_id"], ["id"], ondelete="CASCADE"
        )
