"""Organisations (tenants), their API keys and the short-lived tokens derived from them."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gridhive.db.base import Base, Timestamps, UUIDPrimaryKey


class OrgKind(enum.StrEnum):
    UTILITY = "utility"
    OEM = "oem"
    OPERATOR = "operator"


class TokenKind(enum.StrEnum):
    SITE = "site"  # one site, one hour, for the homeowner's app
    SESSION = "session"  # single use, opens the hosted portal
    OAUTH = "oauth"  # client-credentials access token, acts as the key it came from
    PORTAL = "portal"  # the hosted portal's cookie: one site, opened from a session token
    DASHBOARD = "dashboard"  # the dashboard's cookie: acts as the API key that signed in


class Organization(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "organizations"

    kind: Mapped[OrgKind] = mapped_column(sa.Enum(OrgKind, native_enum=False, length=16))
    name: Mapped[str] = mapped_column(sa.String(200))


class ApiKey(UUIDPrimaryKey, Timestamps, Base):
    """`ghk_<public_id>_<secret>`: the public id finds the row, only the secret's hash is kept."""

    __tablename__ = "api_keys"

    org_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    public_id: Mapped[str] = mapped_column(sa.String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str | None] = mapped_column(sa.String(200))
    revoked_at: Mapped[datetime | None]


class AccessToken(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "access_tokens"

    kind: Mapped[TokenKind] = mapped_column(sa.Enum(TokenKind, native_enum=False, length=16))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    org_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    # The site a site or session token is bound to (a surrogate key: site ids are per OEM).
    site_pk: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("sites.pk", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime]
    consumed_at: Mapped[datetime | None]
