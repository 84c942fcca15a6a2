from __future__ import annotations

import httpx
import pytest

from tests.factories import Tenant


class TestOAuthToken:
    async def test_client_credentials_token_works_where_the_key_does(
        self, client: httpx.AsyncClient, admin: Tenant
    ) -> None:
        public_id, secret = admin.key.removeprefix("ghk_").split("_", 1)
        response = await client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": public_id,
                "client_secret": secret,
            },
        )
        assert response.status_code == 200
        body = response.json()
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 3600
        orgs = await client.get(
            "/admin/v1/orgs", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
        assert orgs.status_code == 200

    async def test_basic_auth_is_accepted(self, client: httpx.AsyncClient, admin: Tenant) -> None:
        public_id, secret = admin.key.removeprefix("ghk_").split("_", 1)
        response = await client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=(public_id, secret)
        )
        assert response.status_code == 200

    async def test_wrong_secret_is_401_with_flip_error_body(
        self, client: httpx.AsyncClient, admin: Tenant
    ) -> None:
        public_id, _ = admin.key.removeprefix("ghk_").split("_", 1)
        response = await client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": public_id,
                "client_secret": "nope",
            },
        )
        assert response.status_code == 401
        body = response.json()
        assert body["code"] == "invalid_client"
        assert body["status_code"] == 401
        assert set(body) == {"code", "message", "status_code", "errors", "detail"}

    async def test_other_grant_types_are_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/oauth/token", data={"grant_type": "password"})
        assert response.status_code == 400
        assert response.json()["code"] == "unsupported_grant_type"

    async def test_token_of_a_revoked_key_stops_working(
        self, client: httpx.AsyncClient, admin: Tenant, utility: Tenant
    ) -> None:
        public_id, secret = utility.key.removeprefix("ghk_").split("_", 1)
        token = (
            await client.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": public_id,
                    "client_secret": secret,
                },
            )
        ).json()["access_token"]
        keys = (
            await client.get(f"/admin/v1/orgs/{utility.org.id}/keys", headers=admin.headers)
        ).json()
        revoked = await client.delete(f"/admin/v1/keys/{keys[0]['id']}", headers=admin.headers)
        assert revoked.status_code == 204
        # The admin API itself needs an operator key; a revoked utility token is refused at once.
        response = await client.get("/admin/v1/orgs", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert "revoked" in response.json()["message"]


class TestAdminApi:
    async def test_create_org_and_key_then_use_the_key(
        self, client: httpx.AsyncClient, admin: Tenant
    ) -> None:
        org = await client.post(
            "/admin/v1/orgs", json={"kind": "oem", "name": "Volt"}, headers=admin.headers
        )
        assert org.status_code == 200
        assert org.json()["kind"] == "oem"
        key = await client.post(f"/admin/v1/orgs/{org.json()['id']}/keys", headers=admin.headers)
        assert key.status_code == 200
        assert key.json()["key"].startswith("ghk_")
        listed = await client.get(f"/admin/v1/orgs/{org.json()['id']}/keys", headers=admin.headers)
        assert [k["id"] for k in listed.json()] == [key.json()["id"]]
        assert "key" not in listed.json()[0]
        assert key.json()["key"].startswith(listed.json()[0]["prefix"] + "_")

    @pytest.mark.parametrize("who", ["utility", "oem"])
    async def test_tenant_keys_cannot_use_the_admin_api(
        self, client: httpx.AsyncClient, who: str, utility: Tenant, oem: Tenant
    ) -> None:
        tenant = utility if who == "utility" else oem
        response = await client.get("/admin/v1/orgs", headers=tenant.headers)
        assert response.status_code == 403

    async def test_key_for_unknown_org_is_404(
        self, client: httpx.AsyncClient, admin: Tenant
    ) -> None:
        response = await client.post(
            "/admin/v1/orgs/00000000-0000-0000-0000-000000000000/keys", headers=admin.headers
        )
        assert response.status_code == 404

    async def test_revoking_an_unknown_key_is_404(
        self, client: httpx.AsyncClient, admin: Tenant
    ) -> None:
        response = await client.delete(
            "/admin/v1/keys/00000000-0000-0000-0000-000000000000", headers=admin.headers
        )
        assert response.status_code == 404


class TestCredentials:
    @pytest.mark.parametrize(
        "header",
        [None, "Bearer ", "Bearer ghk_nope_nope", "Bearer not-a-token", "Basic abc"],
    )
    async def test_missing_or_bad_credentials_are_401(
        self, client: httpx.AsyncClient, header: str | None
    ) -> None:
        headers = {"Authorization": header} if header else {}
        response = await client.get("/admin/v1/orgs", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["code"] == "UNAUTHORIZED"
