"""Sites: the Cloud API's list and site token, the Mobile App API's read and update."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request

from gridhive.auth.deps import OemPrincipal, SessionDep
from gridhive.config import Settings
from gridhive.idempotency.routing import IdempotentRoute
from gridhive.kit.pagination import PageDep
from gridhive.sites import service
from gridhive.sites.deps import SiteDep, SiteIdPath
from gridhive.sites.schemas import SiteRead, SiteTokenRead, SiteUpdate

cloud_router = APIRouter(prefix="/v1", tags=["Cloud API"], route_class=IdempotentRoute)
mobile_router = APIRouter(prefix="/v1", tags=["Mobile App API"], route_class=IdempotentRoute)


@cloud_router.get("/sites", response_model=list[SiteRead])
async def get_sites(session: SessionDep, principal: OemPrincipal, page: PageDep) -> object:
    """Get all registered sites of your organisation, oldest first."""
    return await service.search_sites(session, tenant_id=principal.org_id, page=page)


@cloud_router.post("/auth/site/{siteId}", response_model=SiteTokenRead)
async def get_site_token(
    request: Request, site_id: SiteIdPath, session: SessionDep, principal: OemPrincipal
) -> SiteTokenRead:
    """A token for the homeowner's app: one hour, this site only (403 on any other site)."""
    site = await service.get_site_or_raise(session, tenant_id=principal.org_id, site_id=site_id)
    settings: Settings = request.app.state.settings
    ttl = timedelta(seconds=settings.auth.site_token_ttl_s)
    token, expires_at = await service.issue_site_token(session, principal, site, ttl=ttl)
    return SiteTokenRead(site_access_token=token, expires_at=expires_at)


@mobile_router.get("/site/{siteId}", response_model=SiteRead)
async def read_site(site: SiteDep) -> object:
    """Read the site."""
    return site


@mobile_router.patch("/site/{siteId}", response_model=SiteRead)
async def update_site(site: SiteDep, body: SiteUpdate, session: SessionDep) -> object:
    """Update the homeowner's details. `state_code` must be a US state or territory code."""
    return await service.update_site(session, site, body)
