"""What the dashboard tests share: signing in, and a utility's program with enrolled homes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.devices.models import Device
from gridhive.kit.time import isoformat_z, utc_now
from gridhive.programs.models import Program
from tests.factories import Tenant, create_device, create_enrollment, create_program, create_site


@dataclass(frozen=True)
class Fleet:
    program: Program
    utility: Tenant
    oem: Tenant
    devices: tuple[Device, ...] = ()


async def sign_in(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """Sign in as the tenant; the client keeps the session cookie."""
    response = await client.post("/dashboard/sign-in", data={"api_key": tenant.key})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/dashboard"


async def seed_fleet(session: AsyncSession, utility: Tenant, oem: Tenant) -> Fleet:
    """Two enrolled homes with one battery each, ACTIVE in a program that approves itself."""
    program = await create_program(session, utility, auto_approve=True)
    devices = []
    for site_id, device_id in (("home-1", "b-1"), ("home-2", "b-2")):
        site = await create_site(session, oem, site_id)
        battery = await create_device(session, site, device_id)
        await create_enrollment(session, site, program, [battery])
        devices.append(battery)
    return Fleet(program=program, utility=utility, oem=oem, devices=tuple(devices))


def event_form(fleet: Fleet, **overrides: str) -> dict[str, Any]:
    """The create-event form as an operator fills it: a 4 kW discharge in three hours."""
    start = (utc_now() + timedelta(hours=3)).replace(second=0, microsecond=0)
    return {
        "program_id": str(fleet.program.id),
        "target_type": "PROGRAM",
        "target_ids": str(fleet.program.id),
        "actions.0.mode": "DISCHARGE",
        "actions.0.starts_at": start.strftime("%Y-%m-%dT%H:%M"),
        "actions.0.duration_min": "120",
        "actions.0.power_mode": "SETPOINT",
        "actions.0.setpoint_kw": "4",
        "actions.0.setpoint_mode": "PER_DEVICE",
        **overrides,
    }


async def report_soc(client: httpx.AsyncClient, fleet: Fleet, socs: dict[str, float]) -> None:
    """The device maker reports each battery online at a state of charge, 5 minutes ago."""
    start = isoformat_z((utc_now() - timedelta(minutes=5)).replace(microsecond=0))
    items = [
        {
            "start_time": start,
            "duration_s": 300,
            "device_id": device_id,
            "last_is_online": True,
            "last_mode": "SELF_CONSUMPTION",
            "battery_last_power_charge_w": 0,
            "battery_last_power_discharge_w": 0,
            "battery_total_energy_charge_wh": 0,
            "battery_total_energy_discharge_wh": 0,
            "battery_last_stored_energy_wh": 13500 * soc / 100,
            "battery_last_capacity_energy_wh": 13500,
            "battery_last_backup_reserve_percentage": 20,
            "battery_last_state_of_charge_percentage": soc,
            "battery_last_state_of_health_percentage": 98,
            "last_is_grid_online": True,
            "home_total_energy_wh": 0,
            "home_last_power_w": 0,
            "solar_total_energy_wh": 0,
            "solar_last_power_w": 0,
        }
        for device_id, soc in socs.items()
    ]
    response = await client.post(
        "/v1/telemetry/BATTERY", json={"telemetry": items}, headers=fleet.oem.headers
    )
    assert response.status_code == 200, response.text
    assert {answer["status"] for answer in response.json()} == {"OK"}, response.text
