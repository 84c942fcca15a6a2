"""Commissioning and sessions (Cloud API); a site's programs and enrollments (Mobile App API);
a program's enrollments (Utility API reads).

The site-scoped program routes live here, not in programs/, because they need the site.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from gridhive.auth.deps import OemPrincipal, SessionDep, UtilityPrincipal
from gridhive.config import Settings
from gridhive.enrollments import commission, service, utility
from gridhive.enrollments.models import EnrollmentStatus
from gridhive.enrollments.schemas import (
    CommissionCreate,
    CommissionRead,
    EnrollmentCreate,
    EnrollmentRead,
    SessionCreate,
    SessionRead,
    UtilityEnrollmentPage,
    UtilityEnrollmentRead,
)
from gridhive.idempotency.routing import IdempotentRoute
from gridhive.kit.pagination import PageDep
from gridhive.programs import service as program_service
from gridhive.programs.schemas import DeviceTypeName, ProgramRead
from gridhive.sites.deps import SiteDep

cloud_router = APIRouter(prefix="/v1", tags=["Cloud API"], route_class=IdempotentRoute)
mobile_router = APIRouter(
    prefix="/v1/site/{siteId}", tags=["Mobile App API"], route_class=IdempotentRoute
)

ProgramIdPath = Annotated[uuid.UUID, Path(alias="id", description="The program's id")]
EnrollmentIdPath = Annotated[uuid.UUID, Path(alias="id", description="The enrollment's id")]
ZipQuery = Annotated[
    str | None,
    Query(pattern=r"^\d{5}(-\d{4})?$", description="Defaults to the site's zip code"),
]


@cloud_router.post("/commission", response_model=CommissionRead)
async def commission_site(
    body: CommissionCreate, session: SessionDep, principal: OemPrincipal
) -> CommissionRead:
    """Commission a site and its devices (created, or updated when known).

    Answers with the programs the devices are eligible for and, when the site was enrolled
    (an `enrollment` object, or `can_auto_enroll` and a program allowing it), the enrollment.
    Nothing is stored when any part fails.
    """
    result = await commission.commission(session, tenant_id=principal.org_id, data=body)
    return CommissionRead.model_validate(result)


@cloud_router.post("/sessions", response_model=SessionRead)
async def create_session(
    request: Request, body: SessionCreate, session: SessionDep, principal: OemPrincipal
) -> SessionRead:
    """A single-use session token for the homeowner portal; commissions the site if new."""
    settings: Settings = request.app.state.settings
    ttl = timedelta(seconds=settings.auth.session_token_ttl_s)
    return await commission.open_session(session, principal=principal, data=body, ttl=ttl)


@mobile_router.get("/programs", response_model=list[ProgramRead])
async def read_site_programs(
    site: SiteDep,
    session: SessionDep,
    page: PageDep,
    device_type: Annotated[DeviceTypeName, Query(description="BATTERY or EV_CHARGER")],
    zip_code: ZipQuery = None,
) -> object:
    """Programs available for the site, oldest first.

    Location is `zip_code` (default: the site's) with the site's state; minimum battery ratings
    are judged on the total of the site's batteries. Sandbox zips 88800-88802 match test
    programs only.
    """
    return await service.search_site_programs(
        session, site=site, device_type=device_type, zip_code=zip_code, page=page
    )


@mobile_router.get("/program/{id}", response_model=ProgramRead)
async def read_site_program(
    _site: SiteDep, program_id: ProgramIdPath, session: SessionDep
) -> object:
    """One program, e.g. the one an enrollment of the site belongs to."""
    return await program_service.get_program_or_raise(session, program_id)


@mobile_router.post("/enrollments", response_model=EnrollmentRead)
async def create_enrollment(site: SiteDep, body: EnrollmentCreate, session: SessionDep) -> object:
    """Enroll some of the site's devices in a program.

    `USER_ACTION` enrollments wait for the utility (PENDING) unless the program approves them
    at once; `AUTO_ENROLL` (for programs that allow it) is ACTIVE at once. Every answer to the
    program's `enrollment_form` is a string; booleans are "true"/"false".
    """
    return await service.enroll_site(session, site=site, data=body)


@mobile_router.get("/enrollments", response_model=list[EnrollmentRead])
async def read_enrollments(site: SiteDep, session: SessionDep, page: PageDep) -> object:
    """The site's enrollments, newest first, ended ones included."""
    return await service.search_enrollments(session, site=site, page=page)


@mobile_router.get("/enrollment/{id}", response_model=EnrollmentRead)
async def read_enrollment(
    site: SiteDep, enrollment_id: EnrollmentIdPath, session: SessionDep
) -> object:
    """One enrollment of the site."""
    return await service.get_enrollment_or_raise(session, site=site, enrollment_id=enrollment_id)


# Utility API. PATCH /v1/enrollments/{id} lives in commands.router: pausing, rejecting and
# unenrolling cancel the devices' commands, and this domain may not import commands.
utility_router = APIRouter(prefix="/v1", tags=["Utility API"], route_class=IdempotentRoute)


@utility_router.get("/enrollments", response_model=UtilityEnrollmentPage)
async def read_program_enrollments(
    session: SessionDep,
    principal: UtilityPrincipal,
    page: PageDep,
    program_id: Annotated[uuid.UUID, Query(description="One of your programs")],
    status: Annotated[
        list[EnrollmentStatus] | None,
        Query(description="Only these statuses (may be repeated); our addition"),
    ] = None,
) -> UtilityEnrollmentPage:
    """Every enrollment in the program, ended ones included, oldest first, with the site's
    contact details and groups and the enrolled devices.

    `skip`/`limit` and `status` are our additions (default 100, max 1000; `status` may be
    repeated, e.g. `status=PENDING&status=SUBMITTED` for the ones awaiting a decision); Flip
    answers the whole program.
    """
    enrollments = await utility.search_program_enrollments(
        session,
        utility_id=principal.org_id,
        program_id=program_id,
        page=page,
        statuses=status or (),
    )
    return UtilityEnrollmentPage(
        enrollments=await utility.utility_enrollments(session, enrollments)
    )


@utility_router.get("/enrollments/{id}", response_model=UtilityEnrollmentRead)
async def read_program_enrollment(
    enrollment_id: EnrollmentIdPath, session: SessionDep, principal: UtilityPrincipal
) -> UtilityEnrollmentRead:
    """One enrollment in one of your programs."""
    enrollment = await utility.get_enrollment_for_utility_or_raise(
        session, utility_id=principal.org_id, enrollment_id=enrollment_id
    )
    return await utility.utility_enrollment(session, enrollment)
