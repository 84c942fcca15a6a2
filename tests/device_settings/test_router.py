"""The homeowner asks for new settings; the OEM reads them and reports the outcome."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.devices.models import Device
from gridhive.enrollments.models import Enrollment
from gridhive.kit.time import frozen_time, utc_now
from gridhive.sites.models import Site
from tests.device_settings.conftest import SETTINGS_PATH, error_paths, request_settings
from tests.factories import Tenant, battery_fields, create_device, create_site, site_token

ERROR_KEYS = {"code", "message", "status_code", "errors", "detail"}
REQUEST_KEYS = {
    "id",
    "site_id",
    "device_id",
    "backup_reserve_percentage",
    "mode",
    "status",
    "message",
    "reported_at",
    "created_at",
    "updated_at",
}


async def settings_of_device(client: httpx.AsyncClient, headers: dict[str, str]) -> list[object]:
    response = await client.get(SETTINGS_PATH, headers=headers)
    assert response.status_code == 200
    listed: list[object] = response.json()
    return listed


@pytest.mark.usefixtures("battery")
class TestRequest:
    async def test_the_homeowner_asks_with_a_site_token(
        self, client: httpx.AsyncClient, homeowner: dict[str, str]
    ) -> None:
        response = await request_settings(
            client, homeowner, backup_reserve_percentage=40, mode="BACKUP"
        )

        assert response.status_code == 200
        created = response.json()
        assert set(created) == REQUEST_KEYS
        assert created["site_id"] == "home-42"
        assert created["device_id"] == "pw-1"
        assert created["backup_reserve_percentage"] == 40
        assert created["mode"] == "BACKUP"
        assert (created["status"], created["message"], created["reported_at"]) == (
            "PENDING",
            None,
            None,
        )
        assert created["created_at"].endswith("Z")
        assert await settings_of_device(client, homeowner) == [created]

    async def test_the_oem_asks_with_its_client_token(
        self, client: httpx.AsyncClient, oem: Tenant
    ) -> None:
        response = await request_settings(client, oem.headers, backup_reserve_percentage=55)

        assert response.status_code == 200
        assert response.json()["backup_reserve_percentage"] == 55
        assert response.json()["mode"] is None

    async def test_a_mode_alone_leaves_the_reserve_unchanged(
        self, client: httpx.AsyncClient, homeowner: dict[str, str]
    ) -> None:
        response = await request_settings(client, homeowner, mode="SELF_CONSUMPTION")

        assert response.status_code == 200
        assert response.json()["backup_reserve_percentage"] is None

    async def test_the_list_is_newest_first_and_paged(
        self, client: httpx.AsyncClient, homeowner: dict[str, str]
    ) -> None:
        start = utc_now()
        for minutes, reserve in enumerate((40, 50, 60)):
            with frozen_time(start + timedelta(minutes=minutes)):
                await request_settings(client, homeowner, backup_reserve_percentage=reserve)

        listed = await client.get(SETTINGS_PATH, headers=homeowner)
        second = await client.get(SETTINGS_PATH, params={"skip": 1, "limit": 1}, headers=homeowner)

        assert [r["backup_reserve_percentage"] for r in listed.json()] == [60, 50, 40]
        assert [r["backup_reserve_percentage"] for r in second.json()] == [50]

    async def test_a_retry_with_the_same_idempotency_key_makes_one_request(
        self, client: httpx.AsyncClient, homeowner: dict[str, str]
    ) -> None:
        headers = {**homeowner, "Idempotency-Key": "reserve-40"}
        first = await request_settings(client, headers, backup_reserve_percentage=40)
        again = await request_settings(client, headers, backup_reserve_percentage=40)

        assert again.json() == first.json()
        assert len(await settings_of_device(client, homeowner)) == 1


@pytest.mark.usefixtures("battery")
class TestAccess:
    async def test_a_site_token_for_another_home_is_refused(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        other_home = await create_site(session, oem, "home-43")
        await create_device(session, other_home, "pw-2")
        neighbour = await site_token(session, oem, other_home)

        posted = await request_settings(client, neighbour, backup_reserve_percentage=40)
        listed = await client.get(SETTINGS_PATH, headers=neighbour)

        assert (posted.status_code, listed.status_code) == (403, 403)
        assert set(posted.json()) == ERROR_KEYS

    async def test_another_oem_finds_neither_the_device_nor_its_requests(
        self,
        client: httpx.AsyncClient,
        homeowner: dict[str, str],
        other_oem: Tenant,
    ) -> None:
        created = (await request_settings(client, homeowner, backup_reserve_percentage=40)).json()
        path = f"/v1/settings/{created['id']}"

        posted = await request_settings(client, other_oem.headers, backup_reserve_percentage=40)
        listed = await client.get(SETTINGS_PATH, headers=other_oem.headers)
        read = await client.get(path, headers=other_oem.headers)
        patched = await client.patch(path, json={"status": "APPLIED"}, headers=other_oem.headers)
        polled = await client.get("/v1/settings", headers=other_oem.headers)

        statuses = [r.status_code for r in (posted, listed, read, patched)]
        assert statuses == [404, 404, 404, 404]
        assert polled.json() == []
        assert (await settings_of_device(client, homeowner))[0] == created

    async def test_a_utility_key_is_refused_on_both_sides(
        self, client: httpx.AsyncClient, homeowner: dict[str, str], utility: Tenant
    ) -> None:
        created = (await request_settings(client, homeowner, backup_reserve_percentage=40)).json()

        posted = await request_settings(client, utility.headers, backup_reserve_percentage=40)
        patched = await client.patch(
            f"/v1/settings/{created['id']}", json={"status": "APPLIED"}, headers=utility.headers
        )

        assert (posted.status_code, patched.status_code) == (403, 403)
        assert posted.json()["code"] == "FORBIDDEN"

    async def test_the_outcome_needs_the_client_token_not_a_site_token(
        self, client: httpx.AsyncClient, homeowner: dict[str, str]
    ) -> None:
        created = (await request_settings(client, homeowner, backup_reserve_percentage=40)).json()

        patched = await client.patch(
            f"/v1/settings/{created['id']}", json={"status": "APPLIED"}, headers=homeowner
        )

        assert patched.status_code == 403

    async def test_an_unknown_device_is_404(
        self, client: httpx.AsyncClient, homeowner: dict[str, str]
    ) -> None:
        response = await client.post(
            "/v1/site/home-42/device/nope/settings",
            json={"backup_reserve_percentage": 40},
            headers=homeowner,
        )

        assert response.status_code == 404
        assert set(response.json()) == ERROR_KEYS


@pytest.mark.usefixtures("battery")
class TestValidation:
    @pytest.mark.parametrize(
        ("body", "named"),
        [
            ({"backup_reserve_percentage": 101}, "backup_reserve_percentage"),
            ({"backup_reserve_percentage": -1}, "backup_reserve_percentage"),
            ({"backup_reserve_percentage": "lots"}, "backup_reserve_percentage"),
            ({"mode": "TURBO"}, "mode"),
        ],
    )
    async def test_bad_values_are_422_naming_the_field(
        self,
        client: httpx.AsyncClient,
        homeowner: dict[str, str],
        body: dict[str, object],
        named: str,
    ) -> None:
        response = await client.post(SETTINGS_PATH, json=body, headers=homeowner)

        assert response.status_code == 422
        assert set(response.json()) == ERROR_KEYS
        assert error_paths(response) == [named]
        assert await settings_of_device(client, homeowner) == []

    async def test_a_request_without_any_setting_is_422(
        self, client: httpx.AsyncClient, homeowner: dict[str, str]
    ) -> None:
        response = await request_settings(client, homeowner, backup_reserve_percentage=None)

        assert response.status_code == 422
        assert error_paths(response) == ["backup_reserve_percentage", "mode"]

    async def test_a_body_that_is_not_json_is_422_in_flips_shape(
        self, client: httpx.AsyncClient, homeowner: dict[str, str]
    ) -> None:
        response = await client.post(
            SETTINGS_PATH,
            content=b"reserve=40",
            headers={**homeowner, "Content-Type": "application/json"},
        )

        assert response.status_code == 422
        assert set(response.json()) == ERROR_KEYS

    @pytest.mark.usefixtures("enrollment")
    async def test_a_reserve_below_the_programs_minimum_is_422_naming_it(
        self, client: httpx.AsyncClient, homeowner: dict[str, str]
    ) -> None:
        below = await request_settings(client, homeowner, backup_reserve_percentage=29)
        at_minimum = await request_settings(client, homeowner, backup_reserve_percentage=30)

        assert below.status_code == 422
        assert error_paths(below) == ["backup_reserve_percentage"]
        assert "30%" in below.json()["message"]
        assert "Summer Peak Rewards" in below.json()["message"]
        assert at_minimum.status_code == 200

    async def test_an_ended_enrollment_no_longer_holds_the_reserve_up(
        self,
        client: httpx.AsyncClient,
        homeowner: dict[str, str],
        enrollment: Enrollment,
    ) -> None:
        await client.delete(f"/v1/site/home-42/enrollment/{enrollment.id}", headers=homeowner)

        response = await request_settings(client, homeowner, backup_reserve_percentage=10)

        assert response.status_code == 200

    async def test_an_ev_charger_takes_no_battery_settings(
        self, client: httpx.AsyncClient, session: AsyncSession, site: Site, oem: Tenant
    ) -> None:
        charger = battery_fields("ev-1", type="EV_CHARGER", attributes={"max_power_w": 11000})
        created = await client.post("/v1/site/home-42/devices", json=charger, headers=oem.headers)
        assert created.status_code == 200

        response = await client.post(
            "/v1/site/home-42/device/ev-1/settings",
            json={"backup_reserve_percentage": 40},
            headers=oem.headers,
        )

        assert response.status_code == 422
        assert error_paths(response) == ["deviceId"]


class TestOutcome:
    @pytest.fixture
    async def pending(
        self, client: httpx.AsyncClient, homeowner: dict[str, str], battery: Device
    ) -> dict[str, object]:
        response = await request_settings(
            client, homeowner, backup_reserve_percentage=45, mode="BACKUP"
        )
        created: dict[str, object] = response.json()
        return created

    @staticmethod
    async def report(
        client: httpx.AsyncClient, oem: Tenant, request_id: object, body: object
    ) -> httpx.Response:
        return await client.patch(f"/v1/settings/{request_id}", json=body, headers=oem.headers)

    @staticmethod
    async def device_reserve(client: httpx.AsyncClient, oem: Tenant) -> int:
        device = await client.get("/v1/site/home-42/device/pw-1", headers=oem.headers)
        reserve: int = device.json()["configuration"]["reserve_percentage"]
        return reserve

    async def test_applied_settles_the_request_and_the_devices_reserve(
        self,
        client: httpx.AsyncClient,
        oem: Tenant,
        homeowner: dict[str, str],
        pending: dict[str, object],
    ) -> None:
        assert await self.device_reserve(client, oem) == 20

        response = await self.report(client, oem, pending["id"], {"status": "APPLIED"})

        assert response.status_code == 200
        applied = response.json()
        assert (applied["status"], applied["message"]) == ("APPLIED", None)
        assert applied["reported_at"] is not None
        assert await self.device_reserve(client, oem) == 45
        assert (await settings_of_device(client, homeowner))[0] == applied
        read = await client.get(f"/v1/settings/{pending['id']}", headers=oem.headers)
        assert read.json() == applied

    async def test_failed_keeps_the_devices_reserve_and_says_why(
        self, client: httpx.AsyncClient, oem: Tenant, pending: dict[str, object]
    ) -> None:
        response = await self.report(
            client, oem, pending["id"], {"status": "FAILED", "message": "Battery offline"}
        )

        assert response.status_code == 200
        assert (response.json()["status"], response.json()["message"]) == (
            "FAILED",
            "Battery offline",
        )
        assert await self.device_reserve(client, oem) == 20

    async def test_the_same_report_again_changes_nothing(
        self, client: httpx.AsyncClient, oem: Tenant, pending: dict[str, object]
    ) -> None:
        first = await self.report(client, oem, pending["id"], {"status": "APPLIED"})
        with frozen_time(utc_now() + timedelta(minutes=5)):
            again = await self.report(
                client, oem, pending["id"], {"status": "APPLIED", "message": "retry"}
            )

        assert again.status_code == 200
        assert again.json() == first.json()

    async def test_a_different_final_status_after_a_final_one_is_409(
        self, client: httpx.AsyncClient, oem: Tenant, pending: dict[str, object]
    ) -> None:
        await self.report(client, oem, pending["id"], {"status": "APPLIED"})

        response = await self.report(client, oem, pending["id"], {"status": "FAILED"})

        assert response.status_code == 409
        assert set(response.json()) == ERROR_KEYS
        assert error_paths(response) == ["status"]
        read = await client.get(f"/v1/settings/{pending['id']}", headers=oem.headers)
        assert read.json()["status"] == "APPLIED"
        assert await self.device_reserve(client, oem) == 45

    async def test_an_older_request_reported_late_does_not_undo_a_newer_reserve(
        self,
        client: httpx.AsyncClient,
        oem: Tenant,
        homeowner: dict[str, str],
        pending: dict[str, object],
    ) -> None:
        with frozen_time(utc_now() + timedelta(minutes=1)):
            newer = (await request_settings(client, homeowner, backup_reserve_percentage=60)).json()
        await self.report(client, oem, newer["id"], {"status": "APPLIED"})

        late = await self.report(client, oem, pending["id"], {"status": "APPLIED"})

        assert late.json()["status"] == "APPLIED"
        assert await self.device_reserve(client, oem) == 60

    @pytest.mark.parametrize(
        ("body", "named"),
        [
            ({"status": "PENDING"}, "status"),
            ({"status": "applied"}, "status"),
            ({}, "status"),
            ({"status": "FAILED", "message": "x" * 501}, "message"),
            (["APPLIED"], ""),
        ],
    )
    async def test_malformed_reports_are_422_in_flips_shape(
        self,
        client: httpx.AsyncClient,
        oem: Tenant,
        pending: dict[str, object],
        body: object,
        named: str,
    ) -> None:
        response = await self.report(client, oem, pending["id"], body)

        assert response.status_code == 422
        assert set(response.json()) == ERROR_KEYS
        if named:
            assert error_paths(response) == [named]
        read = await client.get(f"/v1/settings/{pending['id']}", headers=oem.headers)
        assert read.json()["status"] == "PENDING"

    @pytest.mark.usefixtures("battery")
    async def test_an_unknown_or_malformed_id(self, client: httpx.AsyncClient, oem: Tenant) -> None:
        unknown = await self.report(
            client, oem, "0193a4f2-7c1e-7d2a-9b1f-2f4c8e1d9a10", {"status": "APPLIED"}
        )
        malformed = await self.report(client, oem, "not-an-id", {"status": "APPLIED"})

        assert unknown.status_code == 404
        assert malformed.status_code == 422
        assert error_paths(malformed) == ["settingsRequestId"]

    async def test_the_oem_polls_the_ones_still_to_apply(
        self,
        client: httpx.AsyncClient,
        oem: Tenant,
        homeowner: dict[str, str],
        pending: dict[str, object],
    ) -> None:
        later = (await request_settings(client, homeowner, mode="SAVINGS")).json()
        await self.report(client, oem, pending["id"], {"status": "APPLIED"})

        to_apply = await client.get(
            "/v1/settings", params={"status": "PENDING"}, headers=oem.headers
        )
        everything = await client.get("/v1/settings", headers=oem.headers)

        assert [r["id"] for r in to_apply.json()] == [later["id"]]
        assert [r["id"] for r in everything.json()] == [later["id"], pending["id"]]
