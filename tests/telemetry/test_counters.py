"""POST /v1/telemetry/BATTERY_COUNTER: lifetime counters become intervals by difference."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.devices.models import Device
from gridhive.kit.time import isoformat_z, utc_now
from gridhive.telemetry.models import TelemetryCounter, TelemetryInterval
from tests.factories import Tenant
from tests.telemetry.conftest import Fleet

T0 = utc_now().replace(second=0, microsecond=0) - timedelta(hours=2)


def reading(
    minutes: float, charge: float, discharge: float, device_id: str = "b-1", **extra: Any
) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "timestamp": isoformat_z(T0 + timedelta(minutes=minutes)),
        "battery_lifetime_energy_charge_wh": charge,
        "battery_lifetime_energy_discharge_wh": discharge,
        **extra,
    }


async def post(
    client: httpx.AsyncClient, tenant: Tenant, items: list[dict[str, Any]]
) -> list[dict[str, str]]:
    response = await client.post(
        "/v1/telemetry/BATTERY_COUNTER", json={"telemetry": items}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    result: list[dict[str, str]] = response.json()
    return result


async def intervals(session: AsyncSession) -> list[TelemetryInterval]:
    session.expunge_all()
    query = sa.select(TelemetryInterval).order_by(TelemetryInterval.start_time)
    return list((await session.scalars(query)).all())


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class TestDifferences:
    async def test_the_first_reading_only_starts_the_count(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        result = await post(client, fleet.oem, [reading(0, 1000, 5000)])
        assert result[0]["status"] == "OK"
        assert "first reading" in result[0]["message"]
        assert await intervals(session) == []
        counter = await session.get_one(TelemetryCounter, fleet.devices["b-1"].pk)
        assert counter.battery_lifetime_energy_discharge_wh == 5000

    async def test_the_next_reading_makes_an_interval_of_the_differences(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        first = reading(0, 1000, 5000, home_lifetime_energy_wh=200, solar_lifetime_energy_wh=50)
        await post(client, fleet.oem, [first])
        second = reading(
            5,
            1010,
            5250,
            home_lifetime_energy_wh=330,
            solar_lifetime_energy_wh=60,
            battery_state_of_charge_percentage=47.5,
            battery_power_discharge_w=3000,
        )
        assert (await post(client, fleet.oem, [second]))[0] == {"status": "OK", "message": "stored"}
        [row] = await intervals(session)
        assert row.start_time == at(0)
        assert row.duration_s == 300
        assert row.battery_total_energy_charge_wh == 10
        assert row.battery_total_energy_discharge_wh == 250
        assert row.home_total_energy_wh == 130
        assert row.solar_total_energy_wh == 10
        assert row.battery_last_state_of_charge_percentage == 47.5
        assert row.battery_last_power_discharge_w == 3000
        assert row.last_is_online is True
        device = await session.get_one(Device, fleet.devices["b-1"].pk)
        assert device.state_of_charge_pct == 47.5
        assert device.last_seen_at == at(5)

    async def test_a_counter_that_went_down_was_reset(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        await post(client, fleet.oem, [reading(0, 1000, 5000)])
        # The discharge counter restarted from zero and has counted 40 Wh since.
        await post(client, fleet.oem, [reading(5, 1020, 40)])
        [row] = await intervals(session)
        assert row.battery_total_energy_discharge_wh == 40
        assert row.battery_total_energy_charge_wh == 20

    async def test_readings_of_one_batch_are_chained_in_time_order(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        items = [
            reading(10, 0, 300),
            reading(0, 0, 100),
            reading(5, 0, 160),
            reading(0, 0, 100, device_id="b-2"),
            reading(5, 0, 105, device_id="b-2"),
        ]
        result = await post(client, fleet.oem, items)
        assert [r["status"] for r in result] == ["OK"] * 5
        rows = await intervals(session)
        b1 = [r for r in rows if r.device_pk == fleet.devices["b-1"].pk]
        assert [(r.start_time, r.battery_total_energy_discharge_wh) for r in b1] == [
            (at(0), 60),
            (at(5), 140),
        ]
        assert len(rows) == 3

    async def test_a_reading_older_than_the_last_fails_and_a_repeat_is_ok(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        await post(client, fleet.oem, [reading(10, 0, 100)])
        result = await post(client, fleet.oem, [reading(5, 0, 90), reading(10, 0, 100)])
        assert result[0]["status"] == "FAILED"
        assert "before the device's last reading" in result[0]["message"]
        assert result[1]["status"] == "OK"
        assert "already recorded" in result[1]["message"]
        assert await intervals(session) == []

    async def test_a_gap_over_a_day_restarts_the_count(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        await post(client, fleet.oem, [reading(-60 * 26, 0, 100)])
        result = await post(client, fleet.oem, [reading(0, 0, 9000), reading(5, 0, 9100)])
        assert "restarts" in result[0]["message"]
        [row] = await intervals(session)
        assert (row.start_time, row.battery_total_energy_discharge_wh) == (at(0), 100)

    async def test_an_offline_reading_makes_an_offline_interval(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        await post(client, fleet.oem, [reading(0, 0, 100)])
        await post(client, fleet.oem, [reading(5, 0, 100, is_online=False)])
        [row] = await intervals(session)
        assert row.last_is_online is False
        device = await session.get_one(Device, fleet.devices["b-1"].pk)
        assert device.is_online is False


class TestItems:
    async def test_bad_and_unknown_items_fail_alone(
        self, client: httpx.AsyncClient, fleet: Fleet, other_oem: Tenant
    ) -> None:
        items = [
            reading(0, 0, 100),
            {**reading(0, 0, 100), "battery_lifetime_energy_charge_wh": None},
            reading(0, -1, 100, device_id="b-2"),
            reading(0, 0, 100, device_id="nope"),
            reading(0, 0, 100, battery_state_of_charge_percentage=140),
            reading(60 * 3, 0, 100, device_id="b-3"),
        ]
        result = await post(client, fleet.oem, items)
        assert [r["status"] for r in result] == ["OK"] + ["FAILED"] * 5
        assert result[5]["message"].startswith("timestamp: ")
        assert result[5]["message"].endswith("is in the future")
        assert "battery_lifetime_energy_charge_wh" in result[1]["message"]
        assert "battery_lifetime_energy_charge_wh" in result[2]["message"]
        assert result[3]["message"] == "unknown device 'nope'"
        assert "battery_state_of_charge_percentage" in result[4]["message"]
        foreign = await post(client, other_oem, [reading(0, 0, 100)])
        assert foreign[0] == {"status": "FAILED", "message": "unknown device 'b-1'"}

    async def test_more_than_1000_readings_is_413(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        items = [reading(i / 60, 0, i) for i in range(1001)]
        response = await client.post(
            "/v1/telemetry/BATTERY_COUNTER", json={"telemetry": items}, headers=fleet.oem.headers
        )
        assert response.status_code == 413
        assert await session.get(TelemetryCounter, fleet.devices["b-1"].pk) is None

    async def test_the_counter_schema_is_in_the_openapi_document(
        self, client: httpx.AsyncClient
    ) -> None:
        spec = (await client.get("/openapi.json")).json()
        path = spec["paths"]["/v1/telemetry/BATTERY_COUNTER"]["post"]
        ref = path["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        body = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        item = body["properties"]["telemetry"]["items"]
        assert set(item["required"]) == {
            "device_id",
            "timestamp",
            "battery_lifetime_energy_charge_wh",
            "battery_lifetime_energy_discharge_wh",
        }
