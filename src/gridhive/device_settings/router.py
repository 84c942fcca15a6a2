"""Settings requests: the homeowner asks (Mobile App API), the OEM applies and reports (Cloud API).

Flip names `PATCH /v1/settings/{settingsRequestId}` and the `settings.apply` webhook but
documents no bodies; the objects here are ours, described in the OpenAPI.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from gridhive.auth.deps import OemPrincipal, SessionDep
from gridhive.device_settings import service
from gridhive.device_settings.models import SettingsRequest, SettingsStatus
from gridhive.device_settings.schemas import (
    SettingsOutcome,
    SettingsRequestCreate,
    SettingsRequestRead,
)
from gridhive.devices import service as device_service
from gridhive.devices.deps import DeviceIdPath
from gridhive.idempotency.routing import IdempotentRoute
from gridhive.kit.pagination import PageDep
from gridhive.sites.deps import SiteDep

mobile_router = APIRouter(
    prefix="/v1/site/{siteId}", tags=["Mobile App API"], route_class=IdempotentRoute
)
cloud_router = APIRouter(prefix="/v1", tags=["Cloud API"], route_class=IdempotentRoute)

SettingsRequestIdPath = Annotated[
    uuid.UUID, Path(alias="settingsRequestId", description="The settings request id")
]
Responses = dict[int | str, dict[str, Any]]
_NO_DEVICE: Responses = {404: {"description": "No such site or device (or another OEM's)"}}
_NO_REQUEST: Responses = {404: {"description": "No such settings request (or another OEM's)"}}
_REJECTED: Responses = {
    422: {
        "description": "No setting sent, a value out of range, a device that is not a battery, "
        "or a reserve below the minimum of a program the device is actively enrolled in"
    }
}
_FINAL: Responses = {409: {"description": "A different final outcome was already reported"}}


@mobile_router.post(
    "/device/{deviceId}/settings",
    response_model=SettingsRequestRead,
    responses={**_NO_DEVICE, **_REJECTED},
)
async def create_settings_request(
    site: SiteDep, device_id: DeviceIdPath, body: SettingsRequestCreate, session: SessionDep
) -> SettingsRequest:
    """Ask for a change of the battery's settings (site token or client token).

    The request starts `PENDING`; the device's OEM receives a `settings.apply` webhook whose
    `event_object` is this request with `object_type: "settings_request"`, pushes the settings
    to the device and reports the outcome with `PATCH /v1/settings/{settingsRequestId}`.
    """
    device = await device_service.get_device_or_raise(session, site=site, device_id=device_id)
    return await service.create_settings_request(session, device=device, data=body)


@mobile_router.get(
    "/device/{deviceId}/settings", response_model=list[SettingsRequestRead], responses=_NO_DEVICE
)
async def read_settings_requests(
    site: SiteDep, device_id: DeviceIdPath, session: SessionDep, page: PageDep
) -> object:
    """The device's settings requests, newest first."""
    device = await device_service.get_device_or_raise(session, site=site, device_id=device_id)
    return await service.search_device_settings_requests(session, device=device, page=page)


@cloud_router.get(
    "/settings", response_model=list[SettingsRequestRead], summary="Poll Settings Requests"
)
async def read_oem_settings_requests(
    session: SessionDep,
    principal: OemPrincipal,
    page: PageDep,
    status: Annotated[list[SettingsStatus] | None, Query(description="Repeatable")] = None,
    updated_since: Annotated[datetime | None, Query(description="Inclusive")] = None,
) -> object:
    """Poll your settings requests (for OEMs that take no webhooks), oldest update first.

    `?status=PENDING` lists the ones still to apply.
    """
    filters = service.SettingsFilter(statuses=status or (), updated_since=updated_since)
    return await service.search_settings_requests(
        session, tenant_id=principal.org_id, filters=filters, page=page
    )


@cloud_router.get(
    "/settings/{settingsRequestId}", response_model=SettingsRequestRead, responses=_NO_REQUEST
)
async def read_settings_request(
    request_id: SettingsRequestIdPath, session: SessionDep, principal: OemPrincipal
) -> SettingsRequest:
    """One of your settings requests."""
    return await service.get_settings_request_or_raise(
        session, tenant_id=principal.org_id, request_id=request_id
    )


@cloud_router.patch(
    "/settings/{settingsRequestId}",
    response_model=SettingsRequestRead,
    summary="Update Settings Request Status",
    responses={**_NO_REQUEST, **_FINAL},
)
async def report_settings_outcome(
    request_id: SettingsRequestIdPath,
    body: SettingsOutcome,
    session: SessionDep,
    principal: OemPrincipal,
) -> SettingsRequest:
    """Report whether the settings were applied on the device (client token).

    `APPLIED` also sets the device's stored reserve (`configuration.reserve_percentage`).
    Reporting the same status again changes nothing; a different status after a final one is
    a 409.
    """
    settings_request = await service.get_settings_request_or_raise(
        session, tenant_id=principal.org_id, request_id=request_id
    )
    return await service.report_outcome(session, settings_request, body)
