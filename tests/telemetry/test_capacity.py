"""GET /v1/programs/{id}/capacity: what the fleet could discharge now or later."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.devices.models import Device
from gridhive.kit.time import frozen_time, isoformat_z
from gridhive.programs.models import SiteGroup
from tests.factories import (
    Tenant,
    create_device,
    create_enrollment,
    create_event_at,
    create_group,
    create_program,
    create_site,
)
from tests.telemetry.conftest import Fleet, answers, item

NOW = datetime(2026, 7, 15, 16, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with frozen_time(NOW):
        yield


async def set_state(session: AsyncSession, device: Device, **state: Any) -> None:
    await session.execute(sa.update(Device).where(Device.pk == device.pk).values(**state))
    await session.commit()


@pytest.fixture
async def plant(session: AsyncSession, utility: Tenant, oem: Tenant) -> Fleet:
    """Program minimum reserve 25%; 13.5 kWh / 5 kW batteries:

    - b-1 (home-1): SOC 80, reserve 20 -> floor 25: 13,500 x 55% = 7,425 Wh; 1 h power 5,000 W
    - b-2 (home-1): SOC 40, reserve 30 -> floor 30: 13,500 x 10% = 1,350 Wh; 1 h power 1,350 W
    - b-3 (home-2): online when last heard, but 20 minutes ago: offline
    - b-4 (home-3): online, state of charge unknown
    Groups: zone-a = {home-1}, zone-b = {home-2, home-3}, zone-c = {}.
    """
    program = await create_program(
        session, utility, auto_approve=True, minimum_reserve_percentage=25
    )
    sites, devices = {}, {}
    layout = {"home-1": ["b-1", "b-2"], "home-2": ["b-3"], "home-3": ["b-4"]}
    for site_id, device_ids in layout.items():
        site = sites[site_id] = await create_site(session, oem, site_id)
        batteries = [await create_device(session, site, d) for d in device_ids]
        devices.update({d.id: d for d in batteries})
        await create_enrollment(session, site, program, batteries)
    await _report_states(session, devices)
    for group_id, members in (
        ("zone-a", ["home-1"]),
        ("zone-b", ["home-2", "home-3"]),
        ("zone-c", []),
    ):
        group = await create_group(session, program, group_id)
        for site_id in members:
            session.add(SiteGroup(group_pk=group.pk, site_pk=sites[site_id].pk))
    await session.commit()
    return Fleet(utility, oem, program, sites, devices)


async def _report_states(session: AsyncSession, devices: dict[str, Device]) -> None:
    fresh = NOW - timedelta(minutes=2)
    await set_state(
        session, devices["b-1"], state_of_charge_pct=80, is_online=True, last_seen_at=fresh
    )
    await set_state(
        session,
        devices["b-2"],
        state_of_charge_pct=40,
        reserve_percentage=30,
        is_online=True,
        last_seen_at=fresh,
    )
    await set_state(
        session,
        devices["b-3"],
        state_of_charge_pct=90,
        is_online=True,
        last_seen_at=NOW - timedelta(minutes=20),
    )
    await set_state(session, devices["b-4"], is_online=True, last_seen_at=fresh)


async def capacity(client: httpx.AsyncClient, fleet: Fleet, **params: str) -> dict[str, Any]:
    response = await client.get(
        f"/v1/programs/{fleet.program.id}/capacity", params=params, headers=fleet.utility.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def figures(**values: Any) -> dict[str, Any]:
    zero = {
        "devices": 0,
        "available_devices": 0,
        "offline_devices": 0,
        "unknown_state_devices": 0,
        "discharge_kw": 0.0,
        "discharge_kwh": 0.0,
        "rated_discharge_kw": 0.0,
    }
    return {**zero, **values}


class TestNow:
    async def test_totals_and_groups(self, client: httpx.AsyncClient, plant: Fleet) -> None:
        body = await capacity(client, plant)
        assert body["at"] == body["computed_at"] == isoformat_z(NOW)
        # 5,000 + 1,350 W for an hour; 7,425 + 1,350 Wh; two 5 kW ratings.
        home_1 = figures(
            devices=2,
            available_devices=2,
            discharge_kw=6.35,
            discharge_kwh=8.775,
            rated_discharge_kw=10.0,
        )
        assert body["totals"] == {
            **home_1,
            "devices": 4,
            "offline_devices": 1,
            "unknown_state_devices": 1,
        }
        assert body["groups"] == [
            {"group_id": "zone-a", "name": "Zone zone-a", **home_1},
            {
                "group_id": "zone-b",
                "name": "Zone zone-b",
                **figures(devices=2, offline_devices=1, unknown_state_devices=1),
            },
            {"group_id": "zone-c", "name": "Zone zone-c", **figures()},
        ]

    async def test_a_battery_below_its_floor_offers_nothing(
        self, client: httpx.AsyncClient, plant: Fleet, session: AsyncSession
    ) -> None:
        await set_state(session, plant.devices["b-2"], state_of_charge_pct=25)
        body = await capacity(client, plant)
        assert body["totals"]["available_devices"] == 2
        assert body["totals"]["discharge_kwh"] == 7.425
        assert body["totals"]["rated_discharge_kw"] == 5.0

    async def test_fresh_telemetry_brings_a_silent_battery_back(
        self, client: httpx.AsyncClient, plant: Fleet
    ) -> None:
        # b-3 reports 60% (floor 25: 13,500 x 35% = 4,725 Wh, 1 h power 4,725 W).
        reading = item(
            "b-3", NOW - timedelta(minutes=5), battery_last_state_of_charge_percentage=60
        )
        await answers(client, plant.oem, [reading])
        body = await capacity(client, plant)
        assert body["totals"]["offline_devices"] == 0
        assert body["totals"]["discharge_kwh"] == 8.775 + 4.725
        zone_b = body["groups"][1]
        assert (zone_b["available_devices"], zone_b["discharge_kw"]) == (1, 4.725)

    async def test_an_offline_report_makes_a_battery_unavailable(
        self, client: httpx.AsyncClient, plant: Fleet
    ) -> None:
        offline = {
            **dict.fromkeys(item("b-1", NOW)),
            "start_time": isoformat_z(NOW - timedelta(minutes=5)),
            "duration_s": 300,
            "device_id": "b-1",
            "last_is_online": False,
        }
        await answers(client, plant.oem, [offline])
        body = await capacity(client, plant)
        assert body["totals"]["offline_devices"] == 2
        assert body["totals"]["discharge_kwh"] == 1.35


class TestLater:
    async def test_planned_discharges_before_then_are_taken_out(
        self, client: httpx.AsyncClient, plant: Fleet, session: AsyncSession
    ) -> None:
        # b-1 discharges 3,000 W from 16:30 to 17:30: 3,000 Wh gone by 18:00, 4,425 Wh left.
        await create_event_at(
            session,
            plant.program,
            [plant.devices["b-1"]],
            starts_in=timedelta(minutes=30),
            duration=timedelta(hours=1),
        )
        later = await capacity(client, plant, at=isoformat_z(NOW + timedelta(hours=2)))
        assert later["at"] == isoformat_z(NOW + timedelta(hours=2))
        assert later["totals"]["discharge_kwh"] == round(4.425 + 1.35, 3)
        assert later["totals"]["discharge_kw"] == round(4.425 + 1.35, 3)
        # Half-way through the discharge (17:00) only 1,500 Wh is gone.
        midway = await capacity(client, plant, at=isoformat_z(NOW + timedelta(hours=1)))
        assert midway["totals"]["discharge_kwh"] == round(5.925 + 1.35, 3)

    async def test_a_time_in_the_past_is_422(self, client: httpx.AsyncClient, plant: Fleet) -> None:
        response = await client.get(
            f"/v1/programs/{plant.program.id}/capacity",
            params={"at": isoformat_z(NOW - timedelta(hours=1))},
            headers=plant.utility.headers,
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == "at"


class TestIsolation:
    async def test_another_utility_gets_404_and_an_oem_403(
        self, client: httpx.AsyncClient, plant: Fleet, other_utility: Tenant
    ) -> None:
        path = f"/v1/programs/{plant.program.id}/capacity"
        assert (await client.get(path, headers=other_utility.headers)).status_code == 404
        assert (await client.get(path, headers=plant.oem.headers)).status_code == 403
