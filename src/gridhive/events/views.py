"""Wire forms of events built by hand: event.created goes to every targeted site at once."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from gridhive.events.models import Event, SiteEvent
from gridhive.events.state import event_status
from gridhive.kit.time import isoformat_z


def schedule_item_id(event_id: uuid.UUID, action_index: int) -> uuid.UUID:
    """A stable id per action of an event, the same for every site."""
    return uuid.uuid5(event_id, f"action-{action_index}")


def schedule(event: Event, site_id: str) -> list[dict[str, Any]]:
    items = []
    for index, action in enumerate(event.actions):
        starts_at = datetime.fromisoformat(action["starts_at"].replace("Z", "+00:00"))
        duration_s = int(action["duration_s"])
        items.append(
            {
                "id": str(schedule_item_id(event.id, index)),
                "program_id": str(event.program_id),
                "site_id": site_id,
                "starts_at": isoformat_z(starts_at),
                "ends_at": isoformat_z(starts_at + timedelta(seconds=duration_s)),
                "duration_s": duration_s,
            }
        )
    return items


def site_event_payload(event: Event, site_event: SiteEvent, now: datetime) -> dict[str, Any]:
    """Flip's site-scoped Event (§9.5) with the `schedule` of system.md §3."""
    return {
        "id": str(event.id),
        "program_id": str(event.program_id),
        "site_id": site_event.site_id,
        "starts_at": isoformat_z(event.starts_at),
        "ends_at": isoformat_z(event.ends_at),
        "duration_s": event.duration_s,
        "schedule": schedule(event, site_event.site_id),
        "status": event_status(event, now),
        "is_participating": site_event.is_participating,
        "created_at": isoformat_z(site_event.created_at),
        "updated_at": isoformat_z(site_event.updated_at),
    }


def utility_event_payload(event: Event, now: datetime) -> dict[str, Any]:
    """Flip's UtilityEvent (§13.3) plus `status`."""
    return {
        "id": str(event.id),
        "program_id": str(event.program_id),
        "target_type": event.target_type,
        "target_ids": list(event.target_ids),
        "actions": list(event.actions),
        "starts_at": isoformat_z(event.starts_at),
        "ends_at": isoformat_z(event.ends_at),
        "duration_s": event.duration_s,
        "status": event_status(event, now),
        "created_at": isoformat_z(event.created_at),
        "updated_at": isoformat_z(event.updated_at),
    }
