"""Flip's Command object (§9.6) and the acknowledgement body."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field

from gridhive.commands.models import CommandStatus, DeviceStatus
from gridhive.kit.schemas import InputSchema, Schema, UTCDatetime

BatteryMode = Literal["CHARGE", "DISCHARGE", "STANDBY", "BACKUP", "SELF_CONSUMPTION", "SAVINGS"]


class BatteryCommandRead(Schema):
    mode: BatteryMode
    power_mode: Literal["SETPOINT", "FOLLOW_LOAD"] | None
    setpoint_w: int | None
    enable_grid_import: bool | None
    enable_grid_export: bool | None = Field(default=None, deprecated=True)
    backup_reserve_percentage: int | None
    maximum_charge_percentage: int | None = Field(default=None, deprecated=True)


class CommandRead(Schema):
    id: uuid.UUID
    event_id: uuid.UUID | None
    device_id: str
    starts_at: UTCDatetime
    ends_at: UTCDatetime | None
    duration_s: int | None
    is_preparatory_action: bool
    battery_commands: BatteryCommandRead
    status: CommandStatus
    device_status: DeviceStatus
    device_status_reason: str | None
    created_at: UTCDatetime
    updated_at: UTCDatetime


class CommandAck(InputSchema):
    """`FAILED` is the older name of `FAILED_FAULT` and is stored as such."""

    device_status: Literal["OK", "FAILED_OFFLINE", "FAILED_FAULT", "FAILED"]
    device_status_reason: Annotated[str, Field(max_length=500)] | None = None

    @property
    def normalised_status(self) -> DeviceStatus:
        if self.device_status == "FAILED":
            return DeviceStatus.FAILED_FAULT
        return DeviceStatus(self.device_status)
