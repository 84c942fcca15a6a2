"""Programs: created by the platform operator (Admin), listed for device makers (Cloud API)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AfterValidator

from gridhive.auth.deps import AdminPrincipal, OemPrincipal, SessionDep
from gridhive.idempotency.routing import IdempotentRoute
from gridhive.kit.pagination import PageDep
from gridhive.programs import service
from gridhive.programs.schemas import (
    DeviceTypeName,
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
