"""Who is calling, and may they use this door. Typed dependency aliases for routers."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.auth import service
from gridhive.auth.errors import InvalidCredentials, WrongPrincipal
from gridhive.auth.models import OrgKind
from gridhive.auth.service import Principal
from gridhive.db.session import get_session
from gridhive.idempotency import service as idempotency_service

SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An API key `ghk_...`, an OAuth access token, or a site token",
)


async def get_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """Authenticate the caller; for a POST with `Idempotency-Key`, replay or guard the key."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidCredentials("Missing credentials: send 'Authorization: Bearer <token>'")
    principal = await service.authenticate(session, credentials.credentials)
    request.state.principal = principal
    await _check_idempotency(request, session, principal)
    return principal


async def _check_idempotency(request: Request, session: AsyncSession, principal: Principal) -> None:
    key = request.headers.get("idempotency-key")
    if request.method != "POST" or key is None:
        return
    body = await request.body()
    pending = idempotency_service.PendingKey(
        org_id=principal.org_id,
        key=key,
        method=request.method,
        path=request.url.path,
        request_hash=idempotency_service.request_fingerprint(
            request.method, request.url.path, body
        ),
    )
    await idempotency_service.check(session, pending)
    request.state.idempotency = pending


def _require(
    *kinds: OrgKind, allow_site_token: bool = False
) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    labels = " or ".join(k.value for k in kinds)

    async def dependency(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.kind not in kinds:
            raise WrongPrincipal(f"This endpoint needs a {labels} credential")
        if principal.via == "site" and not allow_site_token:
            raise WrongPrincipal("A site token cannot be used here; use the OEM's client token")
        return principal

    return dependency


# The OEM's client token (API key or OAuth token): the Cloud API.
OemPrincipal = Annotated[Principal, Depends(_require(OrgKind.OEM))]
# An OEM client token or a site token: the Mobile App API (site checks in sites.deps).
SiteCaller = Annotated[Principal, Depends(_require(OrgKind.OEM, allow_site_token=True))]
UtilityPrincipal = Annotated[Principal, Depends(_require(OrgKind.UTILITY))]
AdminPrincipal = Annotated[Principal, Depends(_require(OrgKind.OPERATOR))]
AnyPrincipal = Annotated[Principal, Depends(get_principal)]
