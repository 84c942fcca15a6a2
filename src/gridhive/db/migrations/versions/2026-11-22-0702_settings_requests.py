"""settings requests: a homeowner's change to a device's settings, applied by its OEM.

Revision ID: b7e1a0c20004
Revises: b7e1a0c20003
Create Date: 2026-11-22 07:02:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gridhive.db.base

revision: str = "b7e1a0c20004"
down_revision: str | None = "b7e1a0c20003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "settings_requests",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("device_pk", sa.Uuid(), nullable=False),
        sa.Column("backup_reserve_percentage", sa.Integer(), nullable=True),
        sa.Column(
            "mode",
            sa.Enum(
                "SELF_CONSUMPTION",
                "BACKUP",
                "SAVINGS",
                name="operatingmode",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "PENDING",
                "APPLIED",
                "FAILED",
                name="settingsstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("message", sa.String(length=500), nullable=True),
        sa.Column("reported_at", gridhive.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", gridhive.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", gridhive.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_pk"],
            ["devices.pk"],
            name=op.f("fk_settings_requests_device_pk_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["organizations.id"],
            name=op.f("fk_settings_requests_tenant_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settings_requests")),
    )
    with op.batch_alter_table("settings_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_settings_requests_device_created", ["device_pk", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_settings_requests_tenant_updated", ["tenant_id", "updated_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("settings_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_settings_requests_tenant_updated")
        batch_op.drop_index("ix_settings_requests_device_created")
    op.drop_table("settings_requests")
