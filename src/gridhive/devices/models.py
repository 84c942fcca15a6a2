"""Devices: a battery (or EV charger) at a site, identified by the OEM's own string id."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gridhive.db.base import Base, Timestamps
from gridhive.kit.ids import new_uuid
from gridhive.sites.models import Site


class DeviceType(enum.StrEnum):
    BATTERY = "BATTERY"
    EV_CHARGER = "EV_CHARGER"


class Device(Timestamps, Base):
    __tablename__ = "devices"
    __table_args__ = (
        # Ids are unique per OEM among live devices; a deleted device keeps its history and
        # its id may be commissioned again.
        sa.Index(
            "uq_devices_tenant_id_live",
            "tenant_id",
            "id",
            unique=True,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        ),
    )

    pk: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    site_pk: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("sites.pk", ondelete="CASCADE"), index=True
    )
    id: Mapped[str] = mapped_column(sa.String(255))
    type: Mapped[DeviceType] = mapped_column(sa.Enum(DeviceType, native_enum=False, length=16))
    manufacturer_name: Mapped[str] = mapped_column(sa.String(200))
    product_name: Mapped[str] = mapped_column(sa.String(200))
    serial_number: Mapped[str | None] = mapped_column(sa.String(200))
    battery_capacity_wh: Mapped[int | None]
    battery_power_input_w: Mapped[int | None]
    battery_power_output_w: Mapped[int | None]
    # Attributes of other device types, kept as sent.
    extra_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reserve_percentage: Mapped[int] = mapped_column(default=0)
    install_date: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    # Latest known state, written by telemetry ingest; read by the planner and capacity views.
    state_of_charge_pct: Mapped[float | None]
    is_online: Mapped[bool | None]
    last_seen_at: Mapped[datetime | None]
    # The site comes with every device: responses name it by the OEM's site id.
    site: Mapped[Site] = relationship(lazy="joined", innerjoin=True)

    @property
    def site_id(self) -> str:
        return self.site.id

    @property
    def attributes(self) -> dict[str, Any]:
        if self.type == DeviceType.BATTERY:
            return {
                "battery_capacity_wh": self.battery_capacity_wh,
                "battery_power_input_w": self.battery_power_input_w,
                "battery_power_output_w": self.battery_power_output_w,
            }
        return dict(self.extra_attributes)

    @property
    def configuration(self) -> dict[str, Any]:
        return {"reserve_percentage": self.reserve_percentage}
