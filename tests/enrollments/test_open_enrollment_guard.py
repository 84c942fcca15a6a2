"""The database itself keeps a site to one open enrollment per program: two requests that both
pass the service's check (a race) cannot both store one."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.devices.models import Device
from gridhive.enrollments.models import Enrollment, EnrollmentStatus, EnrollMethod
from gridhive.programs.models import Program
from gridhive.sites.models import Site
from tests.factories import create_enrollment


def second_enrollment(site: Site, program: Program, status: EnrollmentStatus) -> Enrollment:
    """What a request racing the first one would store: the service's check saw nothing."""
    return Enrollment(
        tenant_id=site.tenant_id,
        site_pk=site.pk,
        program_id=program.id,
        enroll_method=EnrollMethod.USER_ACTION,
        status=status,
    )


async def test_a_second_open_enrollment_is_refused(
    session: AsyncSession, site: Site, battery: Device, program: Program
) -> None:
    await create_enrollment(session, site, program, [battery])
    for status in (EnrollmentStatus.SUBMITTED, EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED):
        with pytest.raises(IntegrityError):
            async with session.begin_nested():
                session.add(second_enrollment(site, program, status))


async def test_closed_enrollments_do_not_count(
    session: AsyncSession, site: Site, battery: Device, program: Program
) -> None:
    async with session.begin_nested():
        session.add(second_enrollment(site, program, EnrollmentStatus.UNENROLLED))
        session.add(second_enrollment(site, program, EnrollmentStatus.REJECTED))
    # Closed history in the program does not stop one open enrollment (the service decides
    # what a rejection means).
    async with session.begin_nested():
        session.add(second_enrollment(site, program, EnrollmentStatus.ACTIVE))
