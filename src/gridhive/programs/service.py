"""Programs: created by the operator for a utility, offered to sites by territory and device."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.auth import service as auth_service
from gridhive.auth.models import OrgKind
from gridhive.kit.pagination import Page
from gridhive.programs.errors import ProgramNotFound
from gridhive.programs.models import Program
from gridhive.programs.schemas import ProgramCreate


async def create_program(
    session: AsyncSession, *, utility_id: uuid.UUID, data: ProgramCreate
) -> Program:
    await auth_service.get_organization_or_raise(session, utility_id, kind=OrgKind.UTILITY)
    values = data.model_dump(mode="json")
    program = Program(utility_id=utility_id, **values)
    session.add(program)
    await session.flush()
    return program


async def get_program(session: AsyncSession, program_id: uuid.UUID) -> Program | None:
    return await session.get(Program, program_id)


async def get_program_or_raise(
    session: AsyncSession, program_id: uuid.UUID, *, utility_id: uuid.UUID | None = None
) -> Program:
    """A program by id; with `utility_id`, another utility's program does not exist."""
    program = await session.get(Program, program_id)
    if program is None or (utility_id is not None and program.utility_id != utility_id):
        raise ProgramNotFound(f"No program with id {program_id}")
    return program


async def search_programs(
    session: AsyncSession, *, utility_id: uuid.UUID | None = None, page: Page | None = None
) -> Sequence[Program]:
    stmt = sa.select(Program).order_by(Program.created_at, Program.id)
    if utility_id is not None:
        stmt = stmt.where(Program.utility_id == utility_id)
    if page is not None:
        stmt = stmt.offset(page.skip).limit(page.limit)
    return (await session.scalars(stmt)).all()
