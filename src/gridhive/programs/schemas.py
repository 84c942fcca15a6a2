"""Program wire shapes: Flip's Program, plus territory and dispatch rules for the operator."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from gridhive.kit.schemas import InputSchema, Schema, UTCDatetime
from gridhive.kit.us_states import US_STATE_CODES

DeviceTypeName = Literal["BATTERY", "EV_CHARGER"]
Month = Annotated[int, Field(ge=1, le=12)]
Hour = Annotated[int, Field(ge=0, le=24)]


def known_state_code(value: str | None) -> str | None:
    """A US state or territory code, upper-cased; a typo is an error, not an empty match."""
    if value is None:
        return None
    if value.upper() not in US_STATE_CODES:
        raise ValueError(f"'{value}' is not a US state or territory code (e.g. CA, TX, PR)")
    return value.upper()


class EnrollmentFormField(Schema):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    label: str = Field(min_length=1, max_length=200)
    type: Literal["boolean", "number", "string"]
    hint: str | None = None
    # Our addition: Flip's form has no required flag; a field is required unless this says no.
    required: bool = True


class DispatchRules(Schema):
    """Limits a utility's events must respect; each absent rule means no limit."""

    max_event_duration_s: int | None = Field(default=None, gt=0)
    max_events_per_year: int | None = Field(default=None, ge=0)
    max_events_per_season: int | None = Field(default=None, ge=0)
    earliest_hour: Hour | None = Field(default=None, description="Local hour events may start")
    latest_hour: Hour | None = Field(default=None, description="Local hour events must end by")
    minimum_notice_s: int | None = Field(default=None, ge=0)
    allow_grid_charging: bool = Field(default=True, description="Pre-charge from the grid")
    max_precharge_s: int = Field(default=4 * 3600, gt=0)

    @model_validator(mode="after")
    def _hours_in_order(self) -> DispatchRules:
        if (
            self.earliest_hour is not None
            and self.latest_hour is not None
            and self.earliest_hour >= self.latest_hour
        ):
            raise ValueError("earliest_hour must be before latest_hour")
        return self


class ProgramCreate(InputSchema):
    """A program file for `gridhive admin create-program` or `POST /admin/v1/programs`."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    eligible_device_types: list[DeviceTypeName] = Field(default=["BATTERY"], min_length=1)
    participation_months: list[Month] = Field(default=list(range(1, 13)))
    minimum_reserve_percentage: int = Field(default=20, ge=0, le=100)
    minimum_commitment_months: int | None = Field(default=None, ge=0)
    can_auto_enroll: bool = False
    auto_approve: bool = False
    earnings_for_site_upfront: int = Field(default=0, ge=0)
    earnings_for_site_yearly: int = Field(default=0, ge=0)
    enrollment_form: list[EnrollmentFormField] = Field(default_factory=list)
    terms_and_conditions_version: str | None = Field(default=None, max_length=100)
    terms_and_conditions_text: str | None = Field(default=None, max_length=100_000)
    zip_codes: list[Annotated[str, Field(pattern=r"^\d{5}$")]] = Field(default_factory=list)
    state_codes: list[str] = Field(default_factory=list)
    is_test: bool = Field(default=False, description="Also matches the sandbox zips 88800-88802")
    minimum_battery_capacity_wh: int | None = Field(default=None, ge=0)
    minimum_battery_power_w: int | None = Field(default=None, ge=0)
    timezone: str = "America/Los_Angeles"
    dispatch_rules: DispatchRules = Field(default_factory=DispatchRules)

    @field_validator("participation_months")
    @classmethod
    def _sorted_months(cls, months: list[int]) -> list[int]:
        return sorted(set(months))

    @field_validator("state_codes")
    @classmethod
    def _known_states(cls, codes: list[str]) -> list[str]:
        upper = [c.upper() for c in codes]
        unknown = [c for c in upper if c not in US_STATE_CODES]
        if unknown:
            raise ValueError(f"unknown US state codes: {', '.join(unknown)}")
        return upper

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {name!r}") from exc
        return name

    @field_validator("enrollment_form")
    @classmethod
    def _unique_form_names(cls, fields: list[EnrollmentFormField]) -> list[EnrollmentFormField]:
        names = [f.name for f in fields]
        if len(names) != len(set(names)):
            raise ValueError("enrollment_form field names must be unique")
        return fields


class ProgramRead(Schema):
    """Flip's Program object (§9.3)."""

    id: uuid.UUID
    name: str
    description: str
    eligible_device_types: list[DeviceTypeName]
    can_auto_enroll: bool
    minimum_reserve_percentage: int
    minimum_commitment_months: int | None
    participation_months: list[int]
    earnings_for_site_upfront: int
    earnings_for_site_yearly: int
    enrollment_form: list[EnrollmentFormField]
    terms_and_conditions_version: str | None
    terms_and_conditions_text: str | None
    created_at: UTCDatetime
    updated_at: UTCDatetime


class ProgramAdminRead(ProgramRead):
    """The operator's view: Flip's fields plus territory and dispatch rules."""

    utility_id: uuid.UUID
    auto_approve: bool
    zip_codes: list[str]
    state_codes: list[str]
    is_test: bool
    minimum_battery_capacity_wh: int | None
    minimum_battery_power_w: int | None
    timezone: str
    dispatch_rules: DispatchRules


@dataclass(frozen=True)
class ProgramEligibility:
    """What programs are matched against: one device type at one place, with its ratings.

    `capacity_wh`/`power_w` are the totals of the batteries concerned (Flip's `total_*`); None
    means "not judged", so minimum ratings are not checked (0 means no batteries at all).
    """

    device_type: str  # BATTERY or EV_CHARGER
    zip_code: str | None = None
    state_code: str | None = None
    capacity_wh: int | None = None
    power_w: int | None = None


# Groups (Utility API §13.2) ---------------------------------------------------------------------

# The utility's own id: letters, digits, `-` and `_` (Flip's pattern), e.g. LZ_HOUSTON, zone-a.
GroupId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[\w-]+$")]
GroupName = Annotated[str, Field(min_length=1, max_length=200)]


class GroupCreate(InputSchema):
    id: GroupId
    name: GroupName


class GroupUpdate(InputSchema):
    """Rename a group or change its id; a field left out (or null) keeps its value."""

    id: GroupId | None = None
    name: GroupName | None = None


class GroupRead(Schema):
    id: str
    name: str
