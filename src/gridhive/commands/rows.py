"""Commands read as plain rows for their wire form: event ticks and resends at fleet scale.

The tick of an action over 100,000 batteries announces 100,000 commands in one transaction.
Loading them as `Command` objects (identity map, change tracking, every column including the
JSON explanation) was most of that work; the messages need a dozen columns. A `CommandRow`
holds just those, read with one Core SELECT, and goes through the same `command_payload` as
every other command message, so the wire form has one definition.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands.models import Command, CommandStatus, DeviceStatus
from gridhive.commands.service import command_payload
from gridhive.webhooks.service import MessageRow


class CommandRow(NamedTuple):
    """The columns of a command its messages need, under the model's attribute names."""

    id: uuid.UUID
    event_id: uuid.UUID
    tenant_id: uuid.UUID
    device_id: str
    starts_at: datetime
    ends_at: datetime | None
    duration_s: int | None
    is_preparatory_action: bool
    mode: str
    power_mode: str | None
    setpoint_w: int | None
    enable_grid_import: bool | None
    backup_reserve_percentage: int | None
    status: CommandStatus
    device_status: DeviceStatus
    device_status_reason: str | None
    created_at: datetime
    updated_at: datetime


_COLUMNS = tuple(getattr(Command, name) for name in CommandRow._fields)


async def command_rows(session: AsyncSession, where: sa.ColumnElement[bool]) -> list[CommandRow]:
    """The commands `where` selects, by device then id (the order their messages go out in)."""
    statement = sa.select(*_COLUMNS).where(where).order_by(Command.device_id, Command.id)
    return [CommandRow._make(row) for row in await session.execute(statement)]


def payload(row: CommandRow) -> dict[str, Any]:
    """`command_payload` of the row: it reads only the attributes a `CommandRow` has."""
    return command_payload(cast(Command, row))


def messages(rows: Iterable[CommandRow]) -> Iterator[MessageRow]:
    """One message per command to its OEM, for `webhook_service.emit_many`."""
    for row in rows:
        yield row.tenant_id, row.device_id, payload(row), row.event_id, row.id
