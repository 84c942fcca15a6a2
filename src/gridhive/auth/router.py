"""OAuth client credentials, and the operator's organisation and key administration."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from gridhive.auth import service
from gridhive.auth.deps import AdminPrincipal, SessionDep
from gridhive.auth.errors import InvalidCredentials
from gridhive.auth.models import OrgKind
from gridhive.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    OAuthTokenResponse,
    OrganizationCreate,
    OrganizationRead,
)
from gridhive.config import Settings
from gridhive.errors import BadRequest
from gridhive.idempotency.routing import IdempotentRoute

oauth_router = APIRouter(tags=["OAuth"], route_class=IdempotentRoute)
admin_router = APIRouter(prefix="/admin/v1", tags=["Admin"], route_class=IdempotentRoute)

basic_scheme = HTTPBasic(auto_error=False)


@oauth_router.post("/oauth/token", response_model=OAuthTokenResponse)
async def issue_oauth_token(
    request: Request,
    session: SessionDep,
    grant_type: Annotated[str, Form()],
    basic: Annotated[HTTPBasicCredentials | None, Depends(basic_scheme)],
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
) -> OAuthTokenResponse:
    """OAuth 2.0 client credentials: `client_id` is the key's public id, `client_secret` its secret.

    The credentials may also come as HTTP Basic auth. The access token lasts one hour and is
    accepted wherever the key is.
    """
    if grant_type != "client_credentials":
        raise BadRequest(
            "Only grant_type=client_credentials is supported", code="unsupported_grant_type"
        )
    if basic is not None:
        client_id, client_secret = basic.username, basic.password
    if not client_id or not client_secret:
        raise InvalidCredentials("client_id and client_secret are required", code="invalid_client")
    settings: Settings = request.app.state.settings
    ttl = settings.auth.oauth_token_ttl_s
    token = await service.issue_oauth_token(
        session, client_id=client_id, client_secret=client_secret, ttl=timedelta(seconds=ttl)
    )
    return OAuthTokenResponse(access_token=token, expires_in=ttl)


@admin_router.post("/orgs", response_model=OrganizationRead)
async def create_organization(
    body: OrganizationCreate, session: SessionDep, _: AdminPrincipal
) -> object:
    """Create a utility or a device maker (OEM)."""
    return await service.create_organization(session, kind=OrgKind(body.kind), name=body.name)


@admin_router.get("/orgs", response_model=list[OrganizationRead])
async def search_organizations(session: SessionDep, _: AdminPrincipal) -> object:
    """Every organisation, oldest first."""
    return await service.search_organizations(session)


@admin_router.get("/orgs/{org_id}", response_model=OrganizationRead)
async def read_organization(org_id: uuid.UUID, session: SessionDep, _: AdminPrincipal) -> object:
    """One organisation."""
    return await service.get_organization_or_raise(session, org_id)


@admin_router.post("/orgs/{org_id}/keys", response_model=ApiKeyCreated)
async def create_api_key(
    org_id: uuid.UUID, session: SessionDep, _: AdminPrincipal, body: ApiKeyCreate | None = None
) -> ApiKeyCreated:
    """Create an API key for the organisation. The full key is in this answer only."""
    key, text = await service.create_api_key(
        session, org_id=org_id, name=body.name if body else None
    )
    return ApiKeyCreated(id=key.id, org_id=key.org_id, key=text)


@admin_router.get("/orgs/{org_id}/keys", response_model=list[ApiKeyRead])
async def search_api_keys(org_id: uuid.UUID, session: SessionDep, _: AdminPrincipal) -> object:
    """The organisation's keys (prefixes only), revoked ones included."""
    await service.get_organization_or_raise(session, org_id)
    keys = await service.search_api_keys(session, org_id=org_id)
    return [ApiKeyRead.from_key(k, prefix=service.key_prefix(k)) for k in keys]


@admin_router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(key_id: uuid.UUID, session: SessionDep, _: AdminPrincipal) -> None:
    """Revoke a key; its OAuth tokens stop working at once."""
    await service.revoke_api_key(session, key_id)
