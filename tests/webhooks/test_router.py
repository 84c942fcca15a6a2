"""Webhook endpoints, the delivery log and delivery settings over HTTP."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from gridhive.config import Settings
from gridhive.webhooks import service
from gridhive.webhooks.models import Delivery
from tests.factories import Tenant, create_site, site_token

URL = "https://oem.example.com/gridhive/hooks"


async def create(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/webhook-endpoints", json={"url": URL, **body}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def error_paths(response: httpx.Response) -> list[str]:
    return [e["path"] for e in response.json()["errors"]]


class TestCreate:
    async def test_an_oem_registers_an_endpoint_and_sees_its_secret_once(
        self, client: httpx.AsyncClient, oem: Tenant
    ) -> None:
        created = await create(client, oem)

        assert created["url"] == URL
        assert created["event_types"] is None  # every type
        assert created["status"] == "enabled"
        secret = created["secret"]
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
        Webhook(secret)  # a secret the standard library accepts

        read = await client.get(f"/v1/webhook-endpoints/{created['id']}", headers=oem.headers)
        assert read.status_code == 200
        assert "secret" not in read.json()
        listed = await client.get("/v1/webhook-endpoints", headers=oem.headers)
        assert [e["id"] for e in listed.json()] == [created["id"]]
        assert "secret" not in listed.json()[0]

    async def test_a_utility_may_register_one_too(
        self, client: httpx.AsyncClient, utility: Tenant
    ) -> None:
        created = await create(client, utility, event_types=["telemetry.published"])
        assert created["event_types"] == ["telemetry.published"]

    async def test_unknown_event_types_are_named(
        self, client: httpx.AsyncClient, oem: Tenant
    ) -> None:
        response = await client.post(
            "/v1/webhook-endpoints",
            json={"url": URL, "event_types": ["command.created", "command.exploded"]},
            headers=oem.headers,
        )
        assert response.status_code == 422
        assert error_paths(response) == ["event_types.1"]

    async def test_an_empty_list_of_event_types_is_refused(
        self, client: httpx.AsyncClient, oem: Tenant
    ) -> None:
        response = await client.post(
            "/v1/webhook-endpoints", json={"url": URL, "event_types": []}, headers=oem.headers
        )
        assert response.status_code == 422
        assert error_paths(response) == ["event_types"]

    @pytest.mark.parametrize(
        "url", ["ftp://oem.example/hook", "oem.example/hook", "https://", "javascript:alert(1)"]
    )
    async def test_only_http_urls(self, client: httpx.AsyncClient, oem: Tenant, url: str) -> None:
        response = await client.post(
            "/v1/webhook-endpoints", json={"url": url}, headers=oem.headers
        )
        assert response.status_code == 422
        assert error_paths(response) == ["url"]

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8000/hook",
            "http://localhost/hook",
            "http://10.0.0.7/hook",
            "http://192.168.1.2/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://0.0.0.0/hook",
        ],
    )
    async def test_private_addresses_are_refused_in_production(
        self, client: httpx.AsyncClient, oem: Tenant, settings: Settings, url: str
    ) -> None:
        settings.webhooks.allow_private = False
        response = await client.post(
            "/v1/webhook-endpoints", json={"url": url}, headers=oem.headers
        )
        assert response.status_code == 422, response.text
        assert error_paths(response) == ["url"]
        assert "non-public" in response.json()["message"]

    async def test_public_addresses_pass_in_production(
        self, client: httpx.AsyncClient, oem: Tenant, settings: Settings
    ) -> None:
        settings.webhooks.allow_private = False
        created = await create(client, oem, url="https://93.184.215.14/hook")
        assert created["status"] == "enabled"

    async def test_private_addresses_are_allowed_by_default(
        self, client: httpx.AsyncClient, oem: Tenant
    ) -> None:
        created = await create(client, oem, url="http://127.0.0.1:9000/hook")
        assert created["url"] == "http://127.0.0.1:9000/hook"


class TestChange:
    async def test_url_types_and_status_change_and_null_means_every_type(
        self, client: httpx.AsyncClient, oem: Tenant
    ) -> None:
        created = await create(client, oem, event_types=["command.created"])
        path = f"/v1/webhook-endpoints/{created['id']}"

        changed = await client.patch(
            path,
            json={"url": "https://new.example/hook", "status": "disabled"},
            headers=oem.headers,
        )
        assert changed.status_code == 200
        assert changed.json()["url"] == "https://new.example/hook"
        assert changed.json()["status"] == "disabled"
        assert changed.json()["event_types"] == ["command.created"]  # not sent: unchanged

        every = await client.patch(path, json={"event_types": None}, headers=oem.headers)
        assert every.json()["event_types"] is None
        enabled = await client.patch(path, json={"status": "enabled"}, headers=oem.headers)
        assert enabled.json()["status"] == "enabled"

    async def test_suspension_is_ours_to_set(self, client: httpx.AsyncClient, oem: Tenant) -> None:
        created = await create(client, oem)
        response = await client.patch(
            f"/v1/webhook-endpoints/{created['id']}",
            json={"status": "suspended"},
            headers=oem.headers,
        )
        assert response.status_code == 422
        assert error_paths(response) == ["status"]

    async def test_rotation_issues_a_new_secret(
        self, client: httpx.AsyncClient, oem: Tenant
    ) -> None:
        created = await create(client, oem)
        path = f"/v1/webhook-endpoints/{created['id']}/rotate-secret"

        rotated = await client.post(path, headers=oem.headers)
        assert rotated.status_code == 200
        assert rotated.json()["secret"].startswith("whsec_")
        assert rotated.json()["secret"] != created["secret"]
        assert rotated.json()["previous_secret_expires_at"] is not None

        at_once = await client.post(path, json={"previous_secret_valid_s": 0}, headers=oem.headers)
        assert at_once.json()["previous_secret_expires_at"] is None

    async def test_delete(self, client: httpx.AsyncClient, oem: Tenant) -> None:
        created = await create(client, oem)
        path = f"/v1/webhook-endpoints/{created['id']}"
        assert (await client.delete(path, headers=oem.headers)).status_code == 204
        assert (await client.get(path, headers=oem.headers)).status_code == 404

    async def test_delete_takes_the_endpoints_backlog_and_leaves_the_others(
        self, client: httpx.AsyncClient, oem: Tenant, session: AsyncSession
    ) -> None:
        doomed, kept = await create(client, oem), await create(client, oem)
        for endpoint in (doomed, kept):
            queued = await client.post(
                f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=oem.headers
            )
            assert queued.status_code == 200, queued.text

        deleted = await client.delete(f"/v1/webhook-endpoints/{doomed['id']}", headers=oem.headers)
        assert deleted.status_code == 204

        left = (await session.execute(sa.select(Delivery.endpoint_id))).scalars().all()
        assert [str(endpoint_id) for endpoint_id in left] == [kept["id"]]
        log = await client.get(
            f"/v1/webhook-endpoints/{kept['id']}/deliveries", headers=oem.headers
        )
        assert len(log.json()) == 1


class TestDeliveryLog:
    async def test_a_test_message_is_queued_and_logged(
        self, client: httpx.AsyncClient, oem: Tenant
    ) -> None:
        created = await create(client, oem, event_types=["command.created"])
        base = f"/v1/webhook-endpoints/{created['id']}"

        queued = await client.post(f"{base}/test", headers=oem.headers)
        assert queued.status_code == 200, queued.text
        delivery = queued.json()
        assert delivery["event_type"] == "webhook.test"
        assert delivery["state"] == "pending"
        assert delivery["attempts"] == 0
        assert delivery["attempt_log"] == []

        log = await client.get(f"{base}/deliveries", headers=oem.headers)
        assert [d["id"] for d in log.json()] == [delivery["id"]]

    async def test_the_log_lists_the_endpoints_deliveries_newest_first_with_filters(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        created = await create(client, oem)
        for event_type, subject in [("command.created", "b-1"), ("command.updated", "b-1")]:
            await service.emit(
                session,
                org_id=oem.org.id,
                event_type=event_type,
                object_type="command",
                subject_id=subject,
                event_object={"id": "c-1"},
            )
        await session.commit()
        base = f"/v1/webhook-endpoints/{created['id']}/deliveries"

        log = (await client.get(base, headers=oem.headers)).json()
        assert [d["event_type"] for d in log] == ["command.updated", "command.created"]
        assert log[0]["next_attempt_at"] is not None
        assert log[0]["channel"] == "webhook"

        only = await client.get(
            base, params={"event_type": "command.created", "state": "pending"}, headers=oem.headers
        )
        assert [d["event_type"] for d in only.json()] == ["command.created"]
        paged = await client.get(base, params={"skip": 1, "limit": 1}, headers=oem.headers)
        assert [d["event_type"] for d in paged.json()] == ["command.created"]
        none = await client.get(base, params={"state": "dead"}, headers=oem.headers)
        assert none.json() == []


class TestIsolation:
    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            ("GET", "", None),
            ("PATCH", "", {"status": "disabled"}),
            ("DELETE", "", None),
            ("POST", "/rotate-secret", None),
            ("POST", "/test", None),
            ("GET", "/deliveries", None),
        ],
    )
    async def test_another_tenants_endpoint_is_not_found(
        self,
        client: httpx.AsyncClient,
        oem: Tenant,
        other_oem: Tenant,
        utility: Tenant,
        method: str,
        suffix: str,
        body: dict[str, Any] | None,
    ) -> None:
        created = await create(client, oem)
        path = f"/v1/webhook-endpoints/{created['id']}{suffix}"
        for stranger in (other_oem, utility):
            response = await client.request(method, path, json=body, headers=stranger.headers)
            assert response.status_code == 404, (stranger.org.name, response.text)
        assert (await client.get("/v1/webhook-endpoints", headers=other_oem.headers)).json() == []
        # ...and it is untouched.
        mine = await client.get(f"/v1/webhook-endpoints/{created['id']}", headers=oem.headers)
        assert mine.json()["status"] == "enabled"

    async def test_site_tokens_and_operators_are_not_tenants_here(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, admin: Tenant
    ) -> None:
        site = await create_site(session, oem)
        token = await site_token(session, oem, site)
        for headers in (token, admin.headers):
            response = await client.get("/v1/webhook-endpoints", headers=headers)
            assert response.status_code == 403
        assert (await client.get("/v1/webhook-endpoints")).status_code == 401


class TestDeliverySettings:
    async def test_the_mode_defaults_to_webhook_and_changes(
        self, client: httpx.AsyncClient, oem: Tenant, settings: Settings
    ) -> None:
        read = await client.get("/v1/delivery-settings", headers=oem.headers)
        assert read.json() == {
            "delivery_mode": "webhook",
            "mqtt_topic_prefix": f"gridhive/{oem.org.id}/",
        }

        refused = await client.patch(
            "/v1/delivery-settings", json={"delivery_mode": "mqtt"}, headers=oem.headers
        )
        assert refused.status_code == 422
        assert error_paths(refused) == ["delivery_mode"]

        settings.mqtt.url = "mqtt://127.0.0.1:1883"
        changed = await client.patch(
            "/v1/delivery-settings", json={"delivery_mode": "mqtt"}, headers=oem.headers
        )
        assert changed.json()["delivery_mode"] == "mqtt"
        polling = await client.patch(
            "/v1/delivery-settings", json={"delivery_mode": "polling"}, headers=oem.headers
        )
        assert polling.json()["delivery_mode"] == "polling"
        assert (await client.get("/v1/delivery-settings", headers=oem.headers)).json()[
            "delivery_mode"
        ] == "polling"

    async def test_an_unknown_mode_is_named(self, client: httpx.AsyncClient, oem: Tenant) -> None:
        response = await client.patch(
            "/v1/delivery-settings", json={"delivery_mode": "carrier-pigeon"}, headers=oem.headers
        )
        assert response.status_code == 422
        assert error_paths(response) == ["delivery_mode"]

    async def test_each_tenant_has_its_own_mode(
        self, client: httpx.AsyncClient, oem: Tenant, other_oem: Tenant
    ) -> None:
        await client.patch(
            "/v1/delivery-settings", json={"delivery_mode": "polling"}, headers=oem.headers
        )
        other = await client.get("/v1/delivery-settings", headers=other_oem.headers)
        assert other.json()["delivery_mode"] == "webhook"


async def test_the_api_reference_documents_the_webhooks_tag(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    tagged = {
        path
        for path, operations in schema["paths"].items()
        for operation in operations.values()
        if "Webhooks" in operation.get("tags", [])
    }
    assert {
        "/v1/webhook-endpoints",
        "/v1/webhook-endpoints/{id}",
        "/v1/webhook-endpoints/{id}/rotate-secret",
        "/v1/webhook-endpoints/{id}/test",
        "/v1/webhook-endpoints/{id}/deliveries",
        "/v1/delivery-settings",
    } <= tagged
