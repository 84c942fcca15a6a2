"""POST /v1/telemetry/latest and /historical: the utility's view of its program's devices."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.enrollments.models import Enrollment, EnrollmentStatus
from gridhive.kit.time import frozen_time, isoformat_z
from tests.factories import Tenant
from tests.telemetry.conftest import Fleet, answers, item

NOW = datetime(2026, 7, 15, 16, 0, tzinfo=UTC)
START = NOW - timedelta(minutes=15)


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with frozen_time(NOW):
        yield


def slot(n: int) -> datetime:
    return START + timedelta(minutes=5 * n)


async def latest(
    client: httpx.AsyncClient, tenant: Tenant, fleet: Fleet, **body: Any
) -> httpx.Response:
    payload = {"program_id": str(fleet.program.id), **body}
    return await client.post("/v1/telemetry/latest", json=payload, headers=tenant.headers)


async def historical(
    client: httpx.AsyncClient, tenant: Tenant, fleet: Fleet, **body: Any
) -> httpx.Response:
    payload = {
        "program_id": str(fleet.program.id),
        "start_time": isoformat_z(slot(0)),
        "end_time": isoformat_z(slot(6)),
        **body,
    }
    return await client.post("/v1/telemetry/historical", json=payload, headers=tenant.headers)


@pytest.fixture
async def reported(client: httpx.AsyncClient, fleet: Fleet) -> Fleet:
    """Three 5-minute intervals of each battery; b-1's SOC falls 60, 55, 50."""
    items = [
        item(d, slot(n), battery_last_state_of_charge_percentage=60 - 5 * n)
        for n in range(3)
        for d in ("b-1", "b-2", "b-3")
    ]
    await answers(client, fleet.oem, items)
    return fleet


async def set_status(session: AsyncSession, fleet: Fleet, site_id: str, status: str) -> None:
    site_pk = fleet.sites[site_id].pk
    await session.execute(
        sa.update(Enrollment).where(Enrollment.site_pk == site_pk).values(status=status)
    )
    await session.commit()


class TestLatest:
    async def test_the_newest_point_of_each_device_in_utility_names(
        self, client: httpx.AsyncClient, reported: Fleet
    ) -> None:
        response = await latest(client, reported.utility, reported)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["next_cursor"] is None
        assert [p["device_id"] for p in body["telemetry"]] == ["b-1", "b-2", "b-3"]
        point = body["telemetry"][0]
        assert point == {
            "device_id": "b-1",
            "start_time": isoformat_z(slot(2)),
            "duration_s": 300,
            "last_is_online": True,
            "last_mode": "SELF_CONSUMPTION",
            "battery_power_charge_w": 0,
            "battery_power_discharge_w": 1200,
            "battery_state_of_charge_percentage": 50,
            "battery_last_backup_reserve_percentage": 20,
            "battery_total_energy_charge_wh": 0,
            "battery_total_energy_discharge_wh": 100,
            # Grid = home - solar - discharge + charge; positive imports.
            "grid_power_w": 1800 - 240 - 1200 + 0,
            "grid_total_energy_wh": 150 - 20 - 100 + 0,
            "home_power_w": 1800,
            "home_total_energy_wh": 150,
            "solar_power_w": 240,
            "solar_total_energy_wh": 20,
        }

    async def test_grid_is_null_without_a_home_reading_and_solar_counts_zero_when_absent(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        no_home = {"home_last_power_w": None, "home_total_energy_wh": None}
        no_solar = {"solar_last_power_w": None, "solar_total_energy_wh": None}
        await answers(client, fleet.oem, [item("b-1", slot(0), **no_home)])
        await answers(client, fleet.oem, [item("b-2", slot(0), **no_solar)])
        points = (await latest(client, fleet.utility, fleet)).json()["telemetry"]
        assert (points[0]["grid_power_w"], points[0]["grid_total_energy_wh"]) == (None, None)
        assert (points[1]["grid_power_w"], points[1]["grid_total_energy_wh"]) == (600, 50)

    async def test_device_ids_narrow_the_answer(
        self, client: httpx.AsyncClient, reported: Fleet
    ) -> None:
        body = (await latest(client, reported.utility, reported, device_ids=["b-3", "zz"])).json()
        assert [p["device_id"] for p in body["telemetry"]] == ["b-3"]

    async def test_pages_follow_the_cursor(
        self, client: httpx.AsyncClient, reported: Fleet
    ) -> None:
        first = (await latest(client, reported.utility, reported, limit=2)).json()
        assert [p["device_id"] for p in first["telemetry"]] == ["b-1", "b-2"]
        assert first["next_cursor"]
        second = (
            await latest(client, reported.utility, reported, limit=2, cursor=first["next_cursor"])
        ).json()
        assert [p["device_id"] for p in second["telemetry"]] == ["b-3"]
        assert second["next_cursor"] is None

    async def test_a_device_silent_for_15_minutes_reads_offline(
        self, client: httpx.AsyncClient, reported: Fleet
    ) -> None:
        # The last interval ends at slot(3); 15 minutes later the device counts as offline.
        with frozen_time(slot(3) + timedelta(minutes=14)):
            fresh = (await latest(client, reported.utility, reported)).json()["telemetry"]
        with frozen_time(slot(3) + timedelta(minutes=15)):
            stale = (await latest(client, reported.utility, reported)).json()["telemetry"]
        assert {p["last_is_online"] for p in fresh} == {True}
        assert {p["last_is_online"] for p in stale} == {False}
        assert stale[0]["battery_state_of_charge_percentage"] == 50

    async def test_paused_enrollments_are_read_and_pending_ones_are_not(
        self, client: httpx.AsyncClient, reported: Fleet, session: AsyncSession
    ) -> None:
        await set_status(session, reported, "home-1", EnrollmentStatus.PAUSED)
        await set_status(session, reported, "home-2", EnrollmentStatus.PENDING)
        body = (await latest(client, reported.utility, reported)).json()
        assert [p["device_id"] for p in body["telemetry"]] == ["b-1", "b-2"]

    async def test_enrollment_ids_of_older_flip_pages_filter(
        self, client: httpx.AsyncClient, reported: Fleet, session: AsyncSession
    ) -> None:
        enrollment_id = await session.scalar(
            sa.select(Enrollment.id).where(Enrollment.site_pk == reported.sites["home-2"].pk)
        )
        body = (
            await latest(client, reported.utility, reported, enrollment_ids=[str(enrollment_id)])
        ).json()
        assert [p["device_id"] for p in body["telemetry"]] == ["b-3"]


class TestHistorical:
    async def test_one_point_per_interval_in_the_window(
        self, client: httpx.AsyncClient, reported: Fleet
    ) -> None:
        body = (
            await historical(client, reported.utility, reported, start_time=isoformat_z(slot(1)))
        ).json()
        points = [(p["device_id"], p["start_time"]) for p in body["telemetry"]]
        assert points == [(d, isoformat_z(slot(n))) for d in ("b-1", "b-2", "b-3") for n in (1, 2)]
        assert body["telemetry"][0]["battery_state_of_charge_percentage"] == 55

    async def test_pages_cross_devices_without_losing_a_point(
        self, client: httpx.AsyncClient, reported: Fleet
    ) -> None:
        seen: list[tuple[str, str]] = []
        cursor = None
        for _ in range(5):
            extra = {"cursor": cursor} if cursor else {}
            body = (await historical(client, reported.utility, reported, limit=4, **extra)).json()
            seen += [(p["device_id"], p["start_time"]) for p in body["telemetry"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == [(d, isoformat_z(slot(n))) for d in ("b-1", "b-2", "b-3") for n in range(3)]

    @pytest.mark.parametrize(
        ("start", "end", "named"),
        [
            (slot(0), slot(0), "end_time must be after"),
            (slot(0) - timedelta(days=32), slot(0), "31 days"),
        ],
    )
    async def test_bad_windows_are_422(
        self,
        client: httpx.AsyncClient,
        fleet: Fleet,
        start: datetime,
        end: datetime,
        named: str,
    ) -> None:
        response = await historical(
            client,
            fleet.utility,
            fleet,
            start_time=isoformat_z(start),
            end_time=isoformat_z(end),
        )
        assert response.status_code == 422
        assert named in response.json()["message"]

    async def test_a_cursor_of_the_other_endpoint_is_422(
        self, client: httpx.AsyncClient, reported: Fleet
    ) -> None:
        cursor = (await latest(client, reported.utility, reported, limit=1)).json()["next_cursor"]
        response = await historical(client, reported.utility, reported, cursor=cursor)
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == "cursor"
        garbage = await latest(client, reported.utility, reported, cursor="%%%")
        assert garbage.status_code == 422


class TestIsolation:
    @pytest.mark.parametrize("read", [latest, historical])
    async def test_another_utilitys_program_is_404(
        self, client: httpx.AsyncClient, reported: Fleet, other_utility: Tenant, read: Any
    ) -> None:
        response = await read(client, other_utility, reported)
        assert response.status_code == 404

    async def test_an_oem_key_is_403(self, client: httpx.AsyncClient, reported: Fleet) -> None:
        assert (await latest(client, reported.oem, reported)).status_code == 403

    async def test_a_malformed_program_id_is_404(
        self, client: httpx.AsyncClient, reported: Fleet
    ) -> None:
        response = await client.post(
            "/v1/telemetry/latest",
            json={"program_id": "not-a-uuid"},
            headers=reported.utility.headers,
        )
        assert response.status_code == 404


class TestOddInput:
    @pytest.mark.parametrize(
        "cursor",
        [
            "e30",  # {}
            "WzEsMiwzXQ",  # [1,2,3]
            "WyJsYXRlc3QiLCJiLTEiLCJub3QtYS11dWlkIl0",  # ["latest","b-1","not-a-uuid"]
        ],
    )
    async def test_a_forged_cursor_is_422(
        self, client: httpx.AsyncClient, reported: Fleet, cursor: str
    ) -> None:
        response = await latest(client, reported.utility, reported, cursor=cursor)
        assert response.status_code == 422

    async def test_a_time_without_a_utc_form_is_422(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        response = await historical(
            client, fleet.utility, fleet, start_time="0001-01-01T00:00:00+01:00"
        )
        assert response.status_code == 422
        capacity = await client.get(
            f"/v1/programs/{fleet.program.id}/capacity",
            params={"at": "0001-01-01T00:00:00+01:00"},
            headers=fleet.utility.headers,
        )
        assert capacity.status_code == 422
