"""Commands for the OEM's cloud: polling and acknowledgement (Cloud API); and the Mobile App
and Utility API routes whose changes cancel commands (device delete, unenroll, utility PATCH)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import JSONResponse

from gridhive.auth.deps import OemPrincipal, SessionDep, UtilityPrincipal
from gridhive.commands import lifecycle, service
from gridhive.commands.models import CommandStatus, DeviceStatus
from gridhive.commands.schemas import CommandAck, CommandRead
from gridhive.devices import service as device_service
from gridhive.devices.deps import DeviceIdPath
from gridhive.enrollments import service as enrollment_service
from gridhive.enrollments import utility as enrollment_utility
from gridhive.enrollments.schemas import UtilityEnrollmentRead, UtilityEnrollmentUpdate
from gridhive.idempotency.routing import IdempotentRoute
from gridhive.kit.pagination import PageDep
from gridhive.sites.deps import SiteDep

router = APIRouter(prefix="/v1", tags=["Cloud API"], route_class=IdempotentRoute)


@router.get("/commands", response_model=list[CommandRead])
async def read_commands(
    session: SessionDep,
    principal: OemPrincipal,
    page: PageDep,
    updated_since: Annotated[datetime | None, Query()] = None,
    status: Annotated[list[CommandStatus] | None, Query()] = None,
    device_status: Annotated[list[DeviceStatus] | None, Query()] = None,
    device_id: Annotated[str | None, Query(max_length=255)] = None,
) -> object:
    """Poll your commands, ordered by `updated_at` (oldest first).

    `updated_since` is inclusive. A command's `updated_at` is the time the change that wrote it
    began. A dispatch or an event's cancellation commits seconds later, so a poll made while
    one is under way waits for it to commit and then includes its commands (on SQLite nothing
    else commits meanwhile): going on from the newest `updated_at` you have seen misses none
    of them. Other changes (an ack, an opt-out, the scheduler's end-of-event and re-send
    updates) are not waited for, so re-reading an overlap is still wise: poll from the newest
    `updated_at` seen minus a few minutes (`gridhive simulate` re-reads 60 s), keep commands
    by `id`, and expect to see some again. `status` and `device_status` may be repeated.
    """
    filters = service.CommandFilter(
        updated_since=updated_since,
        statuses=status or (),
        device_statuses=device_status or (),
        device_id=device_id,
    )
    return await service.search_commands(
        session, tenant_id=principal.org_id, filters=filters, page=page
    )


async def _acknowledge(
    command_id: Annotated[uuid.UUID, Path(alias="id", description="Command id")],
    body: CommandAck,
    session: SessionDep,
    principal: OemPrincipal,
) -> Response:
    # The service answers with Flip's Command as JSON already (`command_payload`, the shape
    # of CommandRead): sent as it is, without validating it again against the response model.
    payload = await service.acknowledge(
        session, tenant_id=principal.org_id, command_id=command_id, ack=body
    )
    return JSONResponse(payload)


router.add_api_route(
    "/command/{id}",
    _acknowledge,
    methods=["PATCH"],
    response_model=CommandRead,
    summary="Update Command Status",
    description=(
        "Acknowledge a command: `OK` once it is scheduled on the device, `FAILED_OFFLINE` or "
        "`FAILED_FAULT` otherwise (the older `FAILED` is accepted as `FAILED_FAULT`). "
        "Acknowledge again after a command becomes CANCELED or OPT_OUT. Idempotent."
    ),
)
router.add_api_route(
    "/commands/{id}",
    _acknowledge,
    methods=["PATCH"],
    response_model=CommandRead,
    summary="Update Command Status (alias)",
    description="The same as `PATCH /v1/command/{id}`; the plural path of Flip's Control guide.",
)


# Routes whose changes end commands (commands.lifecycle). Their paths belong to the Mobile App
# and Utility APIs; they live here because only this domain may import devices, enrollments and
# commands together.
mobile_router = APIRouter(
    prefix="/v1/site/{siteId}", tags=["Mobile App API"], route_class=IdempotentRoute
)
utility_router = APIRouter(prefix="/v1", tags=["Utility API"], route_class=IdempotentRoute)


@mobile_router.delete(
    "/device/{deviceId}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
async def delete_device(site: SiteDep, device_id: DeviceIdPath, session: SessionDep) -> None:
    """Delete a device. Its unfinished commands are canceled (`command.canceled`); its history
    (telemetry, commands, events) stays readable."""
    device = await device_service.get_device_or_raise(session, site=site, device_id=device_id)
    await lifecycle.delete_device(session, device)


@mobile_router.delete(
    "/enrollment/{enrollmentId}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
async def delete_enrollment(
    site: SiteDep,
    enrollment_id: Annotated[uuid.UUID, Path(alias="enrollmentId")],
    session: SessionDep,
) -> None:
    """Unenroll: the enrollment becomes UNENROLLED and stays readable; the unfinished commands
    of the program's events on its devices are canceled."""
    enrollment = await enrollment_service.get_enrollment_or_raise(
        session, site=site, enrollment_id=enrollment_id
    )
    await lifecycle.unenroll(session, enrollment)


@utility_router.patch("/enrollments/{id}", response_model=UtilityEnrollmentRead)
async def update_enrollment(
    enrollment_id: Annotated[uuid.UUID, Path(alias="id", description="Enrollment id")],
    body: UtilityEnrollmentUpdate,
    session: SessionDep,
    principal: UtilityPrincipal,
) -> UtilityEnrollmentRead:
    """Approve (`ACTIVE`), pause, reject or unenroll, and set the site's groups.

    Allowed moves: CREATED, SUBMITTED, PENDING and NEEDS_ACTION to one another (never back to
    CREATED), to ACTIVE or REJECTED; ACTIVE and PAUSED to each other; any open status to
    UNENROLLED. REJECTED and UNENROLLED are final. Another move is a 409; the same status again
    changes nothing. Leaving ACTIVE cancels the devices' unfinished commands of this program.
    `group_ids` replaces the site's groups in the program (`[]` removes them all); an unknown
    id is a 422 naming `group_ids.N`.
    """
    enrollment = await enrollment_utility.get_enrollment_for_utility_or_raise(
        session, utility_id=principal.org_id, enrollment_id=enrollment_id
    )
    await lifecycle.update_enrollment_for_utility(session, enrollment, body)
    return await enrollment_utility.utility_enrollment(session, enrollment)
