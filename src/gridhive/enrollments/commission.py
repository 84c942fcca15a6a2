"""Commissioning: the Cloud API calls that bring a site and its devices in (commission, sessions).

They live with enrollments because commissioning may enroll the site at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.auth.service import Principal
from gridhive.devices import service as device_service
from gridhive.devices.models import Device
from gridhive.enrollments import service
from gridhive.enrollments.models import Enrollment
from gridhive.enrollments.schemas import (
    CommissionCreate,
    CommissionEnrollment,
    EnrollmentCreate,
    SessionCreate,
    SessionRead,
)
from gridhive.errors import Unprocessable
from gridhive.programs import service as program_service
from gridhive.programs.models import Program
from gridhive.programs.schemas import EnrollmentFormField
from gridhive.sites import service as site_service
from gridhive.sites.models import Site


@dataclass(frozen=True)
class Commissioned:
    """What commissioning answers: the stored site and devices, their programs, any enrollment."""

    site: Site
    devices: list[Device]
    can_auto_enroll: bool | None
    programs: list[Program]
    enrollment: Enrollment | None


async def commission(
    session: AsyncSession, *, tenant_id: uuid.UUID, data: CommissionCreate
) -> Commissioned:
    """Create or update the site and its devices, list their programs, and enroll when asked.

    With an `enrollment` object, that enrollment is made with every check of Create
    Enrollment (AUTO_ENROLL unless it says otherwise). Otherwise a site whose homeowner agreed
    beforehand (`can_auto_enroll`, as stored from this or an earlier commission) is enrolled
    automatically when a program allows it (see `_auto_enroll`). Any failure raises, and the
    request's transaction then stores nothing at all.
    """
    site, _ = await site_service.upsert_site(
        session, tenant_id=tenant_id, data=data.site, can_auto_enroll=data.can_auto_enroll
    )
    devices = await device_service.upsert_devices(session, site=site, devices=data.devices)
    programs = await service.offered_programs(session, site=site, devices=devices)
    enrollment = None
    if data.enrollment is not None:
        enrollment = await _enroll_as_asked(session, site, devices, data.enrollment)
    elif site.can_auto_enroll:
        enrollment = await _auto_enroll(session, site, devices, programs)
    return Commissioned(site, devices, site.can_auto_enroll, programs, enrollment)


async def _enroll_as_asked(
    session: AsyncSession, site: Site, devices: Sequence[Device], asked: CommissionEnrollment
) -> Enrollment:
    """The enrollment the commission body asks for; the site's open one in that program when
    it is already enrolled there, so that commissioning again changes nothing."""
    path = "enrollment."
    program = await program_service.get_program(session, asked.program_id)
    if program is None:
        raise Unprocessable.field(f"{path}program_id", f"no program with id {asked.program_id}")
    for open_enrollment in await service.search_open_enrollments(session, site=site):
        if open_enrollment.program_id == program.id:
            return open_enrollment
    device_ids = asked.device_ids or _fitting_device_ids(program, devices)
    if not device_ids:
        raise Unprocessable.field(
            f"{path}device_ids", "none of the commissioned devices is of a type this program takes"
        )
    data = EnrollmentCreate(
        device_ids=device_ids,
        program_id=program.id,
        enroll_method=asked.enroll_method,
        has_agreed_to_terms_and_conditions=asked.has_agreed_to_terms_and_conditions,
        terms_and_conditions_version=asked.terms_and_conditions_version,
        program_specific_attributes=asked.program_specific_attributes,
    )
    return await service.create_enrollment(
        session, site=site, program=program, data=data, path_prefix=path
    )


async def _auto_enroll(
    session: AsyncSession, site: Site, devices: Sequence[Device], programs: Sequence[Program]
) -> Enrollment | None:
    """Enroll the site into the oldest offered program that needs nothing more from anyone.

    Such a program allows auto-enrollment, has no required enrollment-form field and no terms
    and conditions version (agreeing to a version is explicit: send an `enrollment` object for
    those). A program the site has left or was rejected from is not chosen again: the homeowner
    or the utility decided. A site that already has an open enrollment keeps it and gets it
    back, so commissioning again never enrolls twice.
    """
    open_enrollments = await service.search_open_enrollments(session, site=site)
    if open_enrollments:
        return open_enrollments[0]
    left = {e.program_id for e in await service.search_enrollments(session, site=site)}
    for program in programs:
        device_ids = _fitting_device_ids(program, devices)
        if _needs_nothing_more(program) and program.id not in left and device_ids:
            data = EnrollmentCreate(
                device_ids=device_ids, program_id=program.id, enroll_method="AUTO_ENROLL"
            )
            return await service.create_enrollment(session, site=site, program=program, data=data)
    return None


def _needs_nothing_more(program: Program) -> bool:
    form = map(EnrollmentFormField.model_validate, program.enrollment_form)
    return (
        program.can_auto_enroll
        and not any(field.required for field in form)
        and program.terms_and_conditions_version is None
    )


def _fitting_device_ids(program: Program, devices: Sequence[Device]) -> list[str]:
    return [d.id for d in devices if d.type in program.eligible_device_types]


async def open_session(
    session: AsyncSession, *, principal: Principal, data: SessionCreate, ttl: timedelta
) -> SessionRead:
    """A single-use portal session for the site, commissioning it first when it is new.

    A known site is reused as it is unless the body carries site fields or devices.
    `has_programs` says whether any program is offered for the site's device types.
    """
    site = await site_service.get_site(session, tenant_id=principal.org_id, site_id=data.site.id)
    if site is None or data.site.model_fields_set - {"id"}:
        site, _ = await site_service.upsert_site(
            session, tenant_id=principal.org_id, data=data.site
        )
    if data.devices:
        await device_service.upsert_devices(session, site=site, devices=data.devices)
    devices = await device_service.search_devices(session, site=site)
    programs = await service.offered_programs(session, site=site, devices=devices)
    token = await site_service.issue_session_token(session, principal, site, ttl=ttl)
    return SessionRead(token=token, has_programs=bool(programs))
