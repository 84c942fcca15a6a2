from __future__ import annotations

import httpx

from tests.factories import Tenant


class TestErrorBodies:
    async def test_unknown_route_is_404_with_flip_body(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/nothing-here")
        assert response.status_code == 404
        assert response.json()["code"] == "NOT_FOUND"
        assert response.json()["status_code"] == 404

    async def test_validation_error_names_the_field(
        self, client: httpx.AsyncClient, admin: Tenant
    ) -> None:
        response = await client.post(
            "/admin/v1/orgs", json={"kind": "bank", "name": "x"}, headers=admin.headers
        )
        assert response.status_code == 422
        body = response.json()
        assert body["errors"][0]["path"] == "kind"
        assert body["detail"][0]["loc"] == ["body", "kind"]
        assert "kind" in body["message"]

    async def test_malformed_json_is_422(self, client: httpx.AsyncClient, admin: Tenant) -> None:
        response = await client.post(
            "/admin/v1/orgs",
            content=b'{"kind": "oem", "name": ',
            headers={**admin.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["type"] == "json_invalid"

    async def test_oversized_body_is_413(self, client: httpx.AsyncClient, admin: Tenant) -> None:
        big = b'{"kind": "oem", "name": "' + b"x" * (5 * 1024 * 1024) + b'"}'
        response = await client.post(
            "/admin/v1/orgs",
            content=big,
            headers={**admin.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json()["code"] == "PAYLOAD_TOO_LARGE"

    async def test_wrong_method_is_405_with_flip_body(self, client: httpx.AsyncClient) -> None:
        response = await client.put("/healthz")
        assert response.status_code == 405
        assert response.json()["status_code"] == 405


class TestIdempotencyKey:
    async def test_retry_with_same_key_and_body_returns_the_first_answer(
        self, client: httpx.AsyncClient, admin: Tenant
    ) -> None:
        headers = {**admin.headers, "Idempotency-Key": "create-volt-1"}
        first = await client.post(
            "/admin/v1/orgs", json={"kind": "oem", "name": "Volt"}, headers=headers
        )
        again = await client.post(
            "/admin/v1/orgs", json={"kind": "oem", "name": "Volt"}, headers=headers
        )
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        orgs = (await client.get("/admin/v1/orgs", headers=admin.headers)).json()
        assert [o["name"] for o in orgs].count("Volt") == 1

    async def test_same_key_with_another_body_is_409(
        self, client: httpx.AsyncClient, admin: Tenant
    ) -> None:
        headers = {**admin.headers, "Idempotency-Key": "k-2"}
        await client.post("/admin/v1/orgs", json={"kind": "oem", "name": "Volt"}, headers=headers)
        other = await client.post(
            "/admin/v1/orgs", json={"kind": "oem", "name": "Amp"}, headers=headers
        )
        assert other.status_code == 409
        assert other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"

    async def test_failed_request_does_not_burn_the_key(
        self, client: httpx.AsyncClient, admin: Tenant
    ) -> None:
        headers = {**admin.headers, "Idempotency-Key": "k-3"}
        bad = await client.post("/admin/v1/orgs", json={"kind": "oem"}, headers=headers)
        assert bad.status_code == 422
        good = await client.post(
            "/admin/v1/orgs", json={"kind": "oem", "name": "Volt"}, headers=headers
        )
        assert good.status_code == 200


class TestHealth:
    async def test_healthz_and_readyz(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).json() == {"status": "ready"}

    async def test_openapi_has_the_tags(self, client: httpx.AsyncClient) -> None:
        spec = (await client.get("/openapi.json")).json()
        tags = {t["name"] for t in spec["tags"]}
        assert {"Cloud API", "Mobile App API", "Utility API", "Admin"} <= tags
