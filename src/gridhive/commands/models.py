"""Commands: one per device per action (plus preparatory ones), Flip's Command object."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gridhive.db.base import Base, Timestamps, UUIDPrimaryKey


class CommandStatus(enum.StrEnum):
    OK = "OK"
    CANCELED = "CANCELED"
    OPT_OUT = "OPT_OUT"


class DeviceStatus(enum.StrEnum):
    PENDING = "PENDING"
    OK = "OK"
    FAILED_OFFLINE = "FAILED_OFFLINE"
    FAILED_FAULT = "FAILED_FAULT"


class Command(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "commands"
    __table_args__ = (
        # Polling: an OEM's commands in update order.
        sa.Index("ix_commands_tenant_updated", "tenant_id", "updated_at", "id"),
        # Supersession: a device's commands by time.
        sa.Index("ix_commands_device_starts", "device_pk", "starts_at"),
        # Supersession of a big target: the commands in force that end after a window starts.
        sa.Index("ix_commands_status_ends_at", "status", "ends_at"),
        # An event's commands (plan, cancel, timelines), and one site's part of it (opt-out,
        # per-site figures: those queries name the event too). One index for both.
        sa.Index("ix_commands_event_site_event", "event_id", "site_event_pk"),
    )

    # No foreign keys: events and site events are never deleted (an event is canceled and
    # stays), the planner writes a command in the transaction that writes its event and site
    # event, and at 20,000 commands per event each per-row check (a lookup and a row lock of
    # the parent on PostgreSQL) cost about as much as the command's own insert.
    event_id: Mapped[uuid.UUID]
    site_event_pk: Mapped[uuid.UUID]
    tenant_id: Mapped[uuid.UUID]
    # No foreign key: devices are never deleted (they end), the planner read this one in the
    # same transaction, and the check was a sixth of a command's insert time on PostgreSQL.
    device_pk: Mapped[uuid.UUID]
    # Denormalised OEM device id: every command read and webhook names it.
    device_id: Mapped[str] = mapped_column(sa.String(255))
    action_index: Mapped[int]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    duration_s: Mapped[int | None]
    is_preparatory_action: Mapped[bool] = mapped_column(default=False)
    mode: Mapped[str] = mapped_column(sa.String(24))
    power_mode: Mapped[str | None] = mapped_column(sa.String(16))
    setpoint_w: Mapped[int | None]
    enable_grid_import: Mapped[bool | None]
    backup_reserve_percentage: Mapped[int | None]
    status: Mapped[CommandStatus] = mapped_column(
        sa.Enum(CommandStatus, native_enum=False, length=16)
    )
    status_reason: Mapped[str | None] = mapped_column(sa.String(500))
    device_status: Mapped[DeviceStatus] = mapped_column(
        sa.Enum(DeviceStatus, native_enum=False, length=16)
    )
    device_status_reason: Mapped[str | None] = mapped_column(sa.String(500))
    acknowledged_at: Mapped[datetime | None]
    # Times the ack deadline sent the command again (commands/deadlines.py), over its life.
    resend_count: Mapped[int] = mapped_column(default=0, server_default=sa.text("0"))
    # Why the command looks as it does (share of the total, caps, SOC used, ...): the reasons
    # it shares with alike commands of its event (`events.models.CommandExplanation` number
    # `explanation_number`), updated by `explanation`, the reasons that are its own (which
    # commands it supersedes). A command planned before reasons were shared has them all here.
    explanation_number: Mapped[int | None]
    explanation: Mapped[dict[str, Any] | None]

    @property
    def battery_commands(self) -> dict[str, Any]:
        return battery_commands_of(self)


def battery_commands_of(command: Any) -> dict[str, Any]:
    """Flip's `battery_commands` from a command's columns: a `Command`, or a row of the same
    column names (acknowledgements and ticks read rows, not objects)."""
    return {
        "mode": command.mode,
        "power_mode": command.power_mode,
        "setpoint_w": command.setpoint_w,
        "enable_grid_import": command.enable_grid_import,
        "enable_grid_export": None,
        "backup_reserve_percentage": command.backup_reserve_percentage,
        "maximum_charge_percentage": None,
    }
