"""Event wire shapes: the Utility API's event (§13.3) and the site-scoped event (§9.5)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from gridhive.kit.schemas import InputSchema, Schema, UTCDatetime
from gridhive.kit.time import ensure_utc

BatteryMode = Literal["CHARGE", "DISCHARGE", "STANDBY", "BACKUP", "SELF_CONSUMPTION", "SAVINGS"]
TargetType = Literal["DEVICE", "GROUP", "PROGRAM", "SITE"]
EventStatus = Literal["UPCOMING", "ACTIVE", "COMPLETED", "CANCELED"]
MAX_ACTIONS = 48
MAX_TARGET_IDS = 100_000


def _upper(value: Any) -> Any:
    # An older Flip page used lowercase enums ("discharge", "program"); accept them.
    return value.upper() if isinstance(value, str) else value


# Bounds that keep every time computed from an action representable (no action lasts a month;
# no event is planned past 2100); the program's own dispatch rules are checked later.
MAX_ACTION_DURATION_S = 31 * 24 * 3600
LATEST_START = datetime(2100, 1, 1, tzinfo=UTC)


class ActionIn(InputSchema):
    mode: BatteryMode
    starts_at: datetime
    duration_s: int = Field(le=MAX_ACTION_DURATION_S)
    power_mode: Literal["SETPOINT", "FOLLOW_LOAD"] | None = None
    setpoint_w: int | None = None
    setpoint_mode: Literal["EVEN", "PER_DEVICE"] | None = None
    backup_reserve_percentage: int | None = None
    enable_grid_import: bool | None = None

    _enums = field_validator("mode", "power_mode", "setpoint_mode", mode="before")(
        classmethod(lambda cls, v: _upper(v))
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_window(cls, data: Any) -> Any:
        """Accept the older `start_at`/`end_at` pair in place of `starts_at`/`duration_s`."""
        if not isinstance(data, dict) or "starts_at" in data or "start_at" not in data:
            return data
        data = {**data, "starts_at": data["start_at"]}
        if "duration_s" not in data and "end_at" in data:
            try:
                start = datetime.fromisoformat(str(data["start_at"]).replace("Z", "+00:00"))
                end = datetime.fromisoformat(str(data["end_at"]).replace("Z", "+00:00"))
                data["duration_s"] = int((ensure_utc(end) - ensure_utc(start)).total_seconds())
            except ValueError:
                pass  # the field validators below name the bad value
        return data

    @field_validator("starts_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        value = ensure_utc(value)
        if value >= LATEST_START:
            raise ValueError("starts_at must be before 2100-01-01T00:00:00Z")
        return value


class EventCreate(InputSchema):
    program_id: Annotated[str, Field(min_length=1, max_length=100)]
    target_type: TargetType
    target_ids: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=255)]], Field(max_length=MAX_TARGET_IDS)
    ]
    actions: Annotated[list[ActionIn], Field(max_length=MAX_ACTIONS)]

    _target_type = field_validator("target_type", mode="before")(
        classmethod(lambda cls, v: _upper(v))
    )


class ActionRead(Schema):
    mode: BatteryMode
    starts_at: UTCDatetime
    duration_s: int
    power_mode: Literal["SETPOINT", "FOLLOW_LOAD"] | None = None
    setpoint_w: int | None = None
    setpoint_mode: Literal["EVEN", "PER_DEVICE"] | None = None
    backup_reserve_percentage: int | None = None
    enable_grid_import: bool | None = None


class UtilityEventRead(Schema):
    """Flip's UtilityEvent, plus `status` (ours)."""

    id: uuid.UUID
    program_id: uuid.UUID
    target_type: TargetType
    target_ids: list[str]
    actions: list[ActionRead]
    starts_at: UTCDatetime
    ends_at: UTCDatetime
    duration_s: int
    status: EventStatus
    created_at: UTCDatetime
    updated_at: UTCDatetime


class ScheduleItem(Schema):
    id: uuid.UUID
    program_id: uuid.UUID
    site_id: str
    starts_at: UTCDatetime
    ends_at: UTCDatetime
    duration_s: int


class SiteEventRead(Schema):
    """The event as a site and its OEM see it; `id` is the event's id."""

    id: uuid.UUID
    program_id: uuid.UUID
    site_id: str
    starts_at: UTCDatetime
    ends_at: UTCDatetime | None
    duration_s: int | None
    schedule: list[ScheduleItem]
    status: EventStatus
    is_participating: bool
    created_at: UTCDatetime
    updated_at: UTCDatetime


class ParticipationUpdate(InputSchema):
    is_participating: bool


class EventSiteRead(Schema):
    """`GET /v1/events/{id}/sites`: participation and performance per site."""

    site_id: str
    is_participating: bool
    performance_actual_energy_wh: float | None
    performance_actual_power_w: float | None
    performance_expected_energy_wh: float | None
    performance_expected_power_w: float | None
