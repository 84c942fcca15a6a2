"""Events: dispatched and read by utilities, seen and opted out of by sites."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from gridhive.auth.deps import SessionDep, UtilityPrincipal
from gridhive.events import service, views
from gridhive.events.schemas import (
    EventCreate,
    EventStatus,
    ParticipationUpdate,
    SiteEventRead,
    UtilityEventRead,
)
from gridhive.idempotency.routing import IdempotentRoute
from gridhive.kit.pagination import PageDep
from gridhive.kit.time import utc_now
from gridhive.sites.deps import SiteDep

utility_router = APIRouter(prefix="/v1", tags=["Utility API"], route_class=IdempotentRoute)
mobile_router = APIRouter(
    prefix="/v1/site/{siteId}", tags=["Mobile App API"], route_class=IdempotentRoute
)

EventId = Annotated[uuid.UUID, Path(alias="id", description="Event id")]
StatusFilter = Annotated[list[EventStatus] | None, Query(description="Repeatable")]


@utility_router.post("/events", response_model=UtilityEventRead)
async def create_event(
    body: EventCreate, session: SessionDep, principal: UtilityPrincipal
) -> dict[str, Any]:
    """Dispatch a demand-response event to enrolled sites.

    The event, its site events and every device's command are planned and stored before this
    answers; `GET /v1/events/{id}/plan` explains each command. Each broken rule is named in
    `errors` (422); a target id shared by two device makers is a 409.
    """
    event = await service.dispatch_event(session, principal, body)
    return views.utility_event_payload(event, utc_now())


@utility_router.get("/events", response_model=list[UtilityEventRead])
async def read_events(
    session: SessionDep, principal: UtilityPrincipal, page: PageDep, status: StatusFilter = None
) -> list[dict[str, Any]]:
    """All events across your programs, newest start first; `status` filters."""
    events = await service.search_events(
        session, utility_id=principal.org_id, page=page, statuses=status or ()
    )
    now = utc_now()
    return [views.utility_event_payload(e, now) for e in events]


@utility_router.get("/events/{id}", response_model=UtilityEventRead)
async def read_event(
    event_id: EventId, session: SessionDep, principal: UtilityPrincipal
) -> dict[str, Any]:
    """One event."""
    event = await service.get_event_or_raise(
        session, utility_id=principal.org_id, event_id=event_id
    )
    return views.utility_event_payload(event, utc_now())


@utility_router.delete(
    "/events/{id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
async def cancel_event(event_id: EventId, session: SessionDep, principal: UtilityPrincipal) -> None:
    """Cancel an event that has not finished; devices return to normal and OEMs are told.

    Cancelling a finished or already canceled event is a 409.
    """
    event = await service.get_event_or_raise(
        session, utility_id=principal.org_id, event_id=event_id
    )
    await service.cancel_event(session, event)


@utility_router.get("/events/{id}/plan", response_model=dict[str, Any])
async def read_event_plan(
    event_id: EventId, session: SessionDep, principal: UtilityPrincipal
) -> dict[str, object]:
    """How the event was planned (our addition): totals, skipped devices, and every device's
    commands with the reasons for their setpoints, caps and pre-charge windows."""
    event = await service.get_event_or_raise(
        session, utility_id=principal.org_id, event_id=event_id
    )
    return await service.event_plan(session, event)


@mobile_router.get("/events", response_model=list[SiteEventRead])
async def read_site_events(
    site: SiteDep, session: SessionDep, page: PageDep, status: StatusFilter = None
) -> list[dict[str, Any]]:
    """The site's events, newest first; `status` may be repeated."""
    rows = await service.search_site_events(
        session, site_pk=site.pk, statuses=status or (), page=page
    )
    now = utc_now()
    return [views.site_event_payload(event, site_event, now) for event, site_event in rows]


@mobile_router.get("/event/{id}", response_model=SiteEventRead)
async def read_site_event(site: SiteDep, event_id: EventId, session: SessionDep) -> dict[str, Any]:
    """One event of the site."""
    event, site_event = await service.get_site_event_or_raise(
        session, site_pk=site.pk, event_id=event_id
    )
    return views.site_event_payload(event, site_event, utc_now())


@mobile_router.patch("/event/{id}", response_model=SiteEventRead)
async def update_event_participation(
    site: SiteDep, event_id: EventId, body: ParticipationUpdate, session: SessionDep
) -> dict[str, Any]:
    """Opt out (`is_participating: false`) until the event ends, or back in before it starts."""
    event, site_event = await service.get_site_event_or_raise(
        session, site_pk=site.pk, event_id=event_id
    )
    await service.set_participation(session, event, site_event, body.is_participating)
    return views.site_event_payload(event, site_event, utc_now())
