"""Commands for the OEM's cloud: polling and acknowledgement (Cloud API)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from gridhive.auth.deps import OemPrincipal, SessionDep
from gridhive.commands import service
from gridhive.commands.models import CommandStatus, DeviceStatus
from gridhive.commands.schemas import CommandAck, CommandRead
from gridhive.idempotency.routing import IdempotentRoute
from gridhive.kit.pagination import PageDep

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

    Pass the largest `updated_at` you have seen as `updated_since` (inclusive): you get every
    command created or changed since, and may see the last ones again. `status` and
    `device_status` may be repeated.
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
) -> object:
    return await service.acknowledge(
        session, tenant_id=principal.org_id, command_id=command_id, ack=body
    )


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
