"""The settings request object (our definition: Flip documents none) and its inputs."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from gridhive.device_settings.models import OperatingMode, SettingsStatus
from gridhive.kit.schemas import InputSchema, Schema, UTCDatetime

ReservePercentage = Annotated[
    int,
    Field(
        ge=0,
        le=100,
        description=(
            "State of charge (%) the battery keeps for outages and never discharges below. "
            "Not below the minimum of a program the device is actively enrolled in."
        ),
        examples=[40],
    ),
]
Mode = Annotated[
    OperatingMode,
    Field(
        description=(
            "How the battery runs outside events: `SELF_CONSUMPTION` powers the home from solar "
            "and the battery, `BACKUP` keeps it full for outages, `SAVINGS` charges at cheap "
            "hours and discharges at expensive ones."
        ),
        examples=["SELF_CONSUMPTION"],
    ),
]
Message = Annotated[
    str,
    Field(
        max_length=500,
        description="What happened on the device, in words for the homeowner",
        examples=["Battery offline since 14:02"],
    ),
]


class SettingsRequestCreate(InputSchema):
    """The settings to change; send at least one. A setting left out (or null) stays as is."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"backup_reserve_percentage": 40, "mode": "BACKUP"}]}
    )

    backup_reserve_percentage: ReservePercentage | None = None
    mode: Mode | None = None


class SettingsOutcome(InputSchema):
    """The OEM's report: the settings were applied on the device, or could not be."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "APPLIED"},
                {"status": "FAILED", "message": "Battery offline since 14:02"},
            ]
        }
    )

    status: Literal["APPLIED", "FAILED"] = Field(
        description="`APPLIED` once the device runs with the settings; `FAILED` otherwise"
    )
    message: Message | None = None


class SettingsRequestRead(Schema):
    """A settings request: the homeowner's change and where it stands.

    It is also the `event_object` of the `settings.apply` webhook (with `object_type:
    "settings_request"`) that asks the device's OEM to push the settings to the device.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0193a4f2-7c1e-7d2a-9b1f-2f4c8e1d9a10",
                    "site_id": "home-42",
                    "device_id": "pw-1",
                    "backup_reserve_percentage": 40,
                    "mode": "BACKUP",
                    "status": "PENDING",
                    "message": None,
                    "reported_at": None,
                    "created_at": "2026-06-01T12:00:00Z",
                    "updated_at": "2026-06-01T12:00:00Z",
                }
            ]
        }
    )

    id: uuid.UUID = Field(description="The settings request id (`settingsRequestId`)")
    site_id: str = Field(description="Your site id")
    device_id: str = Field(description="Your device id")
    backup_reserve_percentage: int | None = Field(
        description="The reserve to set (%); null: unchanged"
    )
    mode: OperatingMode | None = Field(description="The operating mode to set; null: unchanged")
    status: SettingsStatus = Field(
        description="`PENDING` until the OEM reports `APPLIED` or `FAILED` (both final)"
    )
    message: str | None = Field(description="The OEM's words about the outcome")
    reported_at: UTCDatetime | None = Field(description="When the OEM reported the outcome")
    created_at: UTCDatetime
    updated_at: UTCDatetime
