"""Admin: programs are created by the platform operator for a utility."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query

from gridhive.auth.deps import AdminPrincipal, SessionDep
from gridhive.idempotency.routing import IdempotentRoute
from gridhive.kit.pagination import PageDep
from gridhive.programs import service
from gridhive.programs.schemas import ProgramAdminRead, ProgramCreate

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
