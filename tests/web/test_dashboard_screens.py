"""Screenshots of the dashboard with a fleet in the middle of an event (not a normal test run).

GRIDHIVE_SCREENSHOTS=1 pytest tests/web/test_dashboard_screens.py saves docs/screenshots/
dashboard-{event,fleet,enrollments,programs}.png: six homes in two groups, two waiting for
approval, an even 20 kW discharge that began 40 minutes ago with telemetry delivered so far.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.auth.models import OrgKind
from gridhive.auth.service import Principal
from gridhive.events import service as event_service
from gridhive.events.schemas import EventCreate
from gridhive.kit.time import frozen_time, isoformat_z, utc_now
from gridhive.programs.models import Program
from tests.factories import (
    Tenant,
    create_device,
    create_enrollment,
    create_group,
    create_program,
    create_site,
    create_tenant,
)
from tests.web.conftest import LiveServer
from tests.web.test_dashboard_journey import screenshot, sign_in

pytestmark = pytest.mark.skipif(
    os.environ.get("GRIDHIVE_SCREENSHOTS") != "1", reason="screenshots only on request"
)
HOMES = {  # site: (battery, rated output W, state of charge now, group)
    "oak-street-12": ("pc-1001", 5000, 78.0, "north"),
    "elm-avenue-4": ("pc-1002", 5000, 64.0, "north"),
    "birch-lane-9": ("pc-1003", 3000, 55.0, "north"),
    "cedar-court-2": ("pc-1004", 5000, 71.0, "south"),
    "pine-road-33": ("pc-1005", 5000, 47.0, "south"),
    "maple-drive-7": ("pc-1006", 5000, 83.0, "south"),
}
WAITING = {"willow-way-5": "pc-1007", "aspen-place-1": "pc-1008"}


async def seed(session: AsyncSession) -> tuple[Tenant, Tenant, Program]:
    utility = await create_tenant(session, kind="utility", name="Acme Power")
    oem = await create_tenant(session, kind="oem", name="Volt Batteries")
    program = await create_program(
        session, utility, minimum_reserve_percentage=20, state_codes=["CA"]
    )
    await create_group(session, program, "north", "North valley")
    await create_group(session, program, "south", "South coast")
    for site_id, (device_id, output_w, _, _) in HOMES.items():
        site = await create_site(session, oem, site_id, city="Fresno")
        attributes = {"battery_capacity_wh": 13500, "battery_power_input_w": 5000}
        battery = await create_device(
            session, site, device_id, attributes={**attributes, "battery_power_output_w": output_w}
        )
        await create_enrollment(session, site, program, [battery])
    for site_id, device_id in WAITING.items():
        site = await create_site(session, oem, site_id, city="Clovis")
        await create_enrollment(
            session, site, program, [await create_device(session, site, device_id)]
        )
    return utility, oem, program


async def approve_and_group(http: httpx.AsyncClient, utility: Tenant, program: Program) -> None:
    listing = await http.get(
        "/v1/enrollments", params={"program_id": str(program.id)}, headers=utility.headers
    )
    for enrollment in listing.json()["enrollments"]:
        home = HOMES.get(enrollment["site"]["id"])
        if home is not None:
            body = {"status": "ACTIVE", "group_ids": [home[3]]}
            answer = await http.patch(
                f"/v1/enrollments/{enrollment['id']}", json=body, headers=utility.headers
            )
            assert answer.status_code == 200, answer.text


def reading(device_id: str, start: Any, discharge_w: float, soc: float) -> dict[str, Any]:
    wh = discharge_w * 300 / 3600
    return {
        "start_time": isoformat_z(start),
        "duration_s": 300,
        "device_id": device_id,
        "last_is_online": True,
        "last_mode": "DISCHARGE" if discharge_w > 1000 else "SELF_CONSUMPTION",
        "battery_last_power_charge_w": 0,
        "battery_last_power_discharge_w": discharge_w,
        "battery_total_energy_charge_wh": 0,
        "battery_total_energy_discharge_wh": wh,
        "battery_last_stored_energy_wh": 13500 * soc / 100,
        "battery_last_capacity_energy_wh": 13500,
        "battery_last_backup_reserve_percentage": 20,
        "battery_last_state_of_charge_percentage": soc,
        "battery_last_state_of_health_percentage": 97,
        "last_is_grid_online": True,
        "home_total_energy_wh": 100,
        "home_last_power_w": 1200,
        "solar_total_energy_wh": 0,
        "solar_last_power_w": 0,
    }


async def report_telemetry(http: httpx.AsyncClient, oem: Tenant, event_start: Any) -> None:
    """The hour before the event at home load, then the discharge each battery delivered."""
    slots = int((utc_now() - event_start).total_seconds() // 300)
    items = []
    for n, (device_id, output_w, soc, _) in enumerate(HOMES.values()):
        for k in range(-12, slots):
            start = event_start + timedelta(minutes=5 * k)
            delivering = k >= 0
            power = min(output_w, 3400) * (0.92 + 0.02 * (n % 3)) if delivering else 250
            soc_then = soc + max(0, slots - k) * 0.9 if delivering else soc + slots * 0.9
            items.append(reading(device_id, start, power, min(soc_then, 100.0)))
    answer = await http.post(
        "/v1/telemetry/BATTERY", json={"telemetry": items}, headers=oem.headers
    )
    assert answer.status_code == 200, answer.text


async def acknowledge(http: httpx.AsyncClient, oem: Tenant) -> None:
    for command in (await http.get("/v1/commands", headers=oem.headers)).json():
        status = "FAILED_OFFLINE" if command["device_id"] == "pc-1005" else "OK"
        await http.patch(
            f"/v1/command/{command['id']}", json={"device_status": status}, headers=oem.headers
        )


async def test_screens(live: LiveServer, page: Any) -> None:
    async with live.sessionmaker() as session:
        utility, oem, program = await seed(session)
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        await approve_and_group(http, utility, program)
        start = (utc_now() - timedelta(minutes=40)).replace(second=0, microsecond=0)
        body = {
            "program_id": str(program.id),
            "target_type": "GROUP",
            "target_ids": ["north", "south"],
            "actions": [
                {
                    "mode": "DISCHARGE",
                    "starts_at": isoformat_z(start),
                    "duration_s": 7200,
                    "power_mode": "SETPOINT",
                    "setpoint_w": 24000,
                    "setpoint_mode": "EVEN",
                }
            ],
        }
        principal = Principal(org_id=utility.org.id, kind=OrgKind.UTILITY, via="key")
        with frozen_time(start - timedelta(minutes=30)):  # dispatched half an hour before
            async with live.sessionmaker() as session:
                event = await event_service.dispatch_event(
                    session, principal, EventCreate.model_validate(body)
                )
                await session.commit()
        await acknowledge(http, oem)
        await report_telemetry(http, oem, start)

    await sign_in(page, live, utility)
    await page.goto(f"{live.base_url}/dashboard/events/{event.id}")
    await screenshot(page, "event")
    await page.goto(f"{live.base_url}/dashboard/fleet")
    await screenshot(page, "fleet")
    await page.goto(f"{live.base_url}/dashboard/enrollments?program={program.id}")
    await screenshot(page, "enrollments")
    await page.goto(f"{live.base_url}/dashboard/programs/{program.id}")
    await screenshot(page, "program")
    await page.goto(f"{live.base_url}/dashboard/events")
    await screenshot(page, "events")
    await page.context.clear_cookies()
    await sign_in(page, live, oem)
    await page.goto(f"{live.base_url}/dashboard/commands")
    await screenshot(page, "commands")
