"""Utility event pages: the list, the create form, the event page with its plan, live commands,
per-site performance and power chart, and cancelling."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import HTMLResponse, JSONResponse, Response

from gridhive.auth.deps import SessionDep
from gridhive.auth.service import Principal
from gridhive.dashboard import charts
from gridhive.dashboard.forms import (
    ACTION_ROWS,
    event_body,
    form_error_key,
    parse,
    service_errors,
)
from gridhive.dashboard.pages import UtilityViewer, render_page, see_other
from gridhive.errors import GridhiveError
from gridhive.events import service as event_service
from gridhive.events import views
from gridhive.events.models import Event
from gridhive.events.schemas import EventCreate, EventStatus
from gridhive.events.state import is_finished
from gridhive.kit.pagination import MAX_LIMIT, Page, PageDep
from gridhive.kit.time import utc_now
from gridhive.programs import service as program_service
from gridhive.telemetry import performance
from gridhive.web.templating import render

router = APIRouter(prefix="/dashboard/events")

EventId = Annotated[uuid.UUID, Path(description="Event id")]
# The event page lists this many devices' commands; the counts above it cover them all.
DEVICES_SHOWN = 200
# While an event is unfinished, its page refreshes commands this often (HTMX polling), and
# its power chart every CHART_REFRESH_MS (telemetry arrives every 5 minutes).
LIVE_REFRESH = "every 2s"
CHART_REFRESH_MS = 30_000


async def _event(session: AsyncSession, viewer: Principal, event_id: uuid.UUID) -> Event:
    return await event_service.get_event_or_raise(
        session, utility_id=viewer.org_id, event_id=event_id
    )


@router.get("")
async def events_page(
    request: Request,
    session: SessionDep,
    viewer: UtilityViewer,
    page: PageDep,
    status: Annotated[EventStatus | None, Query()] = None,
) -> HTMLResponse:
    events = await event_service.search_events(
        session, utility_id=viewer.org_id, page=page, statuses=[status] if status else ()
    )
    now = utc_now()
    programs = await program_service.search_programs(
        session, utility_id=viewer.org_id, page=Page(limit=MAX_LIMIT)
    )
    context = {
        "events": [views.utility_event_payload(e, now) for e in events],
        "program_names": {str(p.id): p.name for p in programs},
        "status": status or "",
        "statuses": ("UPCOMING", "ACTIVE", "COMPLETED", "CANCELED"),
        "page": page,
    }
    return await render_page(
        request, session, viewer, "dashboard/events.html", context, tab="events"
    )


def _default_form() -> dict[str, str]:
    """A discharge at the top of the hour after next, for two hours, as a starting point."""
    start = utc_now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    return {
        "target_type": "PROGRAM",
        "actions.0.mode": "DISCHARGE",
        "actions.0.starts_at": start.strftime("%Y-%m-%dT%H:%M"),
        "actions.0.duration_min": "120",
        "actions.0.power_mode": "SETPOINT",
        "actions.0.setpoint_kw": "5",
        "actions.0.setpoint_mode": "PER_DEVICE",
    }


async def _form_page(
    request: Request,
    session: AsyncSession,
    viewer: Principal,
    values: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
) -> HTMLResponse:
    programs = await program_service.search_programs(
        session, utility_id=viewer.org_id, page=Page(limit=MAX_LIMIT)
    )
    context = {
        "programs": programs,
        "values": values,
        "errors": errors,
        "rows": range(ACTION_ROWS),
    }
    return await render_page(
        request,
        session,
        viewer,
        "dashboard/event_new.html",
        context,
        tab="events",
        status_code=status_code,
    )


@router.get("/new")
async def new_event_page(
    request: Request,
    session: SessionDep,
    viewer: UtilityViewer,
    program: Annotated[str, Query(max_length=100)] = "",
) -> HTMLResponse:
    values = {**_default_form(), "program_id": program}
    return await _form_page(request, session, viewer, values, {})


@router.post("/new", response_model=None)
async def create_event(request: Request, session: SessionDep, viewer: UtilityViewer) -> Response:
    """Dispatch through the same schema and service as `POST /v1/events`; a refusal shows the
    form again with the operator's input and each message at its field."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        data = parse(EventCreate, event_body(form))
        event = await event_service.dispatch_event(session, viewer, data)
    except GridhiveError as exc:
        errors = {form_error_key(path): msg for path, msg in service_errors(exc).items()}
        return await _form_page(request, session, viewer, form, errors, exc.status_code)
    except OverflowError:
        # A duration beyond any calendar: the API has no bound for it yet, so say it here.
        errors = {"form": "A duration or setpoint is too large to plan"}
        return await _form_page(request, session, viewer, form, errors, 422)
    return see_other(f"/dashboard/events/{event.id}", "event-created")


async def _live_context(session: AsyncSession, event: Event) -> dict[str, Any]:
    plan = await event_service.event_plan(session, event)
    devices: list[dict[str, Any]] = plan["devices"]  # type: ignore[assignment]
    return {
        "event": views.utility_event_payload(event, utc_now()),
        "live": not is_finished(event, utc_now()),
        "refresh": LIVE_REFRESH,
        "counts": charts.command_counts(devices),
        "devices": devices[:DEVICES_SHOWN],
        "devices_hidden": max(0, len(devices) - DEVICES_SHOWN),
        "plan": plan,
    }


@router.get("/{event_id}")
async def event_page(
    request: Request, event_id: EventId, session: SessionDep, viewer: UtilityViewer
) -> HTMLResponse:
    event = await _event(session, viewer, event_id)
    now = utc_now()
    measured = await performance.event_performance(session, event, now)
    program = await program_service.get_program_or_raise(session, event.program_id)
    context = {
        **await _live_context(session, event),
        "program": program,
        "sites": await performance.event_sites(session, event, now),
        "performance": measured,
        "power_chart": charts.power_chart(measured),
        "chart_refresh_ms": CHART_REFRESH_MS,
    }
    return await render_page(
        request, session, viewer, "dashboard/event.html", context, tab="events"
    )


@router.get("/{event_id}/live")
async def event_live(
    request: Request, event_id: EventId, session: SessionDep, viewer: UtilityViewer
) -> HTMLResponse:
    """The event's status and commands, swapped into the page by HTMX while it runs."""
    event = await _event(session, viewer, event_id)
    return render(request, "dashboard/_event_live.html", await _live_context(session, event))


@router.get("/{event_id}/power")
async def event_power(
    event_id: EventId, session: SessionDep, viewer: UtilityViewer
) -> JSONResponse:
    """The chart's figures again, for the page to redraw while the event runs."""
    event = await _event(session, viewer, event_id)
    measured = await performance.event_performance(session, event, utc_now())
    return JSONResponse(charts.power_chart(measured))


@router.get("/{event_id}/cancel")
async def cancel_confirm_page(
    request: Request, event_id: EventId, session: SessionDep, viewer: UtilityViewer
) -> HTMLResponse:
    event = await _event(session, viewer, event_id)
    context = {"event": views.utility_event_payload(event, utc_now())}
    return await render_page(
        request, session, viewer, "dashboard/event_cancel.html", context, tab="events"
    )


@router.post("/{event_id}/cancel")
async def cancel_event(event_id: EventId, session: SessionDep, viewer: UtilityViewer) -> Response:
    """The service of `DELETE /v1/events/{id}`: a finished event is a 409 page."""
    event = await _event(session, viewer, event_id)
    await event_service.cancel_event(session, event)
    return see_other(f"/dashboard/events/{event.id}", "event-canceled")
