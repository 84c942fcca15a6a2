"""Programs: created by the platform operator (Admin), listed for device makers (Cloud API)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status
from pydantic import AfterValidator

from gridhive.auth.deps import AdminPrincipal, OemPrincipal, SessionDep, UtilityPrincipal
from gridhive.idempotency.routing import IdempotentRoute
from gridhive.kit.pagination import PageDep
from gridhive.programs import service
from gridhive.programs.models import Program
from gridhive.programs.schemas import (
    DeviceTypeName,
    GroupCreate,
    GroupRead,
    GroupUpdate,
    ProgramAdminRead,
    ProgramCreate,
    ProgramEligibility,
    ProgramRead,
    known_state_code,
)

admin_router = APIRouter(prefix="/admin/v1", tags=["Admin"], route_class=IdempotentRoute)


class AdminProgramCreate(ProgramCreate):
    utility_id: uuid.UUID


@admin_router.post("/programs", response_model=ProgramAdminRead)
async def create_program(
    body: AdminProgramCreate, session: SessionDep, _: AdminPrincipal
) -> object:
    """Create a program for a utility (the same fields as `gridhive admin create-program`)."""
    data = ProgramCreate.model_validate(body.model_dump(exclude={"utility_id"}))
    return await service.create_program(session, utility_id=body.utility_id, data=data)


@admin_router.get("/programs", response_model=list[ProgramAdminRead])
async def search_programs(
    session: SessionDep,
    _: AdminPrincipal,
    page: PageDep,
    utility_id: uuid.UUID | None = Query(default=None),
) -> object:
    """Every program, optionally of one utility."""
    return await service.search_programs(session, utility_id=utility_id, page=page)


@admin_router.get("/programs/{program_id}", response_model=ProgramAdminRead)
async def read_program(program_id: uuid.UUID, session: SessionDep, _: AdminPrincipal) -> object:
    """One program with its territory and dispatch rules."""
    return await service.get_program_or_raise(session, program_id)


cloud_router = APIRouter(prefix="/v1", tags=["Cloud API"], route_class=IdempotentRoute)

# The ceiling keeps absurd values away from the database (ratings compare as BIGINT there).
MAX_RATING = 10**12


def cloud_eligibility(
    device_type: Annotated[DeviceTypeName, Query(description="BATTERY or EV_CHARGER")],
    total_capacity_wh: Annotated[
        int, Query(ge=1, le=MAX_RATING, description="Nominal capacity in Wh, e.g. 16000")
    ],
    total_power_w: Annotated[
        int, Query(ge=1, le=MAX_RATING, description="Rated continuous power in W")
    ],
    zip_code: Annotated[str | None, Query(pattern=r"^\d{5}(-\d{4})?$")] = None,
    state_code: Annotated[str | None, AfterValidator(known_state_code), Query()] = None,
) -> ProgramEligibility:
    return ProgramEligibility(
        device_type=device_type,
        zip_code=zip_code,
        state_code=state_code,
        capacity_wh=total_capacity_wh,
        power_w=total_power_w,
    )


@cloud_router.get("/programs", response_model=list[ProgramRead])
async def read_programs(
    session: SessionDep,
    _: OemPrincipal,
    page: PageDep,
    eligibility: Annotated[ProgramEligibility, Depends(cloud_eligibility)],
) -> object:
    """Programs a device with these ratings is eligible for at this location, oldest first.

    Without `zip_code` and `state_code` only programs open everywhere match. Sandbox zips
    (88800, 88801, 88802) match test programs only.
    """
    return await service.search_offered_programs(session, eligibility, page=page)


utility_router = APIRouter(prefix="/v1", tags=["Utility API"], route_class=IdempotentRoute)

ProgramIdPath = Annotated[uuid.UUID, Path(alias="programId", description="Your program's id")]
GroupIdPath = Annotated[str, Path(alias="id", min_length=1, max_length=100, description="Group id")]


async def _program_of_caller(
    session: SessionDep, principal: UtilityPrincipal, program_id: ProgramIdPath
) -> Program:
    return await service.get_program_or_raise(session, program_id, utility_id=principal.org_id)


CallersProgram = Annotated[Program, Depends(_program_of_caller)]


@utility_router.get("/programs/{programId}/groups", response_model=list[GroupRead])
async def read_groups(program: CallersProgram, session: SessionDep, page: PageDep) -> object:
    """The program's groups, oldest first (`skip`/`limit` are our addition)."""
    return await service.search_groups(session, program, page=page)


@utility_router.post("/programs/{programId}/groups", response_model=GroupRead)
async def create_group(program: CallersProgram, body: GroupCreate, session: SessionDep) -> object:
    """Create a group with your own id (letters, digits, `-`, `_`); an id in use is a 409.

    Sites join groups through `PATCH /v1/enrollments/{id}` with `group_ids`.
    """
    return await service.create_group(session, program, body)


@utility_router.patch("/programs/{programId}/groups/{id}", response_model=GroupRead)
async def update_group(
    program: CallersProgram, group_id: GroupIdPath, body: GroupUpdate, session: SessionDep
) -> object:
    """Rename a group or change its id (an id in use is a 409); its sites stay in it."""
    group = await service.get_group_or_raise(session, program, group_id)
    return await service.update_group(session, program, group, body)


@utility_router.delete(
    "/programs/{programId}/groups/{id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def delete_group(program: CallersProgram, group_id: GroupIdPath, session: SessionDep) -> None:
    """Delete a group. Its sites lose the membership; their enrollments stay in the program."""
    group = await service.get_group_or_raise(session, program, group_id)
    await service.delete_group(session, group)
