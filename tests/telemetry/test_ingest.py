"""POST /v1/telemetry/BATTERY: every item answered in order; bad items fail alone."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.devices.models import Device
from gridhive.kit.time import isoformat_z, utc_now
from gridhive.telemetry import repository
from gridhive.telemetry.models import TelemetryInterval
from gridhive.telemetry.schemas import TelemetryItemIn
from tests.factories import Tenant, create_device, create_site
from tests.telemetry.conftest import Fleet, answers, item, offline_item, post_battery


def recent(minutes: int = 10) -> datetime:
    now = utc_now().replace(second=0, microsecond=0)
    return now - timedelta(minutes=minutes + now.minute % 5)


async def stored(session: AsyncSession) -> list[TelemetryInterval]:
    session.expunge_all()
    query = sa.select(TelemetryInterval).order_by(TelemetryInterval.start_time)
    return list((await session.scalars(query)).all())


async def device(session: AsyncSession, fleet: Fleet, device_id: str) -> Device:
    session.expunge_all()
    return await session.get_one(Device, fleet.devices[device_id].pk)


class TestStoring:
    async def test_a_full_batch_is_stored_and_answered_in_order(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        start = recent()
        items = [item(d, start) for d in ("b-1", "b-2", "b-3")]
        assert (
            await answers(client, fleet.oem, items) == [{"status": "OK", "message": "stored"}] * 3
        )
        rows = await stored(session)
        assert len(rows) == 3
        row = next(r for r in rows if r.device_pk == fleet.devices["b-1"].pk)
        assert row.start_time == start
        assert row.duration_s == 300
        assert row.last_mode == "SELF_CONSUMPTION"
        assert row.battery_total_energy_discharge_wh == 100
        assert row.battery_last_state_of_health_percentage == 98
        assert row.oem_raw_data == {"firmware": "1.2.3"}

    async def test_the_2024_body_lends_its_start_and_duration_to_items(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        start, own = recent(20), recent(10)
        bare = {
            k: v for k, v in item("b-1", start).items() if k not in ("start_time", "duration_s")
        }
        items = [bare, item("b-2", own, duration_s=60)]
        body = {"start_time": isoformat_z(start), "duration_s": 900}
        response = await post_battery(client, fleet.oem, items, **body)
        assert [a["status"] for a in response.json()] == ["OK", "OK"]
        by_device = {r.device_pk: r for r in await stored(session)}
        assert by_device[fleet.devices["b-1"].pk].start_time == start
        assert by_device[fleet.devices["b-1"].pk].duration_s == 900
        # An item's own values win over the deprecated top-level ones.
        assert by_device[fleet.devices["b-2"].pk].start_time == own
        assert by_device[fleet.devices["b-2"].pk].duration_s == 60

    async def test_the_oldest_path_still_takes_telemetry(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        response = await client.post(
            "/v1/telemetry", json={"telemetry": [item("b-1", recent())]}, headers=fleet.oem.headers
        )
        assert response.json() == [{"status": "OK", "message": "stored"}]

    async def test_deprecated_and_unknown_fields_are_accepted_and_ignored(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        weird = item(
            "b-1",
            recent(),
            battery_last_backup_reserve_percentage="not even a number",
            some_future_field=[1, 2],
        )
        assert (await answers(client, fleet.oem, [weird]))[0]["status"] == "OK"

    async def test_latest_state_follows_the_newest_item_of_each_device(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        before = (await device(session, fleet, "b-1")).updated_at
        newer, older = recent(10), recent(20)
        items = [
            item("b-1", newer, battery_last_state_of_charge_percentage=64),
            item("b-1", older, battery_last_state_of_charge_percentage=12),
        ]
        await answers(client, fleet.oem, items)
        battery = await device(session, fleet, "b-1")
        assert battery.state_of_charge_pct == 64
        assert battery.is_online is True
        assert battery.last_seen_at == newer + timedelta(seconds=300)
        # Telemetry is not an edit of the device.
        assert battery.updated_at == before

    async def test_a_late_batch_does_not_move_the_state_back(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        await answers(client, fleet.oem, [item("b-1", recent(10))])
        late = item("b-1", recent(30), battery_last_state_of_charge_percentage=5)
        await answers(client, fleet.oem, [late])
        assert (await device(session, fleet, "b-1")).state_of_charge_pct == 50
        assert len(await stored(session)) == 2

    async def test_an_offline_report_keeps_the_last_known_charge(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        await answers(client, fleet.oem, [item("b-1", recent(20))])
        assert (await answers(client, fleet.oem, [offline_item("b-1", recent(10))]))[0] == {
            "status": "OK",
            "message": "stored",
        }
        battery = await device(session, fleet, "b-1")
        assert battery.is_online is False
        assert battery.state_of_charge_pct == 50


class TestReplace:
    async def test_a_repeated_device_and_start_replaces(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        start = recent()
        await answers(client, fleet.oem, [item("b-1", start)])
        again = item("b-1", start, battery_total_energy_discharge_wh=321, oem_raw_data=None)
        assert (await answers(client, fleet.oem, [again]))[0]["status"] == "OK"
        [row] = await stored(session)
        assert row.battery_total_energy_discharge_wh == 321
        assert row.oem_raw_data is None

    async def test_within_one_batch_the_later_item_wins(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        start = recent()
        items = [
            item("b-1", start, battery_total_energy_discharge_wh=1),
            item("b-2", start),
            item("b-1", start, battery_total_energy_discharge_wh=2),
        ]
        result = await answers(client, fleet.oem, items)
        assert result[0] == {
            "status": "OK",
            "message": "replaced by item 2 (same device_id and start_time)",
        }
        rows = await stored(session)
        assert len(rows) == 2
        [b1] = [r for r in rows if r.device_pk == fleet.devices["b-1"].pk]
        assert b1.battery_total_energy_discharge_wh == 2


def _without(key: str) -> dict[str, Any]:
    fields = item("b-2", recent())
    del fields[key]
    return fields


class TestItemRules:
    """Each bad item is FAILED with the field named, and the good item beside it is stored."""

    @pytest.mark.parametrize(
        ("bad", "named"),
        [
            (_without("start_time"), "start_time"),
            (_without("duration_s"), "duration_s"),
            (_without("device_id"), "device_id"),
            (item("b-2", "yesterday"), "start_time"),
            (item("b-2", recent(), duration_s=0), "duration_s"),
            (item("b-2", recent(), battery_last_power_charge_w=-1), "battery_last_power_charge_w"),
            (item("b-2", recent(), home_total_energy_wh=-0.5), "home_total_energy_wh"),
            (
                item("b-2", recent(), battery_last_state_of_charge_percentage=101),
                "battery_last_state_of_charge_percentage",
            ),
            (
                item("b-2", recent(), battery_last_state_of_health_percentage=-3),
                "battery_last_state_of_health_percentage",
            ),
            (item("b-2", recent(), oem_raw_data=[1]), "oem_raw_data"),
            (item("b-2", recent(), last_is_online="perhaps"), "last_is_online"),
            ("not an object", "valid dictionary"),
            (item("b-2", "0001-01-01T00:00:00+01:00"), "start_time"),
            (item("b-\x00", recent()), "device_id"),
            (
                item("b-2", recent(), last_is_online=False),
                "last_is_online is false, so these must be null: last_mode, ",
            ),
            (
                item("b-2", recent(), battery_last_state_of_charge_percentage=None),
                "required: battery_last_state_of_charge_percentage",
            ),
            (
                item("b-2", recent(), battery_total_energy_charge_wh=None, last_is_online=None),
                "required: battery_total_energy_charge_wh",
            ),
        ],
    )
    async def test_a_bad_item_fails_alone_naming_the_field(
        self,
        client: httpx.AsyncClient,
        fleet: Fleet,
        session: AsyncSession,
        bad: Any,
        named: str,
    ) -> None:
        good = item("b-1", recent())
        result = await answers(client, fleet.oem, [good, bad, good | {"device_id": "b-3"}])
        assert [r["status"] for r in result] == ["OK", "FAILED", "OK"]
        assert named in result[1]["message"]
        assert len(await stored(session)) == 2

    async def test_offline_with_every_measurement_null_is_accepted(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        result = await answers(client, fleet.oem, [offline_item("b-1", recent())])
        assert result[0]["status"] == "OK"

    async def test_online_without_home_solar_mode_or_health_is_accepted(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        optional = {
            "last_mode": None,
            "battery_last_state_of_health_percentage": None,
            "last_is_grid_online": None,
            "home_total_energy_wh": None,
            "home_last_power_w": None,
            "solar_total_energy_wh": None,
            "solar_last_power_w": None,
        }
        result = await answers(client, fleet.oem, [item("b-1", recent(), **optional)])
        assert result[0]["status"] == "OK"

    async def test_a_start_in_the_future_fails(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        ahead = item("b-1", utc_now() + timedelta(minutes=30))
        result = await answers(client, fleet.oem, [ahead])
        assert result[0]["status"] == "FAILED"
        assert "in the future" in result[0]["message"]


class TestDevices:
    async def test_an_unknown_device_fails(self, client: httpx.AsyncClient, fleet: Fleet) -> None:
        result = await answers(client, fleet.oem, [item("b-404", recent()), item("b-1", recent())])
        assert result[0] == {"status": "FAILED", "message": "unknown device 'b-404'"}
        assert result[1]["status"] == "OK"

    async def test_another_oems_device_is_unknown_and_untouched(
        self,
        client: httpx.AsyncClient,
        fleet: Fleet,
        session: AsyncSession,
        other_oem: Tenant,
    ) -> None:
        result = await answers(client, other_oem, [item("b-1", recent())])
        assert result[0] == {"status": "FAILED", "message": "unknown device 'b-1'"}
        assert await stored(session) == []
        assert (await device(session, fleet, "b-1")).last_seen_at is None

    async def test_a_deleted_device_fails(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        response = await client.delete("/v1/site/home-2/device/b-3", headers=fleet.oem.headers)
        assert response.status_code in (200, 204)
        result = await answers(client, fleet.oem, [item("b-3", recent())])
        assert result[0] == {"status": "FAILED", "message": "device 'b-3' was deleted"}
        assert await stored(session) == []

    async def test_an_ev_charger_is_not_a_battery(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        site = await create_site(session, fleet.oem, "home-3")
        await create_device(
            session, site, "ev-1", type="EV_CHARGER", attributes={"charger_power_w": 7000}
        )
        result = await answers(client, fleet.oem, [item("ev-1", recent())])
        assert result[0]["status"] == "FAILED"
        assert "not a battery" in result[0]["message"]

    async def test_only_oem_keys_may_send(
        self, client: httpx.AsyncClient, fleet: Fleet, utility: Tenant
    ) -> None:
        response = await post_battery(client, utility, [item("b-1", recent())])
        assert response.status_code == 403


class TestBatchLimits:
    async def test_more_than_1000_items_is_413_and_nothing_is_written(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        start = recent(60 * 24)
        items = [item("b-1", start + timedelta(seconds=i)) for i in range(1001)]
        response = await post_battery(client, fleet.oem, items)
        assert response.status_code == 413
        body = response.json()
        assert set(body) == {"code", "message", "status_code", "errors", "detail"}
        assert body["errors"][0]["path"] == "telemetry"
        assert await stored(session) == []
        assert (await device(session, fleet, "b-1")).last_seen_at is None

    async def test_exactly_1000_items_are_taken(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        start = recent(60 * 24)
        items = [item("b-1", start + timedelta(seconds=i)) for i in range(1000)]
        result = await answers(client, fleet.oem, items)
        assert {r["status"] for r in result} == {"OK"}
        count = await session.scalar(sa.select(sa.func.count()).select_from(TelemetryInterval))
        assert count == 1000

    @pytest.mark.parametrize(
        "body",
        [{}, {"telemetry": "items"}, {"telemetry": {"device_id": "b-1"}}, [{"telemetry": []}]],
    )
    async def test_a_malformed_body_is_422(
        self, client: httpx.AsyncClient, fleet: Fleet, body: Any
    ) -> None:
        response = await client.post("/v1/telemetry/BATTERY", json=body, headers=fleet.oem.headers)
        assert response.status_code == 422
        assert response.json()["code"] == "VALIDATION_ERROR"

    async def test_an_empty_batch_is_an_empty_answer(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        assert (await post_battery(client, fleet.oem, [])).json() == []

    async def test_a_retry_with_the_idempotency_key_answers_the_same(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        body = {"telemetry": [item("b-1", recent()), item("b-404", recent())]}
        headers = {**fleet.oem.headers, "Idempotency-Key": "batch-1"}
        first = await client.post("/v1/telemetry/BATTERY", json=body, headers=headers)
        again = await client.post("/v1/telemetry/BATTERY", json=body, headers=headers)
        assert again.json() == first.json()
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert len(await stored(session)) == 1


def test_an_items_fields_are_the_stored_columns() -> None:
    """Ingest stores a copy of the validated item's fields as the row: a field added to one and
    not the other would be lost or break the insert."""
    columns = set(repository.INTERVAL_COLUMNS) - {"device_pk"}
    assert set(TelemetryItemIn.model_fields) - {"device_id"} == columns
