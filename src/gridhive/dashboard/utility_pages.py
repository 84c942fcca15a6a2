"""Utility pages: programs with their capacity and groups, enrollments, fleet health."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gridhive.auth.deps import SessionDep
from gridhive.auth.service import Principal
from gridhive.commands import lifecycle
from gridhive.dashboard import charts
from gridhive.dashboard.forms import parse, service_errors
from gridhive.dashboard.pages import UtilityViewer, render_page, see_other
from gridhive.enrollments import utility as enrollment_utility
from gridhive.enrollments.models import EnrollmentStatus
from gridhive.enrollments.schemas import UtilityEnrollmentUpdate
from gridhive.errors import GridhiveError
from gridhive.kit.pagination import MAX_LIMIT, Page
from gridhive.kit.time import utc_now
from gridhive.programs import service as program_service
from gridhive.programs.models import Program
from gridhive.programs.schemas import GroupCreate, GroupUpdate
from gridhive.telemetry import capacity
from gridhive.telemetry import service as telemetry_service
from gridhive.telemetry.schemas import TelemetryLatestQuery

router = APIRouter(prefix="/dashboard")

ProgramId = Annotated[uuid.UUID, Path(description="Program id")]
GroupIdPath = Annotated[str, Path(min_length=1, max_length=100)]
ProgramQuery = Annotated[uuid.UUID | None, Query(alias="program")]
ALL_PROGRAMS = Page(limit=MAX_LIMIT)
ENROLLMENTS_PER_PAGE = 50
# Utility decisions offered per enrollment status (the service refuses any other move).
ENROLLMENT_ACTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "PENDING": (("ACTIVE", "Approve"), ("REJECTED", "Reject")),
    "SUBMITTED": (("ACTIVE", "Approve"), ("REJECTED", "Reject")),
    "CREATED": (("ACTIVE", "Approve"), ("REJECTED", "Reject")),
    "NEEDS_ACTION": (("ACTIVE", "Approve"), ("REJECTED", "Reject")),
    "ACTIVE": (("PAUSED", "Pause"), ("UNENROLLED", "Unenroll")),
    "PAUSED": (("ACTIVE", "Resume"), ("UNENROLLED", "Unenroll")),
}


async def _programs(session: AsyncSession, viewer: Principal) -> Sequence[Program]:
    return await program_service.search_programs(
        session, utility_id=viewer.org_id, page=ALL_PROGRAMS
    )


async def _chosen_program(
    session: AsyncSession, viewer: Principal, program_id: uuid.UUID | None
) -> tuple[Sequence[Program], Program | None]:
    """The program picked in `?program=` (404 when not the viewer's), else the first one."""
    programs = await _programs(session, viewer)
    if program_id is not None:
        program = await program_service.get_program_or_raise(
            session, program_id, utility_id=viewer.org_id
        )
        return programs, program
    return programs, (programs[0] if programs else None)


# Programs ------------------------------------------------------------------------------------


@router.get("/programs")
async def programs_page(
    request: Request, session: SessionDep, viewer: UtilityViewer
) -> HTMLResponse:
    context = {"programs": await _programs(session, viewer)}
    return await render_page(
        request, session, viewer, "dashboard/programs.html", context, tab="programs"
    )


async def _program_page(
    request: Request,
    session: AsyncSession,
    viewer: Principal,
    program: Program,
    *,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context = {
        "program": program,
        "capacity": await capacity.program_capacity(session, program, None, utc_now()),
        "groups": await program_service.search_groups(session, program),
        "group_form": form or {"input": {}, "errors": {}},
    }
    return await render_page(
        request,
        session,
        viewer,
        "dashboard/program.html",
        context,
        tab="programs",
        status_code=status_code,
    )


@router.get("/programs/{program_id}")
async def program_page(
    request: Request, program_id: ProgramId, session: SessionDep, viewer: UtilityViewer
) -> HTMLResponse:
    program = await program_service.get_program_or_raise(
        session, program_id, utility_id=viewer.org_id
    )
    return await _program_page(request, session, viewer, program)


@router.post("/programs/{program_id}/groups", response_model=None)
async def create_group(
    request: Request,
    program_id: ProgramId,
    session: SessionDep,
    viewer: UtilityViewer,
    group_id: Annotated[str, Form(alias="id", max_length=1000)] = "",
    name: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    program = await program_service.get_program_or_raise(
        session, program_id, utility_id=viewer.org_id
    )
    values = {"id": group_id, "name": name}
    try:
        await program_service.create_group(session, program, parse(GroupCreate, values))
    except GridhiveError as exc:
        form = {"input": values, "errors": service_errors(exc)}
        return await _program_page(
            request, session, viewer, program, form=form, status_code=exc.status_code
        )
    return see_other(f"/dashboard/programs/{program.id}", "group-created")


@router.post("/programs/{program_id}/groups/{group_id}", response_model=None)
async def update_group(
    program_id: ProgramId,
    group_id: GroupIdPath,
    session: SessionDep,
    viewer: UtilityViewer,
    name: Annotated[str, Form(max_length=1000)] = "",
) -> RedirectResponse:
    """Rename a group; a bad name is the API's 422, shown as an error page."""
    program = await program_service.get_program_or_raise(
        session, program_id, utility_id=viewer.org_id
    )
    group = await program_service.get_group_or_raise(session, program, group_id)
    data = parse(GroupUpdate, {"name": name})
    await program_service.update_group(session, program, group, data)
    return see_other(f"/dashboard/programs/{program.id}", "group-updated")


@router.post("/programs/{program_id}/groups/{group_id}/delete")
async def delete_group(
    program_id: ProgramId, group_id: GroupIdPath, session: SessionDep, viewer: UtilityViewer
) -> RedirectResponse:
    program = await program_service.get_program_or_raise(
        session, program_id, utility_id=viewer.org_id
    )
    group = await program_service.get_group_or_raise(session, program, group_id)
    await program_service.delete_group(session, group)
    return see_other(f"/dashboard/programs/{program.id}", "group-deleted")


# Enrollments ---------------------------------------------------------------------------------


@router.get("/enrollments")
async def enrollments_page(
    request: Request,
    session: SessionDep,
    viewer: UtilityViewer,
    program_id: ProgramQuery = None,
    status: Annotated[EnrollmentStatus | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    programs, program = await _chosen_program(session, viewer, program_id)
    enrollments: list[Any] = []
    groups: Sequence[Any] = []
    if program is not None:
        found = await enrollment_utility.search_program_enrollments(
            session,
            utility_id=viewer.org_id,
            program_id=program.id,
            page=Page(skip=(page - 1) * ENROLLMENTS_PER_PAGE, limit=ENROLLMENTS_PER_PAGE),
            statuses=[status] if status else (),
        )
        enrollments = await enrollment_utility.utility_enrollments(session, found)
        groups = await program_service.search_groups(session, program)
    context = {
        "programs": programs,
        "program": program,
        "status": status.value if status else "",
        "statuses": [s.value for s in EnrollmentStatus],
        "enrollments": enrollments,
        "groups": groups,
        "actions": ENROLLMENT_ACTIONS,
        "page": page,
        "has_more": len(enrollments) == ENROLLMENTS_PER_PAGE,
    }
    return await render_page(
        request, session, viewer, "dashboard/enrollments.html", context, tab="enrollments"
    )


@router.post("/enrollments/{enrollment_id}")
async def update_enrollment(
    request: Request,
    enrollment_id: Annotated[uuid.UUID, Path()],
    session: SessionDep,
    viewer: UtilityViewer,
) -> RedirectResponse:
    """Approve, reject, pause, resume, unenroll (`status`), or set groups (`group_ids`)."""
    form = await request.form()
    body: dict[str, Any] = {}
    if status := form.get("status"):
        body["status"] = status
    if form.get("set_groups"):
        body["group_ids"] = [str(g) for g in form.getlist("group_ids")]
    data = parse(UtilityEnrollmentUpdate, body)
    enrollment = await enrollment_utility.get_enrollment_for_utility_or_raise(
        session, utility_id=viewer.org_id, enrollment_id=enrollment_id
    )
    await lifecycle.update_enrollment_for_utility(session, enrollment, data)
    back = f"/dashboard/enrollments?program={enrollment.program_id}"
    return RedirectResponse(f"{back}&done=enrollment-updated", status_code=303)


# Fleet health --------------------------------------------------------------------------------


@router.get("/fleet")
async def fleet_page(
    request: Request, session: SessionDep, viewer: UtilityViewer, program_id: ProgramQuery = None
) -> HTMLResponse:
    programs, program = await _chosen_program(session, viewer, program_id)
    context: dict[str, Any] = {"programs": programs, "program": program}
    if program is not None:
        now = utc_now()
        points = await _latest_points(session, viewer, program)
        context["capacity"] = await capacity.program_capacity(session, program, None, now)
        context["fleet"] = charts.fleet_summary(points)
        context["soc_chart"] = charts.soc_histogram(points)
    return await render_page(request, session, viewer, "dashboard/fleet.html", context, tab="fleet")


# Enough for a histogram of any realistic program; past it the chart shows the first pages.
MAX_FLEET_PAGES = 100


async def _latest_points(
    session: AsyncSession, viewer: Principal, program: Program
) -> list[dict[str, Any]]:
    """Each device's latest reading, through the service of `POST /v1/telemetry/latest`."""
    points: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(MAX_FLEET_PAGES):
        query = TelemetryLatestQuery(program_id=str(program.id), limit=MAX_LIMIT, cursor=cursor)
        page = await telemetry_service.read_latest(session, viewer, query, utc_now())
        points.extend(page["telemetry"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return points
