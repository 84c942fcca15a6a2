from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.kit.time import frozen_time, utc_now
from tests.factories import Tenant, create_site, site_token


class TestSiteToken:
    async def test_token_opens_its_site_for_one_hour(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        await create_site(session, oem, "abc-789")
        response = await client.post("/v1/auth/site/abc-789", headers=oem.headers)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"site_access_token", "expires_at"}
        assert body["expires_at"].endswith("Z")
        headers = {"Authorization": f"Bearer {body['site_access_token']}"}
        assert (await client.get("/v1/site/abc-789", headers=headers)).status_code == 200
        with frozen_time(utc_now() + timedelta(hours=1, seconds=1)):
            expired = await client.get("/v1/site/abc-789", headers=headers)
        assert expired.status_code == 401
        assert "expired" in expired.json()["message"]

    async def test_unknown_site_is_404(self, client: httpx.AsyncClient, oem: Tenant) -> None:
        response = await client.post("/v1/auth/site/nope", headers=oem.headers)
        assert response.status_code == 404

    async def test_another_oems_site_is_404(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, other_oem: Tenant
    ) -> None:
        await create_site(session, oem, "abc-789")
        response = await client.post("/v1/auth/site/abc-789", headers=other_oem.headers)
        assert response.status_code == 404

    async def test_site_token_cannot_mint_tokens(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        site = await create_site(session, oem, "abc-789")
        headers = await site_token(session, oem, site)
        response = await client.post("/v1/auth/site/abc-789", headers=headers)
        assert response.status_code == 403

    async def test_utility_key_is_403(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_site(session, oem, "abc-789")
        response = await client.post("/v1/auth/site/abc-789", headers=utility.headers)
        assert response.status_code == 403


class TestGetSites:
    async def test_lists_only_own_sites_with_paging(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, other_oem: Tenant
    ) -> None:
        for i in range(3):
            await create_site(session, oem, f"site-{i}")
        await create_site(session, other_oem, "foreign")
        response = await client.get("/v1/sites", headers=oem.headers)
        assert [s["id"] for s in response.json()] == ["site-0", "site-1", "site-2"]
        page = await client.get("/v1/sites?skip=1&limit=1", headers=oem.headers)
        assert [s["id"] for s in page.json()] == ["site-1"]

    @pytest.mark.parametrize("query", ["limit=0", "limit=1001", "skip=-1", "limit=abc"])
    async def test_bad_paging_is_422(
        self, client: httpx.AsyncClient, oem: Tenant, query: str
    ) -> None:
        response = await client.get(f"/v1/sites?{query}", headers=oem.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] in {"skip", "limit"}


class TestReadAndUpdateSite:
    async def test_site_has_flips_fields(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        site = await create_site(session, oem, "abc-789", first_name="Ada")
        response = await client.get(
            "/v1/site/abc-789", headers=await site_token(session, oem, site)
        )
        assert set(response.json()) == {
            "id",
            "first_name",
            "last_name",
            "company_name",
            "email",
            "state_code",
            "city",
            "zip_code",
            "street_address",
            "street_address2",
            "service_account_id",
            "tariff_id",
            "created_at",
            "updated_at",
        }
        assert response.json()["first_name"] == "Ada"

    async def test_patch_changes_only_sent_fields(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        site = await create_site(session, oem, "abc-789", first_name="Ada", city="Oakland")
        headers = await site_token(session, oem, site)
        response = await client.patch(
            "/v1/site/abc-789", json={"city": "Austin", "state_code": "tx"}, headers=headers
        )
        assert response.status_code == 200
        assert response.json()["city"] == "Austin"
        assert response.json()["state_code"] == "TX"
        assert response.json()["first_name"] == "Ada"

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("state_code", "ZZ"),
            ("state_code", "California"),
            ("email", "not-an-email"),
            ("zip_code", "9411"),
        ],
    )
    async def test_invalid_fields_are_422_naming_the_field(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        field: str,
        value: str,
    ) -> None:
        site = await create_site(session, oem, "abc-789")
        response = await client.patch(
            "/v1/site/abc-789", json={field: value}, headers=await site_token(session, oem, site)
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == field

    async def test_deprecated_and_unknown_fields_are_ignored(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        site = await create_site(session, oem, "abc-789")
        response = await client.patch(
            "/v1/site/abc-789",
            json={"service_account_id": "123", "something_new": 1},
            headers=await site_token(session, oem, site),
        )
        assert response.status_code == 200

    async def test_ids_with_colons_work_in_paths(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        await create_site(session, oem, "site-for-device::abc")
        response = await client.get(
            f"/v1/site/{quote('site-for-device::abc')}", headers=oem.headers
        )
        assert response.status_code == 200
        assert response.json()["id"] == "site-for-device::abc"


class TestSiteAccess:
    @pytest.mark.parametrize("method", ["GET", "PATCH"])
    async def test_site_token_on_another_site_of_the_same_oem_is_403(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, method: str
    ) -> None:
        site_a = await create_site(session, oem, "site-a")
        await create_site(session, oem, "site-b")
        headers = await site_token(session, oem, site_a)
        response = await client.request(method, "/v1/site/site-b", json={}, headers=headers)
        assert response.status_code == 403

    async def test_site_token_on_an_unknown_site_is_403(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        site_a = await create_site(session, oem, "site-a")
        headers = await site_token(session, oem, site_a)
        assert (await client.get("/v1/site/ghost", headers=headers)).status_code == 403

    @pytest.mark.parametrize("method", ["GET", "PATCH"])
    async def test_another_tenants_site_is_404(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        other_oem: Tenant,
        method: str,
    ) -> None:
        await create_site(session, oem, "site-a")
        response = await client.request(
            method, "/v1/site/site-a", json={}, headers=other_oem.headers
        )
        assert response.status_code == 404

    async def test_same_site_id_at_two_oems_are_different_sites(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, other_oem: Tenant
    ) -> None:
        await create_site(session, oem, "home-1", first_name="Ada")
        await create_site(session, other_oem, "home-1", first_name="Grace")
        mine = await client.get("/v1/site/home-1", headers=oem.headers)
        theirs = await client.get("/v1/site/home-1", headers=other_oem.headers)
        assert mine.json()["first_name"] == "Ada"
        assert theirs.json()["first_name"] == "Grace"

    async def test_utility_key_on_mobile_api_is_403(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_site(session, oem, "site-a")
        assert (await client.get("/v1/site/site-a", headers=utility.headers)).status_code == 403


async def test_a_new_sites_updated_at_is_not_before_created_at(
    client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
) -> None:
    await create_site(session, oem, "fresh")
    site = (await client.get("/v1/site/fresh", headers=oem.headers)).json()
    assert site["updated_at"] >= site["created_at"]
