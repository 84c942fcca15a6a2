"""A home with a battery, enrolled (ACTIVE) in a program that keeps a 30% reserve."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.devices.models import Device
from gridhive.enrollments.models import Enrollment, EnrollmentStatus
from gridhive.programs.models import Program
from gridhive.sites.models import Site
from tests.factories import (
    Tenant,
    create_device,
    create_enrollment,
    create_program,
    create_site,
    site_token,
)

# The worker tests' committed database, receiver and worker serve the end-to-end delivery test.
from tests.workers.conftest import (  # noqa: F401
    committed,
    committed_engine,
    make_worker,
    receiver,
)

SETTINGS_PATH = "/v1/site/home-42/device/pw-1/settings"


@pytest.fixture
async def site(session: AsyncSession, oem: Tenant) -> Site:
    return await create_site(session, oem, "home-42")


@pytest.fixture
async def battery(session: AsyncSession, site: Site) -> Device:
    return await create_device(session, site, "pw-1")


@pytest.fixture
async def program(session: AsyncSession, utility: Tenant) -> Program:
    return await create_program(
        session,
        utility,
        name="Summer Peak Rewards",
        state_codes=["CA"],
        auto_approve=True,
        minimum_reserve_percentage=30,
    )


@pytest.fixture
async def enrollment(
    session: AsyncSession, site: Site, battery: Device, program: Program
) -> Enrollment:
    enrollment = await create_enrollment(session, site, program, [battery])
    assert enrollment.status == EnrollmentStatus.ACTIVE
    return enrollment


@pytest.fixture
async def homeowner(session: AsyncSession, oem: Tenant, site: Site) -> dict[str, str]:
    """The homeowner's app: a site token for the home."""
    return await site_token(session, oem, site)


async def request_settings(
    client: httpx.AsyncClient, headers: dict[str, str], **body: object
) -> httpx.Response:
    return await client.post(SETTINGS_PATH, json=body, headers=headers)


def error_paths(response: httpx.Response) -> list[str]:
    return [error["path"] for error in response.json()["errors"]]
