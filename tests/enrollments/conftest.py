"""The common graph for enrollment tests: an OEM's site with a battery, a utility's program."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.devices.models import Device
from gridhive.programs.models import Program
from gridhive.sites.models import Site
from tests.factories import Tenant, create_device, create_program, create_site


@pytest.fixture
async def site(session: AsyncSession, oem: Tenant) -> Site:
    return await create_site(session, oem, "site-1")


@pytest.fixture
async def battery(session: AsyncSession, site: Site) -> Device:
    return await create_device(session, site, "battery-1")


@pytest.fixture
async def program(session: AsyncSession, utility: Tenant) -> Program:
    """Offered in California, where `site` is; asks nothing but the homeowner's click."""
    return await create_program(session, utility, state_codes=["CA"])
