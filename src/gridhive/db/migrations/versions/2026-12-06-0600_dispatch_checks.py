"""site events and commands: no foreign keys to sites, organizations and devices.

None of the three is ever deleted (a device ends, a site and an organization stay), and each
key's value is read in the transaction that writes the row. At 10,000 sites and 20,000
commands per event, the three checks were half of PostgreSQL's time to insert the site events
and the device check a sixth of the commands'. The keys to the event remain: they are the
cascade that takes an event's site events and commands with it.

Revision ID: b7e1a0c20010
Revises: b7e1a0c20009
Create Date: 2026-12-06 06:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b7e1a0c20010"
down_revision: str | None = "b7e1a0c20009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("site_events", schema=None) as batch_op:
        batch_op.drop_constraint("fk_site_events_site_pk_sites", type_="foreignkey")
        batch_op.drop_constraint("fk_site_events_tenant_id_organizations", type_="foreignkey")
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_constraint("fk_commands_device_pk_devices", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_commands_device_pk_devices", "devices", ["device_pk"], ["pk"], ondelete="CASCADE"
        )
    with op.batch_alter_table("site_events", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_site_events_tenant_id_organizations",
            "organizations",
            ["tenant_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_foreign_key(
            "fk_site_events_site_pk_sites", "sites", ["site_pk"], ["pk"], ondelete="CASCADE"
        )
