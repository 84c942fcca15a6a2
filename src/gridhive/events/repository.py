"""The queries behind planning: who an event targets, and what it may overlap."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands.models import Command, CommandStatus, DeviceStatus
from gridhive.devices.models import Device
from gridhive.enrollments.models import Enrollment, EnrollmentDevice, EnrollmentStatus
from gridhive.events.models import Event
from gridhive.events.planning.types import ExistingCommand
from gridhive.programs.models import Group, SiteGroup
from gridhive.sites.models import Site

# Stay well under SQLite's limit on bound parameters when a target lists many ids.
IN_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class TargetRow:
    """One enrolled device of the program, with what the planner needs to know about it."""

    device_pk: uuid.UUID
    device_id: str
    device_type: str
    capacity_wh: int | None
    power_input_w: int | None
    power_output_w: int | None
    reserve_percentage: int
    state_of_charge_pct: float | None
    is_online: bool | None
    site_pk: uuid.UUID
    site_id: str
    tenant_id: uuid.UUID


def _enrolled_devices(program_id: uuid.UUID) -> sa.Select[*tuple[Any, ...]]:
    """Live devices listed in ACTIVE enrollments of the program."""
    return (
        sa.select(
            # Ids and type as the driver returns them, converted in `_rows`: SQLAlchemy's
            # per-value processing cost more than the query itself at 100,000 devices.
            sa.type_coerce(Device.pk, _RAW).label("device_pk"),
            Device.id,
            sa.type_coerce(Device.type, _RAW).label("device_type"),
            Device.battery_capacity_wh,
            Device.battery_power_input_w,
            Device.battery_power_output_w,
            Device.reserve_percentage,
            Device.state_of_charge_pct,
            Device.is_online,
            sa.type_coerce(Site.pk, _RAW).label("site_pk"),
            Site.id,
            sa.type_coerce(Site.tenant_id, _RAW).label("tenant_id"),
        )
        .select_from(Enrollment)
        .join(EnrollmentDevice, EnrollmentDevice.enrollment_id == Enrollment.id)
        .join(Device, Device.pk == EnrollmentDevice.device_pk)
        .join(Site, Site.pk == Enrollment.site_pk)
        .where(
            Enrollment.program_id == program_id,
            Enrollment.status == EnrollmentStatus.ACTIVE,
            Device.deleted_at.is_(None),
        )
        .order_by(Site.id, Device.id, Device.pk)
    )


# No result processing: UUIDs come as hex text from SQLite and as UUIDs from asyncpg.
_RAW = sa.types.NullType()


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    # UUID(int=...) skips the string clean-up of UUID(hex): a third of the cost, 200,000 times.
    return value if isinstance(value, uuid.UUID) else uuid.UUID(int=int(value.replace("-", ""), 16))


async def _rows(session: AsyncSession, stmt: sa.Select[*tuple[Any, ...]]) -> list[TargetRow]:
    return _target_rows((await session.execute(stmt)).all())


def _target_rows(result: Sequence[Sequence[Any]]) -> list[TargetRow]:
    tenants: dict[object, uuid.UUID] = {}  # a handful of OEMs: convert each once
    rows = []
    for device_pk, device_id, kind, capacity_wh, input_w, output_w, *rest in result:
        reserve, soc, online, site_pk, site_id, tenant = rest
        tenant_id = tenants.get(tenant)
        if tenant_id is None:
            tenant_id = tenants[tenant] = _as_uuid(tenant)
        rows.append(
            TargetRow(
                _as_uuid(device_pk),
                device_id,
                str(kind),
                capacity_wh,
                input_w,
                output_w,
                reserve,
                soc,
                online,
                _as_uuid(site_pk),
                site_id,
                tenant_id,
            )
        )
    return rows


def _chunks(ids: Sequence[str]) -> Iterable[list[str]]:
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), IN_CHUNK):
        yield unique[start : start + IN_CHUNK]


async def devices_of_program(session: AsyncSession, program_id: uuid.UUID) -> list[TargetRow]:
    return await _rows(session, _enrolled_devices(program_id))


async def devices_of_sites(
    session: AsyncSession, program_id: uuid.UUID, site_ids: Sequence[str]
) -> list[TargetRow]:
    rows: list[TargetRow] = []
    for chunk in _chunks(site_ids):
        rows += await _rows(session, _enrolled_devices(program_id).where(Site.id.in_(chunk)))
    return rows


async def devices_by_ids(
    session: AsyncSession, program_id: uuid.UUID, device_ids: Sequence[str]
) -> list[TargetRow]:
    rows: list[TargetRow] = []
    for chunk in _chunks(device_ids):
        rows += await _rows(session, _enrolled_devices(program_id).where(Device.id.in_(chunk)))
    return rows


async def devices_of_groups(
    session: AsyncSession, program_id: uuid.UUID, group_ids: Sequence[str]
) -> tuple[list[TargetRow], set[str]]:
    """Devices of sites in any listed group; also returns which group ids exist."""
    known = set(
        await session.scalars(
            sa.select(Group.id).where(Group.program_id == program_id, Group.id.in_(group_ids))
        )
    )
    members = (
        sa.select(SiteGroup.site_pk)
        .join(Group, Group.pk == SiteGroup.group_pk)
        .where(Group.program_id == program_id, Group.id.in_(group_ids))
    )
    stmt = _enrolled_devices(program_id).where(Site.pk.in_(members))
    return await _rows(session, stmt), known


async def overlapping_commands(
    session: AsyncSession, device_pks: set[uuid.UUID], starts_at: datetime, ends_at: datetime
) -> list[ExistingCommand]:
    """Commands still in force (status OK) of these devices whose window overlaps.

    Plain rows, not ORM objects: a device in every event has one or two per event. Small
    targets look their devices up by index; beyond one IN list the window is scanned once and
    the devices filtered here.
    """
    if not device_pks:
        return []
    stmt = sa.select(
        Command.id,
        Command.device_pk,
        Command.event_id,
        Command.starts_at,
        Command.ends_at,
        Command.status,
    ).where(
        Command.status == CommandStatus.OK,
        Command.starts_at < ends_at,
        sa.or_(Command.ends_at.is_(None), Command.ends_at > starts_at),
    )
    if len(device_pks) <= IN_CHUNK:
        stmt = stmt.where(Command.device_pk.in_(device_pks))
    wanted = {pk.int for pk in device_pks}
    return [
        ExistingCommand(row[0], row[1], row[2], row[3], row[4], row[5].value)
        for row in await session.execute(stmt)
        if row[1].int in wanted
    ]


# A superseded command as its wire form needs it: id, device id, tenant, then its shape
# (event id, created_at, starts_at, ends_at, duration_s, is_preparatory_action, mode,
# power_mode, setpoint_w, enable_grid_import, backup_reserve_percentage).
CanceledCommand = tuple[Any, ...]


async def cancel_commands_in_force(
    session: AsyncSession, command_ids: Sequence[uuid.UUID], *, reason: str, now: datetime
) -> list[CanceledCommand]:
    """CANCELED (and PENDING for the OEM to acknowledge again) for those of `command_ids`
    still in force; returns them. One UPDATE per chunk of ids, with RETURNING."""
    canceled: list[CanceledCommand] = []
    for start in range(0, len(command_ids), IN_CHUNK):
        stmt = (
            sa.update(Command)
            .where(Command.id.in_(command_ids[start : start + IN_CHUNK]))
            .where(Command.status == CommandStatus.OK)
            .values(
                status=CommandStatus.CANCELED,
                status_reason=reason,
                device_status=DeviceStatus.PENDING,
                device_status_reason=reason,
                acknowledged_at=None,
                updated_at=now,
            )
            .returning(*_CANCELED_COLUMNS)
        )
        canceled += [tuple(row) for row in await session.execute(stmt)]
    return canceled


_CANCELED_COLUMNS = (
    Command.id,
    Command.device_id,
    Command.tenant_id,
    Command.event_id,
    Command.created_at,
    Command.starts_at,
    Command.ends_at,
    Command.duration_s,
    Command.is_preparatory_action,
    Command.mode,
    Command.power_mode,
    Command.setpoint_w,
    Command.enable_grid_import,
    Command.backup_reserve_percentage,
)


async def count_events(
    session: AsyncSession, program_id: uuid.UUID, since: datetime, until: datetime
) -> int:
    """Events of the program (not canceled) starting in [since, until), for dispatch limits."""
    stmt = sa.select(sa.func.count()).where(
        Event.program_id == program_id,
        Event.canceled_at.is_(None),
        Event.starts_at >= since,
        Event.starts_at < until,
    )
    return int(await session.scalar(stmt) or 0)
