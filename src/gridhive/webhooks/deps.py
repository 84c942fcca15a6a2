"""Who may manage webhook endpoints and delivery settings: OEMs and utilities, by key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from gridhive.auth.deps import AnyPrincipal
from gridhive.auth.errors import WrongPrincipal
from gridhive.auth.models import OrgKind
from gridhive.auth.service import Principal


async def _tenant(principal: AnyPrincipal) -> Principal:
    if principal.kind not in (OrgKind.OEM, OrgKind.UTILITY):
        raise WrongPrincipal("This endpoint needs an oem or utility credential")
    if principal.via == "site":
        raise WrongPrincipal("A site token cannot be used here; use the OEM's client token")
    return principal


# An OEM's or a utility's API key or OAuth token; each sees only its own organisation's objects.
TenantPrincipal = Annotated[Principal, Depends(_tenant)]
