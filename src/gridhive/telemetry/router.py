"""Telemetry: device makers upload it (Cloud API); utilities read it, and see what their events
delivered and what their fleet could deliver (Utility API)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from gridhive.auth.deps import OemPrincipal, SessionDep, UtilityPrincipal
from gridhive.events import service as event_service
from gridhive.events.schemas import EventSiteRead
from gridhive.idempotency.routing import IdempotentRoute
from gridhive.kit.time import utc_now
from gridhive.programs import service as program_service
from gridhive.telemetry import capacity, performance, service, timeline
from gridhive.telemetry.schemas import (
    CapacityRead,
    CounterBatchIn,
    EventPerformanceRead,
    ItemColumns,
    ItemResult,
    TelemetryBatchIn,
    TelemetryHistoricalQuery,
    TelemetryLatestQuery,
    TelemetryPublishedWebhook,
    Time,
    TimelinePage,
    UtilityTelemetryPage,
    item_columns,
)

cloud_router = APIRouter(prefix="/v1", tags=["Cloud API"], route_class=IdempotentRoute)
utility_router = APIRouter(prefix="/v1", tags=["Utility API"], route_class=IdempotentRoute)
# Webhooks gridhive sends (OpenAPI `webhooks`): the app includes it in `app.webhooks`.
webhook_docs = APIRouter(tags=["Webhooks"])

EventId = Annotated[uuid.UUID, Path(alias="id", description="Event id")]
ProgramId = Annotated[uuid.UUID, Path(alias="id", description="Program id")]
_TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"description": "More than 1,000 items; nothing was stored"}
}
_NO_PROGRAM: dict[int | str, dict[str, Any]] = {404: {"description": "Not your program"}}
_NO_EVENT: dict[int | str, dict[str, Any]] = {404: {"description": "Not your event"}}


_BATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": TelemetryBatchIn.model_json_schema()}},
    }
}


def _battery_batch(raw: bytes) -> TelemetryBatchIn | ItemColumns:
    """The request body: a batch of valid items as columns, validated in one pass from its bytes
    (the hot path); otherwise decoded for per-item answers, with FastAPI's 422 for a body that
    is not a batch at all."""
    columns = item_columns(raw)
    if columns is not None:
        return columns
    if not raw:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required"}]
        )
    try:
        decoded = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = exc.pos if isinstance(exc, json.JSONDecodeError) else exc.start
        error = {"type": "json_invalid", "loc": ("body", where), "msg": "JSON decode error"}
        raise RequestValidationError([error]) from exc
    try:
        return TelemetryBatchIn.model_validate(decoded)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from exc


_STORED = json.dumps(service.STORED).encode()


def _answers(answers: list[dict[str, str]]) -> Response:
    # Encoded here rather than through `response_model`, which would validate 1,000 answers;
    # the common answer is encoded once. The same bytes as `json.dumps(answers)`.
    encoded = [_STORED if a is service.STORED else json.dumps(a).encode() for a in answers]
    return Response(b"[" + b", ".join(encoded) + b"]", media_type="application/json")


@cloud_router.post(
    "/telemetry/BATTERY",
    response_model=list[ItemResult],
    responses=_TOO_LARGE,
    openapi_extra=_BATCH_BODY,
)
async def report_battery_telemetry(
    request: Request, session: SessionDep, principal: OemPrincipal
) -> Response:
    """Report up to 1,000 interval readings of your batteries.

    The answer has one `{status, message}` per item, in request order: a bad item is `FAILED`
    with the reason and the others are stored. A repeated device and `start_time` replaces the
    earlier reading. See the item schema for the offline rule and what an online item needs.
    The 2024 body (top-level `start_time`/`duration_s`) is still accepted.
    """
    body = _battery_batch(await request.body())
    return _answers(await service.ingest_battery(session, principal, body, utc_now()))


# The oldest Flip documents posted interval telemetry here.
cloud_router.add_api_route(
    "/telemetry",
    report_battery_telemetry,
    methods=["POST"],
    response_model=list[ItemResult],
    include_in_schema=False,
)


@cloud_router.post(
    "/telemetry/BATTERY_COUNTER", response_model=list[ItemResult], responses=_TOO_LARGE
)
async def report_battery_counter_telemetry(
    body: CounterBatchIn, session: SessionDep, principal: OemPrincipal
) -> list[dict[str, str]]:
    """Report up to 1,000 lifetime-counter readings; each becomes an interval from the
    device's previous reading (see the Counter Telemetry schema). Answered per item as for
    `/telemetry/BATTERY`."""
    return await service.ingest_counters(session, principal, body, utc_now())


@utility_router.post(
    "/telemetry/latest", response_model=UtilityTelemetryPage, responses=_NO_PROGRAM
)
async def read_latest_telemetry(
    body: TelemetryLatestQuery, session: SessionDep, principal: UtilityPrincipal
) -> dict[str, Any]:
    """The latest point per device of your program (ACTIVE and PAUSED enrollments), ordered by
    device id; `limit` and `cursor`/`next_cursor` page through large fleets (our addition)."""
    return await service.read_latest(session, principal, body, utc_now())


@utility_router.post(
    "/telemetry/historical", response_model=UtilityTelemetryPage, responses=_NO_PROGRAM
)
async def read_historical_telemetry(
    body: TelemetryHistoricalQuery, session: SessionDep, principal: UtilityPrincipal
) -> dict[str, Any]:
    """One point per interval per device, for intervals starting in [start_time, end_time)
    (at most 31 days), ordered by device id then time; paged like `/telemetry/latest`."""
    return await service.read_historical(session, principal, body)


@utility_router.get("/events/{id}/sites", response_model=list[EventSiteRead], responses=_NO_EVENT)
async def read_event_sites(
    event_id: EventId, session: SessionDep, principal: UtilityPrincipal
) -> list[dict[str, Any]]:
    """Participation and performance per site: expected figures from the plan, actual ones
    from telemetry in the event window net of each device's baseline (see
    `GET /v1/events/{id}/performance`)."""
    event = await event_service.get_event_or_raise(
        session, utility_id=principal.org_id, event_id=event_id
    )
    return await performance.event_sites(session, event, utc_now())


@utility_router.get(
    "/events/{id}/performance", response_model=EventPerformanceRead, responses=_NO_EVENT
)
async def read_event_performance(
    event_id: EventId, session: SessionDep, principal: UtilityPrincipal
) -> dict[str, Any]:
    """Requested, expected and delivered kW per 5 minutes of the event (our addition).

    Delivered is measured discharge net of each device's baseline: the same clock window on
    its previous 10 non-event days when it has them, else the hour before the event. Totals
    give delivered kWh, the share of devices delivering more than 10% of what was expected,
    and data coverage (the share of expected device-intervals that have telemetry).
    """
    event = await event_service.get_event_or_raise(
        session, utility_id=principal.org_id, event_id=event_id
    )
    return await performance.event_performance(session, event, utc_now())


@utility_router.get("/programs/{id}/capacity", response_model=CapacityRead, responses=_NO_PROGRAM)
async def read_program_capacity(
    program_id: ProgramId,
    session: SessionDep,
    principal: UtilityPrincipal,
    at: Annotated[Time | None, Query(description="When (not in the past); default now")] = None,
) -> dict[str, Any]:
    """Discharge kW and kWh the program's batteries could deliver now or at `at` (our
    addition), in total and per group, with offline and unknown-state devices counted apart."""
    program = await program_service.get_program_or_raise(
        session, program_id, utility_id=principal.org_id
    )
    return await capacity.program_capacity(session, program, at, utc_now())


@utility_router.get("/events/{id}/timeline", response_model=TimelinePage, responses=_NO_EVENT)
async def read_event_timeline(
    event_id: EventId,
    session: SessionDep,
    principal: UtilityPrincipal,
    limit: Annotated[int, Query(ge=1, le=1000, description="Entries per page")] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> dict[str, Any]:
    """Everything that happened to the event, oldest first (our addition): each change of the
    event, its site events (opt-outs) and commands, each delivery attempt of the messages about
    them (succeeded, failed with the HTTP status, dead) and each device's acknowledgement."""
    event = await event_service.get_event_or_raise(
        session, utility_id=principal.org_id, event_id=event_id
    )
    return await timeline.event_timeline(session, event, limit=limit, cursor=cursor)


@webhook_docs.post("telemetry.published")
def telemetry_published(body: TelemetryPublishedWebhook) -> None:
    """Every 5 minutes, for each of your programs with an ACTIVE enrollment: the program's
    devices enrolled, reporting and online, state of charge, stored energy and mean battery
    power over the window, in total and per group (our addition). Sent once per program and
    window; the `id` of the object (program id and window start) names the window."""
