from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import Tenant, battery_fields, create_device, create_site, site_token

DEVICE_FIELDS = {
    "id",
    "site_id",
    "manufacturer_name",
    "product_name",
    "serial_number",
    "type",
    "attributes",
    "configuration",
    "install_date",
    "created_at",
    "updated_at",
}


class TestCreateDevice:
    async def test_creates_a_battery_with_flips_shape(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        await create_site(session, oem, "abc-789")
        body = battery_fields("xyz-123", site_id="abc-789")
        response = await client.post("/v1/site/abc-789/devices", json=body, headers=oem.headers)
        assert response.status_code == 200
        device = response.json()
        assert set(device) == DEVICE_FIELDS
        assert device["site_id"] == "abc-789"
        assert device["attributes"] == {
            "battery_capacity_wh": 13500,
            "battery_power_input_w": 5000,
            "battery_power_output_w": 5000,
        }
        assert device["configuration"] == {"reserve_percentage": 20}
        assert device["install_date"] == "2025-03-01T00:00:00Z"

    async def test_numeric_strings_in_attributes_are_accepted(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        await create_site(session, oem, "abc-789")
        body = battery_fields(
            "xyz-123",
            attributes={
                "battery_capacity_wh": "15000",
                "battery_power_input_w": "6000",
                "battery_power_output_w": "7500",
            },
        )
        response = await client.post("/v1/site/abc-789/devices", json=body, headers=oem.headers)
        assert response.json()["attributes"]["battery_capacity_wh"] == 15000

    @pytest.mark.parametrize(
        ("attributes", "named"),
        [
            ({"battery_power_input_w": 1, "battery_power_output_w": 1}, "battery_capacity_wh"),
            (
                {
                    "battery_capacity_wh": 1,
                    "battery_power_input_w": -5,
                    "battery_power_output_w": 1,
                },
                "battery_power_input_w",
            ),
        ],
    )
    async def test_bad_battery_attributes_name_the_field(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        attributes: dict[str, int],
        named: str,
    ) -> None:
        await create_site(session, oem, "abc-789")
        body = battery_fields("xyz-123", attributes=attributes)
        response = await client.post("/v1/site/abc-789/devices", json=body, headers=oem.headers)
        assert response.status_code == 422
        assert f"attributes.{named}" in response.json()["message"]

    async def test_ev_charger_attributes_are_kept_as_sent(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        await create_site(session, oem, "abc-789")
        body = battery_fields("ev-1", type="EV_CHARGER", attributes={"max_current_a": 32})
        response = await client.post("/v1/site/abc-789/devices", json=body, headers=oem.headers)
        assert response.status_code == 200
        assert response.json()["attributes"] == {"max_current_a": 32}

    async def test_duplicate_id_is_409(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        site = await create_site(session, oem, "abc-789")
        await create_device(session, site, "xyz-123")
        response = await client.post(
            "/v1/site/abc-789/devices", json=battery_fields("xyz-123"), headers=oem.headers
        )
        assert response.status_code == 409
        assert response.json()["errors"][0]["path"] == "id"

    async def test_mismatched_site_id_is_422(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        await create_site(session, oem, "abc-789")
        body = battery_fields("xyz-123", site_id="other")
        response = await client.post("/v1/site/abc-789/devices", json=body, headers=oem.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == "site_id"

    async def test_needs_the_client_token_not_a_site_token(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        site = await create_site(session, oem, "abc-789")
        response = await client.post(
            "/v1/site/abc-789/devices",
            json=battery_fields("xyz-123"),
            headers=await site_token(session, oem, site),
        )
        assert response.status_code == 403

    async def test_another_oems_site_is_404(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, other_oem: Tenant
    ) -> None:
        await create_site(session, oem, "abc-789")
        response = await client.post(
            "/v1/site/abc-789/devices", json=battery_fields("xyz-123"), headers=other_oem.headers
        )
        assert response.status_code == 404


class TestReadUpdateDelete:
    async def test_read_list_update_delete(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        site = await create_site(session, oem, "abc-789")
        await create_device(session, site, "b-1")
        await create_device(session, site, "b-2")
        headers = await site_token(session, oem, site)
        listed = await client.get("/v1/site/abc-789/devices", headers=headers)
        assert [d["id"] for d in listed.json()] == ["b-1", "b-2"]
        one = await client.get("/v1/site/abc-789/device/b-2", headers=headers)
        assert one.json()["id"] == "b-2"
        updated = await client.patch(
            "/v1/site/abc-789/device/b-2",
            json={
                "attributes": {"battery_power_output_w": 7600},
                "configuration": {"reserve_percentage": 30},
            },
            headers=headers,
        )
        assert updated.status_code == 200
        assert updated.json()["attributes"]["battery_power_output_w"] == 7600
        assert updated.json()["attributes"]["battery_capacity_wh"] == 13500
        assert updated.json()["configuration"] == {"reserve_percentage": 30}
        deleted = await client.delete("/v1/site/abc-789/device/b-1", headers=headers)
        assert deleted.status_code == 204
        assert deleted.content == b""
        after = await client.get("/v1/site/abc-789/devices", headers=headers)
        assert [d["id"] for d in after.json()] == ["b-2"]
        gone = await client.get("/v1/site/abc-789/device/b-1", headers=headers)
        assert gone.status_code == 404

    async def test_a_deleted_device_id_can_be_commissioned_again(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        site = await create_site(session, oem, "abc-789")
        await create_device(session, site, "b-1")
        await client.delete("/v1/site/abc-789/device/b-1", headers=oem.headers)
        again = await client.post(
            "/v1/site/abc-789/devices", json=battery_fields("b-1"), headers=oem.headers
        )
        assert again.status_code == 200

    @pytest.mark.parametrize(
        "body",
        [
            {"configuration": {"reserve_percentage": 101}},
            {"attributes": {"battery_capacity_wh": 0}},
            {"attributes": {"battery_capacity_wh": None}},
        ],
    )
    async def test_bad_updates_are_422(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, body: object
    ) -> None:
        site = await create_site(session, oem, "abc-789")
        await create_device(session, site, "b-1")
        response = await client.patch("/v1/site/abc-789/device/b-1", json=body, headers=oem.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"].startswith(("configuration", "attributes"))

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/devices"),
            ("GET", "/device/b-1"),
            ("PATCH", "/device/b-1"),
            ("DELETE", "/device/b-1"),
        ],
    )
    async def test_another_tenant_gets_404(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        other_oem: Tenant,
        method: str,
        path: str,
    ) -> None:
        site = await create_site(session, oem, "abc-789")
        await create_device(session, site, "b-1")
        response = await client.request(
            method, f"/v1/site/abc-789{path}", json={}, headers=other_oem.headers
        )
        assert response.status_code == 404

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/devices"),
            ("GET", "/device/b-1"),
            ("PATCH", "/device/b-1"),
            ("DELETE", "/device/b-1"),
        ],
    )
    async def test_site_token_of_another_site_gets_403(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        method: str,
        path: str,
    ) -> None:
        site = await create_site(session, oem, "abc-789")
        await create_device(session, site, "b-1")
        other = await create_site(session, oem, "other-site")
        response = await client.request(
            method,
            f"/v1/site/abc-789{path}",
            json={},
            headers=await site_token(session, oem, other),
        )
        assert response.status_code == 403

    async def test_device_of_another_site_is_404(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        site = await create_site(session, oem, "abc-789")
        await create_site(session, oem, "other-site")
        await create_device(session, site, "b-1")
        response = await client.get("/v1/site/other-site/device/b-1", headers=oem.headers)
        assert response.status_code == 404
