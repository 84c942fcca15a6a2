"""Devices of a site (Mobile App API; creating one needs the client token, as in Flip)."""

from __future__ import annotations

from fastapi import APIRouter

from gridhive.auth.deps import OemPrincipal, SessionDep
from gridhive.devices import service
from gridhive.devices.deps import DeviceIdPath
from gridhive.devices.schemas import DeviceCreate, DeviceRead, DeviceUpdate
from gridhive.idempotency.routing import IdempotentRoute
from gridhive.kit.pagination import PageDep
from gridhive.sites import service as site_service
from gridhive.sites.deps import SiteDep, SiteIdPath

router = APIRouter(prefix="/v1/site/{siteId}", tags=["Mobile App API"], route_class=IdempotentRoute)


@router.post("/devices", response_model=DeviceRead)
async def create_device(
    site_id: SiteIdPath, body: DeviceCreate, session: SessionDep, principal: OemPrincipal
) -> object:
    """Create a device at the site (client token). A live device id can exist only once."""
    site = await site_service.get_site_or_raise(
        session, tenant_id=principal.org_id, site_id=site_id
    )
    return await service.create_device(session, site=site, data=body)


@router.get("/devices", response_model=list[DeviceRead])
async def read_devices(site: SiteDep, session: SessionDep, page: PageDep) -> object:
    """The site's devices."""
    return await service.search_devices(session, site=site, page=page)


@router.get("/device/{deviceId}", response_model=DeviceRead)
async def read_device(site: SiteDep, device_id: DeviceIdPath, session: SessionDep) -> object:
    """One device of the site."""
    return await service.get_device_or_raise(session, site=site, device_id=device_id)


@router.patch("/device/{deviceId}", response_model=DeviceRead)
async def update_device(
    site: SiteDep, device_id: DeviceIdPath, body: DeviceUpdate, session: SessionDep
) -> object:
    """Update a device's ratings (`attributes`) or its reserve (`configuration`)."""
    device = await service.get_device_or_raise(session, site=site, device_id=device_id)
    return await service.update_device(session, device, body)
