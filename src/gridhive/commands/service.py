"""Commands as the OEM sees them: polled in update order, acknowledged by id."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands.errors import CommandNotFound
from gridhive.commands.models import Command, CommandStatus, DeviceStatus
from gridhive.commands.schemas import CommandAck
from gridhive.kit.pagination import Page
from gridhive.kit.time import utc_now


@dataclass(frozen=True)
class CommandFilter:
    updated_since: datetime | None = None
    statuses: Sequence[CommandStatus] = field(default_factory=tuple)
    device_statuses: Sequence[DeviceStatus] = field(default_factory=tuple)
    device_id: str | None = None


async def search_commands(
    session: AsyncSession, *, tenant_id: uuid.UUID, filters: CommandFilter, page: Page
) -> Sequence[Command]:
    """The OEM's commands, oldest update first; `updated_since` is inclusive."""
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


async def acknowledge(
    session: AsyncSession, *, tenant_id: uuid.UUID, command_id: uuid.UUID, ack: CommandAck
) -> Command:
    """Record the device's answer. Repeating the same answer changes nothing (idempotent)."""
    command = await get_command_or_raise(session, tenant_id=tenant_id, command_id=command_id)
    new_status = ack.normalised_status
    reason = ack.device_status_reason
    if command.device_status == new_status and (
        reason is None or reason == command.device_status_reason
    ):
        return command
    now = utc_now()
    command.device_status = new_status
    command.device_status_reason = reason
    command.acknowledged_at = now
    command.updated_at = now
    await session.flush()
    return command
