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

A tick of an action over 100,000 batteries announces 100,000 commands, and its event's start
or end as many sites: they are read as plain rows, never as ORM objects (`commands.rows`),
and the sites' wire forms, alike but for the site id, are serialised once per shape.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring_ascii as json_string
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands import rows as command_rows
from gridhive.commands.models import Command, CommandStatus, DeviceStatus
from gridhive.db.bulk import json_text
from gridhive.events import views
from gridhive.events.models import Event, SiteEvent
from gridhive.events.planning.types import EventPlan
from gridhive.kit.time import ensure_utc, isoformat_z
from gridhive.queue import schedule
from gridhive.webhooks import service as webhook_service
from gridhive.webhooks.service import MessageRow

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
    await _emit(session, "command.ended", ending)


async def start_commands(session: AsyncSession, event: Event, at: datetime) -> None:
    starting = sa.and_(
        Command.event_id == event.id,
        _in_tick(Command.starts_at, at),
        Command.status == CommandStatus.OK,
    )
    await _emit(session, "command.started", starting)


def _in_tick(column: sa.orm.InstrumentedAttribute[Any], at: datetime) -> sa.ColumnElement[bool]:
    """`column` in (at - 1 min, at]: the ticks' minutes never overlap, so each command start
    and end falls in exactly one tick."""
    return sa.and_(column > at - GRID, column <= at)


async def _emit(session: AsyncSession, event_type: str, where: sa.ColumnElement[bool]) -> None:
    # Plain rows, not ORM objects: a tick of a large action announces 100,000 commands, and
    # the rows are read after the UPDATE above, so they carry its changes.
    rows = await command_rows.command_rows(session, where)
    if not rows:
        return
    await webhook_service.emit_many(
        session,
        event_type=event_type,
        object_type="command",
        messages=command_rows.messages(rows),
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
    sites = await session.execute(
        sa.select(
            SiteEvent.tenant_id, SiteEvent.site_id, SiteEvent.created_at, SiteEvent.updated_at
        )
        .where(SiteEvent.event_id == event.id, SiteEvent.is_participating.is_(True))
        .order_by(SiteEvent.site_id)
    )
    await webhook_service.emit_many(
        session,
        event_type="event.updated",
        object_type="event",
        messages=_site_messages(event, sites.all(), at),
    )


# A site id no OEM uses (it has NULs), serialised into a template and replaced per site.
_SITE = "\x00gridhive-site\x00"
_SITE_TOKEN = json_string(_SITE)


def _site_messages(
    event: Event, sites: Sequence[sa.Row[uuid.UUID, str, datetime, datetime]], at: datetime
) -> Iterator[MessageRow]:
    """Each site's wire form from `views.site_event_payload`, serialised once per distinct
    (created_at, updated_at) with the site id left open: the sites of an event differ in
    little else, and a tick of a large event announces 100,000 of them."""
    templates: dict[tuple[datetime, datetime], str] = {}
    for tenant_id, site_id, created_at, updated_at in sites:
        template = templates.get((created_at, updated_at))
        if template is None:
            placeholder = SiteEvent(
                site_id=_SITE, is_participating=True, created_at=created_at, updated_at=updated_at
            )
            template = json_text(views.site_event_payload(event, placeholder, at))
            if _SITE_TOKEN not in template:  # else every site would get the placeholder
                raise RuntimeError(f"site event wire form without its site id: {template[:200]}")
            templates[created_at, updated_at] = template
        yield (
            tenant_id,
            site_id,
            template.replace(_SITE_TOKEN, json_string(site_id)),
            event.id,
            None,
        )
