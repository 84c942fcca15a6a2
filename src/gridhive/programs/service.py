"""Programs: created by the operator for a utility, offered to sites by territory and device."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from gridhive.auth import service as auth_service
from gridhive.auth.models import OrgKind
from gridhive.errors import FieldError, Unprocessable
from gridhive.kit.pagination import Page
from gridhive.kit.time import utc_now
from gridhive.programs.errors import GroupAlreadyExists, GroupNotFound, ProgramNotFound
from gridhive.programs.models import Group, Program, SiteGroup
from gridhive.programs.schemas import GroupCreate, GroupUpdate, ProgramCreate, ProgramEligibility

# Sandbox zips let an integration try enrollment end to end: they match test programs only.
SANDBOX_ZIP_CODES = frozenset({"88800", "88801", "88802"})


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


# Eligibility -----------------------------------------------------------------------------------


def offer_problem(program: Program, query: ProgramEligibility) -> str | None:
    """Why `program` is not offered for `query`, or None when it is.

    The one eligibility rule behind every program listing, enrollment check and commission.
    Battery minimums apply to battery queries only, and only when the ratings are judged.
    """
    if not program.participation_months:
        return "the program has no participation months"
    if query.device_type not in program.eligible_device_types:
        allowed = ", ".join(program.eligible_device_types)
        return f"the program takes {allowed} devices, not {query.device_type}"
    if not _in_territory(program, query.zip_code, query.state_code):
        return "the program is not offered at this location"
    if query.device_type != "BATTERY":
        return None
    return _rating_problem(
        program.minimum_battery_capacity_wh, query.capacity_wh, "Wh of battery capacity"
    ) or _rating_problem(program.minimum_battery_power_w, query.power_w, "W of battery power")


def _in_territory(program: Program, zip_code: str | None, state_code: str | None) -> bool:
    if is_sandbox_zip(zip_code):
        return program.is_test
    zip5 = zip_code[:5] if zip_code else None  # ZIP+4 matches its five-digit zip
    if not program.zip_codes and not program.state_codes:
        return True
    in_zip = zip5 is not None and zip5 in program.zip_codes
    return in_zip or (state_code is not None and state_code.upper() in program.state_codes)


def is_sandbox_zip(zip_code: str | None) -> bool:
    return zip_code is not None and zip_code[:5] in SANDBOX_ZIP_CODES


def _rating_problem(minimum: int | None, total: int | None, unit: str) -> str | None:
    if minimum is None or total is None or total >= minimum:
        return None
    return f"the program needs at least {minimum} {unit}; the batteries total {total}"


async def search_offered_programs(
    session: AsyncSession, query: ProgramEligibility, *, page: Page | None = None
) -> list[Program]:
    """Programs offered for `query`, oldest first."""
    stmt = sa.select(Program).order_by(Program.created_at, Program.id)
    if is_sandbox_zip(query.zip_code):
        stmt = stmt.where(Program.is_test.is_(True))
    if query.device_type == "BATTERY":
        stmt = stmt.where(
            _meets(Program.minimum_battery_capacity_wh, query.capacity_wh),
            _meets(Program.minimum_battery_power_w, query.power_w),
        )
    # Device types, territory and months are JSON lists, whose membership tests differ between
    # SQLite and PostgreSQL; a deployment has tens of programs, so those are filtered here.
    offered = [p for p in await session.scalars(stmt) if offer_problem(p, query) is None]
    if page is None:
        return offered
    return offered[page.skip : page.skip + page.limit]


def _meets(minimum: InstrumentedAttribute[int | None], total: int | None) -> sa.ColumnElement[bool]:
    if total is None:
        return sa.true()
    # BIGINT: a site's summed ratings can pass the INTEGER column's range on PostgreSQL.
    return sa.or_(minimum.is_(None), minimum <= sa.literal(total, sa.BigInteger()))


# Groups ----------------------------------------------------------------------------------------


async def search_groups(
    session: AsyncSession, program: Program, *, page: Page | None = None
) -> Sequence[Group]:
    """The program's groups, oldest first."""
    stmt = (
        sa.select(Group).where(Group.program_id == program.id).order_by(Group.created_at, Group.pk)
    )
    if page is not None:
        stmt = stmt.offset(page.skip).limit(page.limit)
    return (await session.scalars(stmt)).all()


async def get_group(session: AsyncSession, program: Program, group_id: str) -> Group | None:
    return await session.scalar(
        sa.select(Group).where(Group.program_id == program.id, Group.id == group_id)
    )


async def get_group_or_raise(session: AsyncSession, program: Program, group_id: str) -> Group:
    group = await get_group(session, program, group_id)
    if group is None:
        raise GroupNotFound(f"No group with id '{group_id}' in program {program.id}")
    return group


async def create_group(session: AsyncSession, program: Program, data: GroupCreate) -> Group:
    await _check_group_id_free(session, program, data.id)
    group = Group(program_id=program.id, id=data.id, name=data.name)
    session.add(group)
    await session.flush()
    return group


async def update_group(
    session: AsyncSession, program: Program, group: Group, data: GroupUpdate
) -> Group:
    """Rename or re-id a group; memberships follow, as they hang on the group's surrogate key."""
    if data.id is not None and data.id != group.id:
        await _check_group_id_free(session, program, data.id)
        group.id = data.id
    if data.name is not None:
        group.name = data.name
    group.updated_at = utc_now()
    await session.flush()
    return group


async def delete_group(session: AsyncSession, group: Group) -> None:
    """Delete the group; the sites' enrollments stay as they are.

    Its memberships go with it: site_groups.group_pk cascades on delete (foreign keys are on
    for SQLite too, see db/engine.py).
    """
    await session.delete(group)
    await session.flush()


async def _check_group_id_free(session: AsyncSession, program: Program, group_id: str) -> None:
    if await get_group(session, program, group_id) is not None:
        raise GroupAlreadyExists(
            f"Program {program.id} already has a group with id '{group_id}'",
            errors=[FieldError(message="already exists in this program", path="id")],
        )


async def replace_site_groups(
    session: AsyncSession, *, program_id: uuid.UUID, site_pk: uuid.UUID, group_ids: Sequence[str]
) -> None:
    """Make `group_ids` the site's groups in the program (`[]` removes them all).

    Groups of other programs are left alone; an unknown id is a 422 naming `group_ids.N`.
    """
    wanted = list(dict.fromkeys(group_ids))
    groups = (
        await session.scalars(
            sa.select(Group).where(Group.program_id == program_id, Group.id.in_(wanted))
        )
    ).all()
    pk_of = {g.id: g.pk for g in groups}
    unknown = [
        FieldError(message=f"no group '{gid}' in program {program_id}", path=f"group_ids.{index}")
        for index, gid in enumerate(group_ids)
        if gid not in pk_of
    ]
    if unknown:
        raise Unprocessable(f"Unknown group: {unknown[0].message}", errors=unknown)
    of_program = sa.select(Group.pk).where(Group.program_id == program_id)
    await session.execute(
        sa.delete(SiteGroup).where(SiteGroup.site_pk == site_pk, SiteGroup.group_pk.in_(of_program))
    )
    session.add_all(SiteGroup(group_pk=pk_of[gid], site_pk=site_pk) for gid in wanted)
    await session.flush()


async def groups_of_sites(
    session: AsyncSession, *, program_id: uuid.UUID, site_pks: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Group]]:
    """Each site's groups in the program, by site, in one query (for lists of enrollments)."""
    rows = await session.execute(
        sa.select(SiteGroup.site_pk, Group)
        .join(Group, Group.pk == SiteGroup.group_pk)
        .where(Group.program_id == program_id, SiteGroup.site_pk.in_(set(site_pks)))
        .order_by(Group.created_at, Group.pk)
    )
    found: dict[uuid.UUID, list[Group]] = {}
    for site_pk, group in rows:
        found.setdefault(site_pk, []).append(group)
    return found
