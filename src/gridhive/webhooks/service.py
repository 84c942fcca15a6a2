"""emit(): every outbound message is a row written in the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.kit.ids import new_uuid
from gridhive.kit.time import utc_now
from gridhive.webhooks.models import OutboundMessage


async def emit(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    event_type: str,
    object_type: str,
    subject_id: str,
    event_object: dict[str, Any],
) -> OutboundMessage:
    """Record `event_type` for `org_id`; delivery happens after commit, never inside a request.

    `event_object` is the wire form of the resource (JSON-ready); `object_type` is added to it
    as the webhook envelope requires.
    """
    message = OutboundMessage(
        org_id=org_id,
        event_type=event_type,
        object_type=object_type,
        subject_id=subject_id,
        payload={**event_object, "object_type": object_type},
    )
    session.add(message)
    await session.flush()
    return message


async def emit_many(
    session: AsyncSession,
    *,
    event_type: str,
    object_type: str,
    messages: Sequence[tuple[uuid.UUID, str, dict[str, Any]]],
) -> None:
    """Bulk form of `emit` for planning at fleet scale: (org_id, subject_id, event_object) rows.

    One executemany instead of an ORM object per row: an event over 100,000 batteries writes
    100,000 `command.created` messages inside the request's transaction.
    """
    if not messages:
        return
    now = utc_now()
    await session.execute(
        sa.insert(OutboundMessage),
        [
            {
                "id": new_uuid(),
                "org_id": org_id,
                "event_type": event_type,
                "object_type": object_type,
                "subject_id": subject_id,
                "payload": {**event_object, "object_type": object_type},
                "created_at": now,
            }
            for org_id, subject_id, event_object in messages
        ],
    )
