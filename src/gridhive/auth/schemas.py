from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from gridhive.auth.models import ApiKey, OrgKind
from gridhive.kit.schemas import InputSchema, Schema, UTCDatetime


class OrganizationCreate(InputSchema):
    kind: Literal["utility", "oem"]
    name: str = Field(min_length=1, max_length=200)


class OrganizationRead(Schema):
    id: uuid.UUID
    kind: OrgKind
    name: str
    created_at: UTCDatetime


class ApiKeyCreate(InputSchema):
    name: str | None = Field(default=None, max_length=200)


class ApiKeyRead(Schema):
    id: uuid.UUID
    org_id: uuid.UUID
    prefix: str = Field(description="`ghk_<public id>`: enough to recognise a key, not to use it")
    name: str | None
    created_at: UTCDatetime
    revoked_at: UTCDatetime | None

    @classmethod
    def from_key(cls, key: ApiKey, *, prefix: str) -> ApiKeyRead:
        return cls(
            id=key.id,
            org_id=key.org_id,
            prefix=prefix,
            name=key.name,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )


class ApiKeyCreated(Schema):
    id: uuid.UUID
    org_id: uuid.UUID
    key: str = Field(description="The full key. It is shown once and cannot be recovered.")


class OAuthTokenResponse(Schema):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
