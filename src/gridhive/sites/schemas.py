"""Flip's Site object (§9.1) and its inputs."""

from __future__ import annotations

from typing import Annotated

from pydantic import EmailStr, Field, field_validator

from gridhive.kit.schemas import InputSchema, Schema, UTCDatetime
from gridhive.kit.us_states import US_STATE_CODES

# The OEM's own ids: any characters (`site-for-device::abc` included), as the OEM sends them.
ExternalId = Annotated[str, Field(min_length=1, max_length=255)]
ShortText = Annotated[str, Field(max_length=200)]
AddressText = Annotated[str, Field(max_length=300)]


def validate_state_code(value: str | None) -> str | None:
    if value is None:
        return None
    code = value.strip().upper()
    if code not in US_STATE_CODES:
        raise ValueError(f"'{value}' is not a US state or territory code (e.g. CA, TX, PR)")
    return code


class SiteFields(InputSchema):
    """The homeowner's details; every field optional (collected after commissioning)."""

    first_name: ShortText | None = None
    last_name: ShortText | None = None
    company_name: ShortText | None = None
    email: EmailStr | None = None
    state_code: str | None = None
    city: ShortText | None = None
    zip_code: Annotated[str, Field(max_length=10, pattern=r"^\d{5}(-\d{4})?$")] | None = None
    street_address: AddressText | None = None
    street_address2: AddressText | None = None
    service_account_id: ShortText | None = Field(default=None, deprecated=True)
    tariff_id: ShortText | None = None

    _state = field_validator("state_code")(classmethod(lambda cls, v: validate_state_code(v)))


class SiteUpdate(SiteFields):
    """PATCH /v1/site/{siteId}: only the fields sent change; null clears a field."""


class SiteCommission(SiteFields):
    """The site part of commission and sessions: only `id` is required."""

    id: ExternalId


class SiteRead(Schema):
    id: str
    first_name: str | None
    last_name: str | None
    company_name: str | None
    email: str | None
    state_code: str | None
    city: str | None
    zip_code: str | None
    street_address: str | None
    street_address2: str | None
    service_account_id: str | None
    tariff_id: str | None
    created_at: UTCDatetime
    updated_at: UTCDatetime


class SiteTokenRead(Schema):
    site_access_token: str
    expires_at: UTCDatetime
