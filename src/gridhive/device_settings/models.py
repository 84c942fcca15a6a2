"""Settings requests: a homeowner's change to a device's settings, applied by the device's OEM."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gridhive.db.base import Base, Timestamps, UUIDPrimaryKey
from gridhive.devices.models import Device


class SettingsStatus(enum.StrEnum):
    PENDING = "PENDING"  # sent to the OEM (`settings.apply`), no outcome yet
    APPLIED = "APPLIED"
    FAILED = "FAILED"


FINAL_STATUSES = (SettingsStatus.APPLIED, SettingsStatus.FAILED)


class OperatingMode(enum.StrEnum):
    """How the battery runs when no event commands it (Flip's everyday battery modes)."""

    SELF_CONSUMPTION = "SELF_CONSUMPTION"  # power the home from solar and the battery
    BACKUP = "BACKUP"  # stay full for outages
    SAVINGS = "SAVINGS"  # charge cheap, discharge at expensive hours


class SettingsRequest(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "settings_requests"
    __table_args__ = (
        # A device's requests, newest first (the Mobile App API list).
        sa.Index("ix_settings_requests_device_created", "device_pk", "created_at"),
        # An OEM's requests in update order (polling for pending ones).
        sa.Index("ix_settings_requests_tenant_updated", "tenant_id", "updated_at"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE")
    )
    device_pk: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("devices.pk", ondelete="CASCADE"))
    # Each setting is optional: null leaves it as the device has it.
    backup_reserve_percentage: Mapped[int | None]
    mode: Mapped[OperatingMode | None] = mapped_column(
        sa.Enum(OperatingMode, native_enum=False, length=32)
    )
    status: Mapped[SettingsStatus] = mapped_column(
        sa.Enum(SettingsStatus, native_enum=False, length=16)
    )
    # The OEM's words about the outcome (why it failed, or what the device did).
    message: Mapped[str | None] = mapped_column(sa.String(500))
    reported_at: Mapped[datetime | None]
    # Responses name the device and its site by the OEM's ids: both are loaded with the request.
    device: Mapped[Device] = relationship(lazy="joined", innerjoin=True)

    @property
    def device_id(self) -> str:
        return self.device.id

    @property
    def site_id(self) -> str:
        return self.device.site_id
