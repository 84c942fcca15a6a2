"""Event status follows from the clock: UPCOMING -> ACTIVE -> COMPLETED, or CANCELED."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from gridhive.events.models import Event

STATUSES = ("UPCOMING", "ACTIVE", "COMPLETED", "CANCELED")


def event_status(event: Event, now: datetime) -> str:
    if event.canceled_at is not None:
        return "CANCELED"
    if now < event.starts_at:
        return "UPCOMING"
    if now < event.ends_at:
        return "ACTIVE"
    return "COMPLETED"


def status_condition(status: str, now: datetime) -> sa.ColumnElement[bool]:
    """The SQL form of `event_status(event, now) == status`, for list filters."""
    live = Event.canceled_at.is_(None)
    conditions = {
        "CANCELED": Event.canceled_at.is_not(None),
        "UPCOMING": sa.and_(live, Event.starts_at > now),
        "ACTIVE": sa.and_(live, Event.starts_at <= now, Event.ends_at > now),
        "COMPLETED": sa.and_(live, Event.ends_at <= now),
    }
    return conditions[status]


def is_finished(event: Event, now: datetime) -> bool:
    return event_status(event, now) in ("COMPLETED", "CANCELED")
