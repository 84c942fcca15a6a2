"""Timed webhooks of an event: command.started / command.ended and the event's status changes.

When an event is stored, `event.tick` jobs are scheduled on a one-minute grid: one per minute
in which one of its commands (or the event itself) starts or ends. Action times, which
utilities set on whole minutes, get a tick of their own; pre-charges, whose starts follow each
battery's state of charge and so differ by seconds between devices, share the tick of their
minute and are announced at most a minute late. That keeps the rows a handful per action
(a few hundred at most, for pre-charges spread over four hours) however many devices the
event dispatches. The tick at T covers the minute (T - 1 min, T] and, in bulk statements:

- marks the commands ending in it still unacknowledged (`device_status` PENDING)
  FAILED_OFFLINE "not acknowledged", and sends `command.ended` for the commands ending in it
  that are in force (status OK), with their final device_status;
- sends `command.started` for the commands starting in it that are in force;
- when the event starts or ends in it, sends `event.updated` (ACTIVE, COMPLETED) to the
  utility and to the OEM of every participating site.

A canceled event gets nothing, nor do canceled or opted-out commands. The scheduler marks the
job done in the tick's own transaction, so a tick's messages are written once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands import service as command_service
from gridhive.commands.models import Command, CommandStatus, DeviceStatus
from gridhive.events import views
from gridhive.events.models import Event, SiteEvent
from gridhive.events.planning.types import EventPlan
from gridhive.kit.time import ensure_utc, isoformat_z
from gridhive.queue import schedule
from gridhive.webhooks import service as webhook_service

KIND = "event.tick"
NOT_ACKNOWLEDGED = "not acknowledged"


# Scheduling ----------------------------------------------------------------------------------


GRID = timedelta(minutes=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def tick_of(at: datetime) -> datetime:
    """The tick covering `at`: `at` itself on a whole minute, else the next whole minute."""
    over = (ensure_utc(at) - _EPOCH) % GRID
    return ensure_utc(at) + (GRID - over if over else timedelta(0))


def tick_times(event: Event, plan: EventPlan) -> set[datetime]:
    """The ticks of every time something of the event starts or ends."""
    times = {event.starts_at, event.ends_at}
    times.update(pc.starts_at for pc in plan.commands)
    times.update(pc.ends_at for pc in plan.commands)
    return {tick_of(t) for t in times}


async def schedule_event(session: AsyncSession, event: Event, plan: EventPlan) -> None:
    """Schedule the event's ticks (a no-op for ticks already scheduled)."""
    await schedule.schedule_many(
        session,
        [
            schedule.JobSpec(
                kind=KIND,
                key=f"{event.id}@{isoformat_z(at)}",
                due_at=at,
                payload={"event_id": str(event.id), "at": isoformat_z(at)},
            )
            for at in sorted(tick_times(event, plan))
        ],
    )


# The tick ------------------------------------------------------------------------------------


async def run_tick(session: AsyncSession, payload: dict[str, Any], *, now: datetime) -> None:
    """The handler of an `event.tick` job (payload: event_id, at)."""
    event = await session.get(Event, uuid.UUID(payload["event_id"]))
    if event is None or event.canceled_at is not None:
        return
    at = datetime.fromisoformat(payload["at"].replace("Z", "+00:00"))
    await end_commands(session, event, at, now=now)
    await start_commands(session, event, at)
    # The status as of the event's own start and end times, however late the tick runs.
    for moment in (event.starts_at, event.ends_at):
        if tick_of(moment) == at:
            await announce_status(session, event, ensure_utc(moment))


async def end_commands(session: AsyncSession, event: Event, at: datetime, *, now: datetime) -> None:
    """Commands ending in the tick: unacknowledged ones fail, those in force get
    command.ended."""
    ending = sa.and_(
        Command.event_id == event.id,
        _in_tick(Command.ends_at, at),
        Command.status == CommandStatus.OK,
    )
    await session.execute(
        sa.update(Command)
        .where(ending, Command.device_status == DeviceStatus.PENDING)
        .values(
            device_status=DeviceStatus.FAILED_OFFLINE,
            device_status_reason=NOT_ACKNOWLEDGED,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    await _emit(session, "command.ended", await _commands(session, ending))


async def start_commands(session: AsyncSession, event: Event, at: datetime) -> None:
    starting = sa.and_(
        Command.event_id == event.id,
        _in_tick(Command.starts_at, at),
        Command.status == CommandStatus.OK,
    )
    await _emit(session, "command.started", await _commands(session, starting))


def _in_tick(column: sa.orm.InstrumentedAttribute[Any], at: datetime) -> sa.ColumnElement[bool]:
    """`column` in (at - 1 min, at]: the ticks' minutes never overlap, so each command start
    and end falls in exactly one tick."""
    return sa.and_(column > at - GRID, column <= at)


async def _commands(session: AsyncSession, where: sa.ColumnElement[bool]) -> Sequence[Command]:
    # populate_existing: the bulk UPDATE above bypassed any copy already in the session.
    statement = (
        sa.select(Command)
        .where(where)
        .order_by(Command.device_id, Command.id)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).all()


async def _emit(session: AsyncSession, event_type: str, commands: Sequence[Command]) -> None:
    await webhook_service.emit_many(
        session,
        event_type=event_type,
        object_type="command",
        messages=[
            (c.tenant_id, c.device_id, command_service.command_payload(c), c.event_id, c.id)
            for c in commands
        ],
    )


async def announce_status(session: AsyncSession, event: Event, at: datetime) -> None:
    """`event.updated` with the status at `at` to the utility and each participating site."""
    await webhook_service.emit(
        session,
        org_id=event.utility_id,
        event_type="event.updated",
        object_type="event",
        subject_id=str(event.id),
        event_object=views.utility_event_payload(event, at),
        event_id=event.id,
    )
    site_events = (
        await session.scalars(
            sa.select(SiteEvent)
            .where(SiteEvent.event_id == event.id, SiteEvent.is_participating.is_(True))
            .order_by(SiteEvent.site_id)
        )
    ).all()
    await webhook_service.emit_many(
        session,
        event_type="event.updated",
        object_type="event",
        messages=[
            (se.tenant_id, se.site_id, views.site_event_payload(event, se, at), event.id, None)
            for se in site_events
        ],
    )
