"""Flip's Enrollment (§9.4), its inputs, and the commission and sessions bodies (§6.3, §6.4)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from gridhive.devices.schemas import DeviceCreate, DeviceRead, ExternalId
from gridhive.enrollments.models import EnrollmentStatus
from gridhive.kit.schemas import InputSchema, Schema, UTCDatetime
from gridhive.programs.schemas import GroupRead, ProgramRead
from gridhive.sites.schemas import SiteCommission, SiteRead

EnrollMethodName = Literal["AUTO_ENROLL", "USER_ACTION"]


def _as_text(value: object) -> object:
    # Flip sends every answer as a string ("true", "42"); a client that sends the JSON value
    # itself is met halfway instead of refused.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


class ProgramSpecificAttribute(InputSchema):
    """An answer to one field of the program's `enrollment_form`."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    value: Annotated[str, BeforeValidator(_as_text), Field(max_length=1000)]


class EnrollmentTerms(InputSchema):
    """What the homeowner agreed to and answered; shared by the app's and commission's bodies."""

    has_agreed_to_terms_and_conditions: bool | None = None
    terms_and_conditions_version: Annotated[str, Field(max_length=100)] | None = None
    program_specific_attributes: list[ProgramSpecificAttribute] | None = Field(
        default=None, max_length=100
    )


class EnrollmentCreate(EnrollmentTerms):
    """EnrollmentCreateIn: enroll some of the site's devices in a program."""

    device_ids: list[ExternalId] = Field(min_length=1, max_length=1000)
    program_id: uuid.UUID
    enroll_method: EnrollMethodName


class EnrollmentRead(Schema):
    id: uuid.UUID
    device_ids: list[str]
    site_id: str
    program_id: uuid.UUID
    enroll_method: EnrollMethodName
    status: EnrollmentStatus
    status_reason: str | None
    enrolled_at: UTCDatetime | None
    unenrolled_at: UTCDatetime | None
    program_specific_attributes: list[ProgramSpecificAttribute]
    has_agreed_to_terms_and_conditions: bool | None
    terms_and_conditions_version: str | None
    created_at: UTCDatetime
    updated_at: UTCDatetime


class CommissionEnrollment(EnrollmentTerms):
    """Enroll while commissioning; without `device_ids`, every commissioned device that fits."""

    program_id: uuid.UUID
    enroll_method: EnrollMethodName = "AUTO_ENROLL"
    device_ids: list[ExternalId] | None = Field(default=None, min_length=1, max_length=1000)


class CommissionCreate(InputSchema):
    site: SiteCommission
    devices: list[DeviceCreate] = Field(min_length=1, max_length=1000)
    can_auto_enroll: bool | None = Field(
        default=None, description="The homeowner agreed beforehand to be enrolled automatically"
    )
    enrollment: CommissionEnrollment | None = None


class CommissionRead(Schema):
    site: SiteRead
    devices: list[DeviceRead]
    can_auto_enroll: bool | None
    programs: list[ProgramRead]
    enrollment: EnrollmentRead | None


class SessionCreate(InputSchema):
    site: SiteCommission
    devices: list[DeviceCreate] | None = Field(default=None, max_length=1000)


class SessionRead(Schema):
    token: str
    has_programs: bool


# Utility API (§13.1) ----------------------------------------------------------------------------


class UtilitySiteRead(Schema):
    """The enrolled site as the utility sees it: contact details and its groups in the program."""

    id: str
    first_name: str | None
    last_name: str | None
    company_name: str | None
    email: str | None
    city: str | None
    state_code: str | None
    zip_code: str | None
    street_address: str | None
    street_address2: str | None
    service_account_id: str | None
    groups: list[GroupRead]
    created_at: UTCDatetime
    updated_at: UTCDatetime


class ProgramSpecificAttributeRead(Schema):
    name: str
    type: Literal["boolean", "number", "string"]
    value: str


class UtilityEnrollmentRead(Schema):
    id: uuid.UUID
    status: EnrollmentStatus
    status_reason: str | None
    created_at: UTCDatetime
    updated_at: UTCDatetime
    enrolled_at: UTCDatetime | None
    unenrolled_at: UTCDatetime | None
    program_specific_attributes: list[ProgramSpecificAttributeRead]
    site: UtilitySiteRead
    devices: list[DeviceRead]


class UtilityEnrollmentPage(Schema):
    """`{"enrollments": [...]}`, as Flip answers the list."""

    enrollments: list[UtilityEnrollmentRead]


class UtilityEnrollmentUpdate(InputSchema):
    """Approve, pause, reject or unenroll (`status`), and set the site's groups (`group_ids`).

    `group_ids` replaces the site's groups in the enrollment's program; `[]` removes them all,
    null or absent leaves them as they are.
    """

    status: EnrollmentStatus | None = None
    status_reason: Annotated[str, Field(max_length=500)] | None = None
    group_ids: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        default=None, max_length=1000
    )
