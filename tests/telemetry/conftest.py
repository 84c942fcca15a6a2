"""The common graph for telemetry tests: a utility's program with two homes of one OEM."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.devices.models import Device
from gridhive.kit.time import isoformat_z
from gridhive.programs.models import Program
from gridhive.sites.models import Site
from gridhive.telemetry import repository
from tests.factories import (
    Tenant,
    create_device,
    create_enrollment,
    create_program,
    create_site,
)


@dataclass
class Fleet:
    utility: Tenant
    oem: Tenant
    program: Program
    sites: dict[str, Site]
    devices: dict[str, Device]


@pytest.fixture
async def fleet(session: AsyncSession, utility: Tenant, oem: Tenant) -> Fleet:
    """home-1 with batteries b-1 and b-2, home-2 with b-3; all enrolled and ACTIVE."""
    program = await create_program(session, utility, auto_approve=True)
    sites, devices = {}, {}
    for site_id, device_ids in (("home-1", ["b-1", "b-2"]), ("home-2", ["b-3"])):
        site = sites[site_id] = await create_site(session, oem, site_id)
        batteries = [await create_device(session, site, d) for d in device_ids]
        devices.update({d.id: d for d in batteries})
        await create_enrollment(session, site, program, batteries)
    return Fleet(utility, oem, program, sites, devices)


def item(device_id: str, start_time: datetime | str, **overrides: Any) -> dict[str, Any]:
    """A complete item of an online battery, as §9.7 lists it."""
    start = start_time if isinstance(start_time, str) else isoformat_z(start_time)
    fields: dict[str, Any] = {
        "start_time": start,
        "duration_s": 300,
        "device_id": device_id,
        "last_is_online": True,
        "last_mode": "SELF_CONSUMPTION",
        "battery_last_power_charge_w": 0,
        "battery_last_power_discharge_w": 1200,
        "battery_total_energy_charge_wh": 0,
        "battery_total_energy_discharge_wh": 100,
        "battery_last_stored_energy_wh": 6750,
        "battery_last_capacity_energy_wh": 13500,
        "battery_last_backup_reserve_percentage": 20,
        "battery_last_state_of_charge_percentage": 50,
        "battery_last_state_of_health_percentage": 98,
        "last_is_grid_online": True,
        "home_total_energy_wh": 150,
        "home_last_power_w": 1800,
        "solar_total_energy_wh": 20,
        "solar_last_power_w": 240,
        "oem_raw_data": {"firmware": "1.2.3"},
    }
    fields.update(overrides)
    return fields


def offline_item(device_id: str, start_time: datetime) -> dict[str, Any]:
    nullable = {k: None for k in item(device_id, start_time) if k not in _REQUIRED}
    return {**item(device_id, start_time), **nullable, "last_is_online": False}


_REQUIRED = {"start_time", "duration_s", "device_id", "last_is_online"}


async def post_battery(
    client: httpx.AsyncClient, tenant: Tenant, items: list[Any], **body: Any
) -> httpx.Response:
    return await client.post(
        "/v1/telemetry/BATTERY", json={"telemetry": items, **body}, headers=tenant.headers
    )


async def answers(client: httpx.AsyncClient, tenant: Tenant, items: list[Any]) -> list[Any]:
    response = await post_battery(client, tenant, items)
    assert response.status_code == 200, response.text
    result: list[Any] = response.json()
    assert len(result) == len(items)
    return result


def energy_row(
    device: Device, start_time: datetime, *, charge_wh: float, discharge_wh: float
) -> dict[str, Any]:
    """A stored 5-minute interval with the energies given (the rest as an online battery)."""
    row = dict.fromkeys(repository.INTERVAL_COLUMNS)
    row.update(
        device_pk=device.pk,
        start_time=start_time,
        duration_s=300.0,
        last_is_online=True,
        battery_total_energy_charge_wh=charge_wh,
        battery_total_energy_discharge_wh=discharge_wh,
    )
    return row


async def store_energy(
    session: AsyncSession,
    device: Device,
    start: datetime,
    count: int,
    *,
    charge_wh: float = 0.0,
    discharge_wh: float = 0.0,
) -> None:
    """`count` consecutive 5-minute intervals from `start`."""
    rows = [
        energy_row(
            device, start + i * timedelta(minutes=5), charge_wh=charge_wh, discharge_wh=discharge_wh
        )
        for i in range(count)
    ]
    await repository.upsert_intervals(session, rows)
    await session.commit()
