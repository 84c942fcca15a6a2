"""Ack deadlines: a command still PENDING long after it reached its OEM is sent again.

The periodic `commands.ack_sweep` job (every minute) finds the commands whose `device_status`
is still PENDING `deadline` (15 minutes) after their latest message was delivered, and sends
each again: the same command id in a NEW outbound message, hence new delivery ids, up to
`max_resends` (3) times in the command's life.

- "Delivered" is the latest delivery (by emission order) of the command's latest message
  reaching `delivered`. A message still in flight (pending, delivering, failed and waiting
  for its retry) is not resent: the OEM has not had it yet. A dead delivery is not resent
  either: the endpoint has given up and the delivery log shows it.
- In polling mode there are no deliveries; the clock starts at the message's creation.
- The count is kept on the command (`commands.resend_count`) rather than derived from its
  messages: a resend and the message it repeats are indistinguishable in the outbox.
- A resend carries the current command with the event type of its current status: OK ->
  `command.created` (here is the command to carry out: receivers upsert by command id),
  CANCELED -> `command.canceled`, OPT_OUT -> `command.updated` (the type opting out sends).
- Its `updated_at` moves to now, so a poller reading `updated_since` sees it again, and the
  next deadline runs from the resend's own delivery.
- Only commands that have not ended: at its end, a command still PENDING is failed by the
  event's end tick (events/ticks.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands.models import Command, CommandStatus, DeviceStatus
from gridhive.commands.rows import command_rows, messages
from gridhive.db.base import UTCDateTime
from gridhive.webhooks import service as webhook_service
from gridhive.webhooks.models import Delivery, DeliveryState, OutboundMessage

KIND = "commands.ack_sweep"

RESEND_EVENT_TYPES = {
    CommandStatus.OK: "command.created",
    CommandStatus.CANCELED: "command.canceled",
    CommandStatus.OPT_OUT: "command.updated",
}

# Ids per statement: below SQLite's limit of bound parameters, and a modest transaction step.
_CHUNK = 5_000

# Commands sit below events in the layers, so the events table is named rather than imported.
_events = sa.table("events", sa.column("id", sa.Uuid()), sa.column("ends_at", UTCDateTime()))


async def sweep(
    session: AsyncSession,
    *,
    now: datetime,
    deadline: timedelta,
    max_resends: int,
    limit: int = 50_000,
) -> int:
    """Send again the commands past their ack deadline; the number sent."""
    ids = await overdue_command_ids(
        session, now=now, deadline=deadline, max_resends=max_resends, limit=limit
    )
    for start in range(0, len(ids), _CHUNK):
        await _resend(session, ids[start : start + _CHUNK], now=now)
    return len(ids)


async def overdue_command_ids(
    session: AsyncSession,
    *,
    now: datetime,
    deadline: timedelta,
    max_resends: int,
    limit: int,
) -> list[uuid.UUID]:
    cutoff = now - deadline
    waiting = _waiting_commands(now, cutoff, max_resends).subquery("waiting")
    latest = _latest_messages(now, sa.select(waiting.c.id)).subquery("latest")
    last_state, delivered_at = _last_delivery(latest.c.message_id)
    overdue = sa.or_(
        sa.and_(last_state.is_(None), latest.c.created_at <= cutoff),
        sa.and_(last_state == DeliveryState.DELIVERED, delivered_at <= cutoff),
    )
    statement = (
        sa.select(latest.c.command_id)
        .where(latest.c.rank == 1, overdue)
        .order_by(latest.c.command_id)
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())


def _waiting_commands(now: datetime, cutoff: datetime, max_resends: int) -> sa.Select[uuid.UUID]:
    """Unended commands awaiting an ack, resends left, unchanged since the cutoff.

    A message is created with or after the change it announces, and delivered after that: a
    command updated after the cutoff cannot have a message delivered before it.
    """
    live_events = sa.select(_events.c.id).where(_events.c.ends_at > now)
    return sa.select(Command.id).where(
        Command.event_id.in_(live_events),
        Command.device_status == DeviceStatus.PENDING,
        sa.or_(Command.ends_at.is_(None), Command.ends_at > now),
        Command.resend_count < max_resends,
        Command.updated_at <= cutoff,
    )


def _latest_messages(
    now: datetime, command_ids: sa.Select[uuid.UUID]
) -> sa.Select[uuid.UUID | None, uuid.UUID, datetime, int]:
    """The messages of those commands, ranked newest first per command.

    Looked up through their live events (the outbox is indexed by event, not by command).
    """
    live_events = sa.select(_events.c.id).where(_events.c.ends_at > now)
    rank = sa.func.row_number().over(
        partition_by=OutboundMessage.command_id,
        order_by=(OutboundMessage.created_at.desc(), OutboundMessage.id.desc()),
    )
    return sa.select(
        OutboundMessage.command_id,
        OutboundMessage.id.label("message_id"),
        OutboundMessage.created_at,
        rank.label("rank"),
    ).where(
        OutboundMessage.event_id.in_(live_events),
        OutboundMessage.command_id.in_(command_ids),
    )


def _last_delivery(
    message_id: sa.ColumnElement[uuid.UUID],
) -> tuple[sa.ScalarSelect[DeliveryState], sa.ScalarSelect[datetime | None]]:
    """State and delivery time of the message's latest delivery (NULL when it has none)."""

    def latest() -> sa.Select[()]:
        return (
            sa.select()
            .where(Delivery.message_id == message_id)
            .order_by(Delivery.seq.desc(), Delivery.id.desc())
            .limit(1)
        )

    state = latest().add_columns(Delivery.state).scalar_subquery()
    delivered_at = latest().add_columns(Delivery.delivered_at).scalar_subquery()
    return state, delivered_at


async def _resend(session: AsyncSession, ids: Sequence[uuid.UUID], *, now: datetime) -> None:
    await session.execute(
        sa.update(Command)
        .where(Command.id.in_(ids))
        .values(resend_count=Command.resend_count + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    # Plain rows, read after the UPDATE: the resends carry the new updated_at.
    resent = await command_rows(session, Command.id.in_(ids))
    for status, event_type in RESEND_EVENT_TYPES.items():
        of_status = [row for row in resent if row.status == status]
        if of_status:
            await webhook_service.emit_many(
                session, event_type=event_type, object_type="command", messages=messages(of_status)
            )
