"""GET /v1/events/{id}/sites and /performance: delivered against expected, net of baselines.

The worked example (every figure below is computed by hand in the comments):

Event: DISCHARGE 14:00-15:00 UTC on 15 July, 3,000 W per battery, on b-1 and b-2 (home-1)
and b-3 (home-2): requested = expected = 9 kW in each of the 12 five-minute slots.

- b-1 has 5-minute intervals in the same clock window on each of the 12 previous days: 25 Wh
  discharged per interval (300 W), except on 12 July (3 days back), when another event ran
  and it discharged 400 Wh per interval (4,800 W). 12 July is an event day, so the 10 most
  recent non-event days are 14, 13, 11, 10, 9, 8, 7, 6, 5 and 4 July: baseline 300 W
  (with 12 July it would be (9 x 300 + 4,800) / 10 = 750 W).
  During the event: 250 Wh per slot (3,000 W). Delivered per slot = 250 - 300 W x 5 min
  = 250 - 25 = 225 Wh; over 12 slots 2,700 Wh.
- b-2 has no history but the hour before the event: 50 Wh charged per interval (-600 W), its
  baseline. During the event it reports only the first 6 slots, 100 Wh discharged in each.
  Delivered per measured slot = 100 - (-600 W x 5 min) = 100 + 50 = 150 Wh; 6 x 150 = 900 Wh.
- b-3 charged 400 Wh per interval from 13:30 to 14:00, under the event's own pre-charge
  command: left out of the hour-before baseline, which leaves nothing: baseline NONE (0 W).
  During the event it reports 12 slots of 0 Wh: delivered 0.

home-1: actual energy 2,700 + 900 = 3,600 Wh over 1 h = 3,600 W; expected 2 x 3,000 W x 1 h
= 6,000 Wh and 6,000 W. home-2: actual 0 Wh, 0 W; expected 3,000 Wh, 3,000 W.
Slots 1-6 deliver 225 + 150 + 0 = 375 Wh in 5 min = 4.5 kW; slots 7-12 deliver 225 Wh = 2.7 kW.
Totals: 3.6 kWh delivered of 9 kWh expected; b-1 (2,700 / 3,000 = 90%) and b-2 (900 / 3,000
= 30%) respond, b-3 (0%) does not: 2 of 3. Coverage: 12 + 6 + 12 = 30 of 36 device-slots.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands.models import Command, CommandStatus, DeviceStatus
from gridhive.events.models import Event
from gridhive.kit.time import frozen_time
from tests.factories import Tenant, create_event_at
from tests.telemetry.conftest import Fleet, store_energy

NOW = datetime(2026, 7, 15, 16, 0, tzinfo=UTC)
START = datetime(2026, 7, 15, 14, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with frozen_time(NOW):
        yield


async def precharge(session: AsyncSession, event: Event, fleet: Fleet, device_id: str) -> None:
    """The event's pre-charge command for one battery, 13:30-14:00."""
    device = fleet.devices[device_id]
    main = await session.get_one(Command, (await _command_id(session, event, device_id)))
    session.add(
        Command(
            event_id=event.id,
            site_event_pk=main.site_event_pk,
            tenant_id=device.tenant_id,
            device_pk=device.pk,
            device_id=device.id,
            action_index=0,
            starts_at=START - timedelta(minutes=30),
            ends_at=START,
            duration_s=1800,
            is_preparatory_action=True,
            mode="CHARGE",
            power_mode="SETPOINT",
            setpoint_w=5000,
            enable_grid_import=True,
            status=CommandStatus.OK,
            device_status=DeviceStatus.OK,
        )
    )
    await session.commit()


async def _command_id(session: AsyncSession, event: Event, device_id: str) -> Any:
    import sqlalchemy as sa

    return await session.scalar(
        sa.select(Command.id).where(Command.event_id == event.id, Command.device_id == device_id)
    )


@pytest.fixture
async def worked_event(session: AsyncSession, fleet: Fleet) -> Event:
    b1, b2, b3 = (fleet.devices[d] for d in ("b-1", "b-2", "b-3"))
    hour = timedelta(hours=1)
    event = await create_event_at(
        session, fleet.program, [b1, b2, b3], starts_in=START - NOW, duration=hour
    )
    await precharge(session, event, fleet, "b-3")
    # 12 July: another event for b-1 only.
    await create_event_at(
        session, fleet.program, [b1], starts_in=START - 3 * DAY - NOW, duration=hour
    )
    for days_back in range(1, 13):
        per_interval = 400.0 if days_back == 3 else 25.0
        await store_energy(session, b1, START - days_back * DAY, 12, discharge_wh=per_interval)
    await store_energy(session, b1, START, 12, discharge_wh=250)
    await store_energy(session, b2, START - hour, 12, charge_wh=50)
    await store_energy(session, b2, START, 6, discharge_wh=100)
    await store_energy(session, b3, START - hour / 2, 6, charge_wh=400)
    await store_energy(session, b3, START, 12)
    return event


class TestWorkedExample:
    async def test_sites_show_expected_and_actual_net_of_baseline(
        self, client: httpx.AsyncClient, fleet: Fleet, worked_event: Event
    ) -> None:
        response = await client.get(
            f"/v1/events/{worked_event.id}/sites", headers=fleet.utility.headers
        )
        assert response.status_code == 200, response.text
        assert response.json() == [
            {
                "site_id": "home-1",
                "is_participating": True,
                "performance_actual_energy_wh": 3600.0,
                "performance_actual_power_w": 3600.0,
                "performance_expected_energy_wh": 6000.0,
                "performance_expected_power_w": 6000.0,
            },
            {
                "site_id": "home-2",
                "is_participating": True,
                "performance_actual_energy_wh": 0.0,
                "performance_actual_power_w": 0.0,
                "performance_expected_energy_wh": 3000.0,
                "performance_expected_power_w": 3000.0,
            },
        ]

    async def test_performance_per_five_minutes_and_totals(
        self, client: httpx.AsyncClient, fleet: Fleet, worked_event: Event
    ) -> None:
        response = await client.get(
            f"/v1/events/{worked_event.id}/performance", headers=fleet.utility.headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["interval_s"] == 300
        slots = body["intervals"]
        assert len(slots) == 12
        assert slots[0]["starts_at"] == "2026-07-15T14:00:00Z"
        assert slots[11]["ends_at"] == "2026-07-15T15:00:00Z"
        assert {(s["requested_kw"], s["expected_kw"]) for s in slots} == {(9.0, 9.0)}
        assert [s["delivered_kw"] for s in slots] == [4.5] * 6 + [2.7] * 6
        assert body["totals"] == {
            "expected_kwh": 9.0,
            "delivered_kwh": 3.6,
            "devices": 3,
            "devices_responding": 2,
            "share_of_devices_responding": round(2 / 3, 4),
            "data_coverage": round(30 / 36, 4),
        }
        assert body["baseline"] == {
            "method": "MIXED",
            "devices_by_method": {
                "HOUR_BEFORE": 1,
                "NONE": 1,
                "PREVIOUS_10_NON_EVENT_DAYS": 1,
            },
        }


class TestMeasurementWindow:
    async def test_an_event_not_yet_started_has_no_actual_figures(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        event = await create_event_at(
            session,
            fleet.program,
            list(fleet.devices.values()),
            starts_in=timedelta(hours=2),
            duration=timedelta(hours=1),
        )
        sites = (
            await client.get(f"/v1/events/{event.id}/sites", headers=fleet.utility.headers)
        ).json()
        assert {s["performance_actual_energy_wh"] for s in sites} == {None}
        assert sites[0]["performance_expected_energy_wh"] == 6000
        body = (
            await client.get(f"/v1/events/{event.id}/performance", headers=fleet.utility.headers)
        ).json()
        assert {s["delivered_kw"] for s in body["intervals"]} == {None}
        assert body["totals"]["delivered_kwh"] is None
        assert body["baseline"]["method"] == "NONE"

    async def test_a_running_event_is_measured_up_to_now(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        b1 = fleet.devices["b-1"]
        event = await create_event_at(
            session,
            fleet.program,
            [b1],
            starts_in=-timedelta(minutes=10),
            duration=timedelta(hours=1),
        )
        # 2 slots of 250 Wh, no baseline: 500 Wh in the 10 minutes so far, i.e. 3,000 W.
        await store_energy(session, b1, NOW - timedelta(minutes=10), 2, discharge_wh=250)
        sites = (
            await client.get(f"/v1/events/{event.id}/sites", headers=fleet.utility.headers)
        ).json()
        assert sites[0]["performance_actual_energy_wh"] == 500
        assert sites[0]["performance_actual_power_w"] == 3000
        body = (
            await client.get(f"/v1/events/{event.id}/performance", headers=fleet.utility.headers)
        ).json()
        assert [s["delivered_kw"] for s in body["intervals"][:3]] == [3.0, 3.0, None]
        assert body["totals"]["data_coverage"] == 1.0


class TestIsolation:
    @pytest.mark.parametrize("suffix", ["sites", "performance"])
    async def test_another_utility_gets_404(
        self,
        client: httpx.AsyncClient,
        fleet: Fleet,
        worked_event: Event,
        other_utility: Tenant,
        suffix: str,
    ) -> None:
        response = await client.get(
            f"/v1/events/{worked_event.id}/{suffix}", headers=other_utility.headers
        )
        assert response.status_code == 404
