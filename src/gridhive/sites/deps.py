"""The site a Mobile App API path names, resolved for the caller (site token or client token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from gridhive.auth.deps import SessionDep, SiteCaller
from gridhive.sites import service
from gridhive.sites.models import Site

SiteIdPath = Annotated[
    str, Path(alias="siteId", min_length=1, max_length=255, description="Your site id")
]


async def resolve_site(session: SessionDep, principal: SiteCaller, site_id: SiteIdPath) -> Site:
    return await service.get_site_for_caller(session, principal, site_id)


SiteDep = Annotated[Site, Depends(resolve_site)]
