"""emit(): every outbound message is a row written in the caller's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

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
