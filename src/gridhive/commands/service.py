"""Commands as the OEM sees them: polled in update order, acknowledged by id."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from gridhive.commands import stamps
from gridhive.commands.errors import CommandNotFound
from gridhive.commands.models import Command, CommandStatus, DeviceStatus, battery_commands_of
from gridhive.commands.schemas import CommandAck
from gridhive.kit.pagination import Page
from gridhive.kit.time import isoformat_z, utc_now
from gridhive.webhooks import service as webhook_service


@dataclass(frozen=True)
class CommandFilter:
    updated_since: datetime | None = None
    statuses: Sequence[CommandStatus] = field(default_factory=tuple)
    device_statuses: Sequence[DeviceStatus] = field(default_factory=tuple)
    device_id: str | None = None


async def search_commands(
    session: AsyncSession, *, tenant_id: uuid.UUID, filters: CommandFilter, page: Page
) -> Sequence[Command]:
    """The OEM's commands, oldest update first; `updated_since` is inclusive.

    Waits for a dispatch or cancellation in progress to commit first (`stamps`): its commands
    are stamped with its start, and reading past them would leave them behind the cursor.
    """
    await stamps.wait_for_large_changes(session)
    stmt = sa.select(Command).where(Command.tenant_id == tenant_id)
    if filters.updated_since is not None:
        stmt = stmt.where(Command.updated_at >= filters.updated_since)
    if filters.statuses:
        stmt = stmt.where(Command.status.in_(filters.statuses))
    if filters.device_statuses:
        stmt = stmt.where(Command.device_status.in_(filters.device_statuses))
    if filters.device_id is not None:
        stmt = stmt.where(Command.device_id == filters.device_id)
    stmt = stmt.order_by(Command.updated_at, Command.id).offset(page.skip).limit(page.limit)
    return (await session.scalars(stmt)).all()


async def get_command_or_raise(
    session: AsyncSession, *, tenant_id: uuid.UUID, command_id: uuid.UUID
) -> Command:
    command = await session.get(Command, command_id)
    if command is None or command.tenant_id != tenant_id:
        raise CommandNotFound(f"No command with id {command_id}")
    return command


# The acknowledgement is the Cloud API's hottest call (one per command per device), so it is
# one UPDATE ... RETURNING of the answer's columns, built once: no ORM load of the whole row
# (plan explanation included), no flush. A repeat matches no row and costs one more SELECT.
_commands = cast(sa.Table, Command.__table__)
_PAYLOAD_COLUMNS = tuple(
    _commands.c[name]
    for name in (
        "id",
        "event_id",
        "device_id",
        "starts_at",
        "ends_at",
        "duration_s",
        "is_preparatory_action",
        "mode",
        "power_mode",
        "setpoint_w",
        "enable_grid_import",
        "backup_reserve_percentage",
        "status",
        "device_status",
        "device_status_reason",
        "created_at",
        "updated_at",
    )
)
_OWNED = sa.and_(
    _commands.c.id == sa.bindparam("owned_id"),
    _commands.c.tenant_id == sa.bindparam("owner_id"),
)
_NEW_STATUS = _commands.c.device_status != sa.bindparam("ack_status")
_NEW_REASON = _commands.c.device_status_reason.is_distinct_from(sa.bindparam("ack_reason"))


def _ack_statement(changes: sa.ColumnElement[bool]) -> sa.Update:
    return (
        sa.update(_commands)
        .where(_OWNED, changes)
        .values(
            device_status=sa.bindparam("set_status"),
            device_status_reason=sa.bindparam("set_reason"),
            acknowledged_at=sa.bindparam("set_acknowledged_at"),
            updated_at=sa.bindparam("set_updated_at"),
        )
        .returning(*_PAYLOAD_COLUMNS)
    )


# An ack without a reason repeats when the status is the same; with one, when both are.
_ACK_STATUS = _ack_statement(_NEW_STATUS)
_ACK_STATUS_AND_REASON = _ack_statement(sa.or_(_NEW_STATUS, _NEW_REASON))
_READ_OWNED = sa.select(*_PAYLOAD_COLUMNS).where(_OWNED)


async def acknowledge(
    session: AsyncSession | AsyncConnection,
    *,
    tenant_id: uuid.UUID,
    command_id: uuid.UUID,
    ack: CommandAck,
) -> dict[str, Any]:
    """Record the device's answer; Flip's Command as JSON. Repeating the same answer changes
    nothing (idempotent). Another tenant's command is not found.

    Runs on a session, or on a bare connection (the fast lane's `single_statement_unit`)."""
    status, reason, now = ack.normalised_status, ack.device_status_reason, utc_now()
    # Bound names differ from the columns': an UPDATE reserves those for its SET clause.
    owner = {"owned_id": command_id, "owner_id": tenant_id}
    statement = _ACK_STATUS if reason is None else _ACK_STATUS_AND_REASON
    parameters = {
        **owner,
        "ack_status": status,
        "ack_reason": reason,
        "set_status": status,
        "set_reason": reason,
        "set_acknowledged_at": now,
        "set_updated_at": now,
    }
    row = (await session.execute(statement, parameters)).one_or_none()
    if row is not None:
        if isinstance(session, AsyncSession):
            _refresh_loaded(session, command_id, status, reason, now)
        return command_payload(row)
    row = (await session.execute(_READ_OWNED, owner)).one_or_none()
    if row is None:
        raise CommandNotFound(f"No command with id {command_id}")
    return command_payload(row)


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """One device's answer to one command, as `acknowledge_many` takes it."""

    tenant_id: uuid.UUID
    command_id: uuid.UUID
    ack: CommandAck


# Many acknowledgements in one statement (PostgreSQL): the answers as parallel arrays, unnested
# into rows and joined to their commands, with the same rule of what changes as `acknowledge`.
_ANSWERS = (
    sa.func.unnest(
        sa.bindparam("ids", type_=postgresql.ARRAY(sa.Uuid)),
        sa.bindparam("owners", type_=postgresql.ARRAY(sa.Uuid)),
        sa.bindparam("statuses", type_=postgresql.ARRAY(sa.String)),
        sa.bindparam("reasons", type_=postgresql.ARRAY(sa.String)),
    )
    .table_valued(
        sa.column("id", sa.Uuid),
        sa.column("owner", sa.Uuid),
        sa.column("status", sa.String),
        sa.column("reason", sa.String),
    )
    .render_derived(name="answer", with_types=False)
)
_ACK_MANY = (
    sa.update(_commands)
    .where(
        _commands.c.id == _ANSWERS.c.id,
        _commands.c.tenant_id == _ANSWERS.c.owner,
        sa.or_(
            _commands.c.device_status != _ANSWERS.c.status,
            sa.and_(
                _ANSWERS.c.reason.is_not(None),
                _commands.c.device_status_reason.is_distinct_from(_ANSWERS.c.reason),
            ),
        ),
    )
    .values(
        device_status=_ANSWERS.c.status,
        device_status_reason=_ANSWERS.c.reason,
        acknowledged_at=sa.bindparam("now"),
        updated_at=sa.bindparam("now"),
    )
    .returning(*_PAYLOAD_COLUMNS)
)


async def acknowledge_many(
    connection: AsyncConnection, answers: Sequence[Acknowledgement]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Record many answers in one statement (PostgreSQL only); Flip's Command as JSON by id,
    for the commands that changed. Each command may appear once. An answer missing from the
    result changed nothing (a repeat) or names no command of its tenant: `acknowledge` tells
    which, one by one."""
    rows = await connection.execute(
        _ACK_MANY,
        {
            "ids": [a.command_id for a in answers],
            "owners": [a.tenant_id for a in answers],
            "statuses": [a.ack.normalised_status.value for a in answers],
            "reasons": [a.ack.device_status_reason for a in answers],
            "now": utc_now(),
        },
    )
    return {row.id: command_payload(row) for row in rows}


def _refresh_loaded(
    session: AsyncSession,
    command_id: uuid.UUID,
    status: DeviceStatus,
    reason: str | None,
    now: datetime,
) -> None:
    """The session may hold the command already (a worker or a test that loaded it): give it
    the stored values, as an ORM flush would have."""
    command = session.identity_map.get(identity_key(Command, command_id))
    if command is None:
        return
    set_committed_value(command, "device_status", status)
    set_committed_value(command, "device_status_reason", reason)
    set_committed_value(command, "acknowledged_at", now)
    set_committed_value(command, "updated_at", now)


def command_payload(command: Command | sa.Row[Any]) -> dict[str, Any]:
    """Flip's Command as JSON, built directly: events write one per device at fleet scale.

    Takes a Command or a row of its columns (the acknowledgement's RETURNING).
    tests/commands check it equals `CommandRead.model_validate(command).model_dump(mode="json")`.
    """
    return {
        "id": str(command.id),
        "event_id": str(command.event_id),
        "device_id": command.device_id,
        "starts_at": isoformat_z(command.starts_at),
        "ends_at": None if command.ends_at is None else isoformat_z(command.ends_at),
        "duration_s": command.duration_s,
        "is_preparatory_action": command.is_preparatory_action,
        "battery_commands": battery_commands_of(command),
        "status": command.status.value,
        "device_status": command.device_status.value,
        "device_status_reason": command.device_status_reason,
        "created_at": isoformat_z(command.created_at),
        "updated_at": isoformat_z(command.updated_at),
    }


async def unfinished_commands(
    session: AsyncSession,
    *,
    event_id: uuid.UUID,
    now: datetime,
    site_event_pk: uuid.UUID | None = None,
    status: CommandStatus = CommandStatus.OK,
) -> Sequence[Command]:
    """Commands of an event (or one site's part of it) in `status` that have not ended."""
    stmt = sa.select(Command).where(
        Command.event_id == event_id,
        Command.status == status,
        sa.or_(Command.ends_at.is_(None), Command.ends_at > now),
    )
    if site_event_pk is not None:
        stmt = stmt.where(Command.site_event_pk == site_event_pk)
    return (await session.scalars(stmt.order_by(Command.device_id, Command.starts_at))).all()


async def change_status(
    session: AsyncSession,
    commands: Sequence[Command],
    *,
    status: CommandStatus,
    reason: str,
    event_type: str,
) -> None:
    """Move commands to `status`; the OEM must acknowledge again, so device_status is PENDING.

    Each change is announced to the command's OEM (`event_type`) in this transaction.
    """
    now = utc_now()
    for command in commands:
        command.status = status
        command.status_reason = reason
        command.device_status = DeviceStatus.PENDING
        command.device_status_reason = reason
        command.acknowledged_at = None
        command.updated_at = now
    await session.flush()
    await webhook_service.emit_many(
        session,
        event_type=event_type,
        object_type="command",
        messages=[
            (c.tenant_id, c.device_id, command_payload(c), c.event_id, c.id) for c in commands
        ],
    )


# Commands sit below events in the layers, so the events table is named rather than imported:
# commands.event_id holds the id of the event (no foreign key of its own: the command's site
# event, site_events.event_id -> events.id, ties the two tables together).
_events = sa.table("events", sa.column("id", sa.Uuid()), sa.column("program_id", sa.Uuid()))


async def unfinished_commands_of_devices(
    session: AsyncSession,
    *,
    device_pks: Collection[uuid.UUID],
    now: datetime,
    program_id: uuid.UUID | None = None,
) -> Sequence[Command]:
    """The devices' commands still in force (status OK) that have not ended; with
    `program_id`, only those of that program's events."""
    if not device_pks:
        return []
    stmt = sa.select(Command).where(
        Command.device_pk.in_(set(device_pks)),
        Command.status == CommandStatus.OK,
        sa.or_(Command.ends_at.is_(None), Command.ends_at > now),
    )
    if program_id is not None:
        of_program = sa.select(_events.c.id).where(_events.c.program_id == program_id)
        stmt = stmt.where(Command.event_id.in_(of_program))
    return (await session.scalars(stmt.order_by(Command.device_id, Command.starts_at))).all()


async def cancel_unfinished(
    session: AsyncSession,
    *,
    device_pks: Collection[uuid.UUID],
    reason: str,
    program_id: uuid.UUID | None = None,
) -> Sequence[Command]:
    """Cancel the devices' unfinished commands (see above) and tell their OEMs."""
    commands = await unfinished_commands_of_devices(
        session, device_pks=device_pks, now=utc_now(), program_id=program_id
    )
    await change_status(
        session,
        commands,
        status=CommandStatus.CANCELED,
        reason=reason,
        event_type="command.canceled",
    )
    return commands
