"""An event's timeline: every change of the event, its site events and commands, every
delivery attempt of the messages about them, and every acknowledgement, oldest first.

Every change of an event or of its commands writes an outbound message naming the event (and
the command), whether anyone is subscribed or not, so the messages are the change log; their
delivery attempts say what reached the device makers' clouds and the utility; a command's
`acknowledged_at` is when its device last answered. One UNION query merges the three sources
in (time, source, id) order, and a page resumes strictly after the last entry of the one
before: no gaps or repeats however entries tie on time.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands.models import Command
from gridhive.errors import Unprocessable
from gridhive.events.models import Event, SiteEvent
from gridhive.kit.time import ensure_utc, isoformat_z
from gridhive.webhooks.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    OutboundMessage,
    PayloadTemplate,
)
from gridhive.webhooks.templates import payload_field, template_join

# Ties on time: a change comes before its delivery attempts, and those before an answer.
MESSAGE, ATTEMPT, ACK = 0, 1, 2
_OK = sa.and_(
    DeliveryAttempt.error.is_(None),
    sa.or_(
        DeliveryAttempt.status_code.is_(None),
        DeliveryAttempt.status_code.between(200, 299),
    ),
)


async def event_timeline(
    session: AsyncSession, event: Event, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    """A page of the event's timeline and the cursor of the next one (None on the last)."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    entries = _entries(event.id).subquery("timeline")
    at_key = _sqlite_time_key(entries.c.at) if sqlite else entries.c.at
    order = (at_key, entries.c.source, entries.c.entry_id)
    stmt = sa.select(entries).order_by(*order).limit(limit + 1)
    after = _decode(cursor)
    if after is not None:
        stmt = stmt.where(sa.tuple_(*order) > _position(entries, after, sqlite=sqlite))
    rows = (await session.execute(stmt)).all()
    page = rows[:limit]
    sites = await _sites_of_commands(session, {r.command_id for r in page if r.command_id})
    return {
        "entries": [_entry(event, row, sites) for row in page],
        "next_cursor": _encode(page[-1]) if len(rows) > limit else None,
    }


def _position(
    entries: sa.Subquery, after: tuple[datetime, int, uuid.UUID], *, sqlite: bool
) -> sa.Tuple:
    """The cursor's (time, source, id) as values comparable with the ordering columns."""
    at, source, entry_id = after
    at_value = (
        sa.literal(at.replace(tzinfo=None).isoformat(" ", "microseconds"))
        if sqlite
        else sa.literal(at, entries.c.at.type)
    )
    return sa.tuple_(at_value, sa.literal(source), sa.literal(entry_id, entries.c.entry_id.type))


def _sqlite_time_key(at: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """SQLite keeps times as text, and rows written in bulk leave out a zero fraction
    ('12:00:00' where the ORM writes '12:00:00.000000'), which would sort a whole second
    apart. The key pads every value to the ORM's form, so text order is time order."""
    return sa.func.substr(sa.type_coerce(at, sa.String) + sa.literal(".000000"), 1, 26)


# The three sources -----------------------------------------------------------------------------


def _entries(event_id: uuid.UUID) -> sa.CompoundSelect[*tuple[Any, ...]]:
    m = OutboundMessage
    about = sa.case((m.command_id.is_not(None), m.command_id), else_=m.event_id)
    messages = sa.select(
        m.created_at.label("at"),
        sa.literal(MESSAGE).label("source"),
        m.id.label("entry_id"),
        m.event_type.label("kind"),
        m.object_type.label("object_type"),
        about.label("object_id"),
        m.event_type.label("message_type"),
        m.org_id.label("org_id"),
        m.subject_id.label("subject_id"),
        m.command_id.label("command_id"),
        payload_field("site_id").label("site_id"),
        payload_field("status").label("status"),
        sa.null().label("status_code"),
        sa.null().label("error"),
        sa.null().label("attempt"),
    )
    messages = messages.outerjoin(PayloadTemplate, template_join()).where(m.event_id == event_id)
    return sa.union_all(messages, _attempts(event_id), _acks(event_id))


def _attempts(event_id: uuid.UUID) -> sa.Select[*tuple[Any, ...]]:
    m, d, a = OutboundMessage, Delivery, DeliveryAttempt
    # The attempt that used up the retry schedule is the delivery's death.
    last = sa.and_(d.state == DeliveryState.DEAD, a.attempt >= d.attempts)
    kind = sa.case((_OK, "delivery.succeeded"), (last, "delivery.dead"), else_="delivery.failed")
    return (
        sa.select(
            a.started_at,
            sa.literal(ATTEMPT),
            a.id,
            kind,
            sa.literal("delivery"),
            d.id,
            m.event_type,
            m.org_id,
            m.subject_id,
            m.command_id,
            payload_field("site_id"),
            sa.null(),
            a.status_code,
            a.error,
            a.attempt,
        )
        .join(d, d.id == a.delivery_id)
        .join(m, m.id == d.message_id)
        .outerjoin(PayloadTemplate, template_join())
        .where(m.event_id == event_id)
    )


def _acks(event_id: uuid.UUID) -> sa.Select[*tuple[Any, ...]]:
    c = Command
    return sa.select(
        c.acknowledged_at,
        sa.literal(ACK),
        c.id,
        sa.literal("command.acknowledged"),
        sa.literal("command"),
        c.id,
        sa.null(),
        c.tenant_id,
        c.device_id,
        c.id,
        sa.null(),
        c.device_status,
        sa.null(),
        c.device_status_reason,
        sa.null(),
    ).where(c.event_id == event_id, c.acknowledged_at.is_not(None))


async def _sites_of_commands(
    session: AsyncSession, command_ids: set[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str]]:
    """(site id, device id) of each command."""
    if not command_ids:
        return {}
    stmt = (
        sa.select(Command.id, SiteEvent.site_id, Command.device_id)
        .join(SiteEvent, SiteEvent.pk == Command.site_event_pk)
        .where(Command.id.in_(command_ids))
    )
    return {cid: (site_id, device_id) for cid, site_id, device_id in await session.execute(stmt)}


# An entry as the utility reads it --------------------------------------------------------------


def _entry(
    event: Event, row: sa.Row[Any], sites: dict[uuid.UUID, tuple[str, str]]
) -> dict[str, Any]:
    site_id, device_id = sites.get(row.command_id, (row.site_id, None))
    return {
        "at": ensure_utc(row.at),
        "kind": row.kind,
        "object_type": row.object_type,
        "object_id": str(row.object_id),
        "site_id": site_id,
        "device_id": device_id,
        "detail": _detail(event, row, site_id),
    }


def _detail(event: Event, row: sa.Row[Any], site_id: str | None) -> str:
    if row.source == ACK:
        answer = f"device answered {row.status}"
        return f"{answer}: {row.error}" if row.error else answer
    if row.source == ATTEMPT:
        # The status only, not the receiver's error text: an OEM's endpoint may answer
        # anything, and the utility reads this. Without a status the error is ours (timeout,
        # connection refused, no broker).
        if row.status_code is not None:
            outcome = f"HTTP {row.status_code}"
        else:
            outcome = row.error or "sent"
        return f"{row.message_type} attempt {row.attempt}: {outcome}"
    audience = "to the utility" if row.org_id == event.utility_id else "to the device maker"
    where = f" (site {site_id})" if site_id and row.object_type == "event" else ""
    status = f", status {row.status}" if row.status else ""
    return f"{row.kind}{where} {audience}{status}"


# Cursor ----------------------------------------------------------------------------------------


def _encode(row: sa.Row[Any]) -> str:
    position = [isoformat_z(ensure_utc(row.at)), row.source, row.entry_id.hex]
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> tuple[datetime, int, uuid.UUID] | None:
    """The last entry of the previous page; anything else is a 422."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, source, entry_id = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(source, int) or source not in (MESSAGE, ATTEMPT, ACK):
            raise ValueError(cursor)
        return ensure_utc(datetime.fromisoformat(at)), source, uuid.UUID(entry_id)
    except (ValueError, TypeError, OverflowError, binascii.Error) as exc:
        raise Unprocessable.field("cursor", "not a cursor returned by this endpoint") from exc
