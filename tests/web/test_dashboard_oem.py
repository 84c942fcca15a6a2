"""Device maker pages: commands and acks, webhook endpoints and their log, delivery mode, keys."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.auth import service as auth_service
from gridhive.webhooks import endpoints as webhook_endpoints
from gridhive.webhooks.models import EndpointStatus
from tests.factories import Tenant
from tests.web.dashboard_support import Fleet, event_form, seed_fleet, sign_in

HOOK = "http://127.0.0.1:9/hooks"


@pytest.fixture
async def signed_in(client: httpx.AsyncClient, oem: Tenant) -> httpx.AsyncClient:
    await sign_in(client, oem)
    return client


async def create_endpoint(client: httpx.AsyncClient, **fields: object) -> httpx.Response:
    response = await client.post("/dashboard/webhooks", data={"url": HOOK, **fields})
    assert response.status_code == 200, response.text
    return response


def endpoint_id_in(html: str) -> str:
    return html.split('href="/dashboard/webhooks/', 1)[1].split('"', 1)[0]


class TestCommands:
    @pytest.fixture
    async def fleet(
        self, client: httpx.AsyncClient, session: AsyncSession, utility: Tenant, oem: Tenant
    ) -> Fleet:
        """An event of the utility, dispatched from its dashboard, then the OEM signs in."""
        fleet = await seed_fleet(session, utility, oem)
        await sign_in(client, utility)
        await client.post("/dashboard/events/new", data=event_form(fleet))
        client.cookies.clear()
        await sign_in(client, oem)
        return fleet

    async def test_commands_with_their_acks_and_filters(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        listing = (await client.get("/v1/commands", headers=fleet.oem.headers)).json()
        first = next(c for c in listing if c["device_id"] == "b-1")
        await client.patch(
            f"/v1/command/{first['id']}",
            json={"device_status": "FAILED_OFFLINE", "device_status_reason": "no signal"},
            headers=fleet.oem.headers,
        )
        page = await client.get("/dashboard/commands")
        assert page.status_code == 200
        assert "b-1" in page.text
        assert "b-2" in page.text
        assert "no signal" in page.text
        failed = await client.get("/dashboard/commands?device_status=FAILED_OFFLINE")
        assert "no signal" in failed.text
        assert "b-2" not in failed.text
        by_device = await client.get("/dashboard/commands?device_id=b-2&status=OK")
        assert "b-2" in by_device.text
        assert "no signal" not in by_device.text

    async def test_another_device_makers_commands_are_not_listed(
        self, client: httpx.AsyncClient, fleet: Fleet, other_oem: Tenant
    ) -> None:
        client.cookies.clear()
        await sign_in(client, other_oem)
        page = await client.get("/dashboard/commands")
        assert "No commands match" in page.text

    async def test_a_bad_filter_is_a_clear_4xx(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        page = await client.get("/dashboard/commands?device_status=MAYBE&page=0")
        assert page.status_code == 422
        assert page.headers["content-type"].startswith("text/html")


class TestWebhookEndpoints:
    async def test_create_shows_the_secret_once(self, signed_in: httpx.AsyncClient) -> None:
        created = await create_endpoint(signed_in, event_types=["command.created"])
        assert "shown only once" in created.text
        secret = created.text.split('id="secret-value">', 1)[1].split("<", 1)[0]
        assert secret.startswith("whsec_")
        endpoint_id = endpoint_id_in(created.text)
        later = await signed_in.get(f"/dashboard/webhooks/{endpoint_id}")
        assert HOOK in later.text
        assert "command.created" in later.text
        assert secret not in later.text
        assert secret not in (await signed_in.get("/dashboard/webhooks")).text

    async def test_a_bad_url_is_shown_at_the_field(self, signed_in: httpx.AsyncClient) -> None:
        page = await signed_in.post("/dashboard/webhooks", data={"url": "ftp://example.com/x"})
        assert page.status_code == 422
        assert 'id="url-error"' in page.text
        assert 'value="ftp://example.com/x"' in page.text

    async def test_rotate_shows_the_new_secret_once(self, signed_in: httpx.AsyncClient) -> None:
        created = await create_endpoint(signed_in)
        first = created.text.split('id="secret-value">', 1)[1].split("<", 1)[0]
        endpoint_id = endpoint_id_in(created.text)
        rotated = await signed_in.post(f"/dashboard/webhooks/{endpoint_id}/rotate-secret")
        second = rotated.text.split('id="secret-value">', 1)[1].split("<", 1)[0]
        assert second.startswith("whsec_")
        assert second != first
        assert "The previous secret also signs until" in rotated.text

    async def test_send_test_queues_a_delivery_in_the_log(
        self, signed_in: httpx.AsyncClient
    ) -> None:
        endpoint_id = endpoint_id_in((await create_endpoint(signed_in)).text)
        sent = await signed_in.post(f"/dashboard/webhooks/{endpoint_id}/test")
        assert sent.status_code == 303
        page = await signed_in.get(sent.headers["location"])
        assert "Test message queued" in page.text
        assert "webhook.test" in page.text
        assert "not tried yet" in page.text
        log = await signed_in.get(f"/dashboard/webhooks/{endpoint_id}/log")
        assert 'hx-trigger="every 3s"' in log.text  # refreshed while under way
        assert "webhook.test" in log.text
        assert "<html" not in log.text

    async def test_a_suspended_endpoint_can_be_enabled_again(
        self, signed_in: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        endpoint_id = endpoint_id_in((await create_endpoint(signed_in)).text)
        endpoint = await webhook_endpoints.get_endpoint_or_raise(
            session, org_id=oem.org.id, endpoint_id=uuid.UUID(endpoint_id)
        )
        endpoint.status = EndpointStatus.SUSPENDED
        await session.commit()
        page = await signed_in.get(f"/dashboard/webhooks/{endpoint_id}")
        assert '<span class="badge suspended" id="endpoint-status">' in page.text
        enabled = await signed_in.post(f"/dashboard/webhooks/{endpoint_id}/enable")
        after = await signed_in.get(enabled.headers["location"])
        assert '<span class="badge enabled" id="endpoint-status">' in after.text
        assert "backlog is being delivered" in after.text

    async def test_delete(self, signed_in: httpx.AsyncClient) -> None:
        endpoint_id = endpoint_id_in((await create_endpoint(signed_in)).text)
        deleted = await signed_in.post(f"/dashboard/webhooks/{endpoint_id}/delete")
        assert deleted.status_code == 303
        assert (await signed_in.get(f"/dashboard/webhooks/{endpoint_id}")).status_code == 404

    async def test_another_device_makers_endpoint_is_not_found(
        self, client: httpx.AsyncClient, signed_in: httpx.AsyncClient, other_oem: Tenant
    ) -> None:
        endpoint_id = endpoint_id_in((await create_endpoint(signed_in)).text)
        client.cookies.clear()
        await sign_in(client, other_oem)
        base = f"/dashboard/webhooks/{endpoint_id}"
        assert (await client.get(base)).status_code == 404
        assert (await client.get(f"{base}/log")).status_code == 404
        for action in ("test", "rotate-secret", "enable", "delete"):
            assert (await client.post(f"{base}/{action}")).status_code == 404, action


class TestDeliveryMode:
    async def test_switch_to_polling_and_back(self, signed_in: httpx.AsyncClient) -> None:
        saved = await signed_in.post("/dashboard/delivery", data={"delivery_mode": "polling"})
        assert saved.status_code == 303
        page = await signed_in.get(saved.headers["location"])
        assert 'value="polling" checked' in page.text
        assert "Delivery mode saved" in page.text

    async def test_mqtt_without_a_broker_is_refused_with_the_reason(
        self, signed_in: httpx.AsyncClient
    ) -> None:
        page = await signed_in.post("/dashboard/delivery", data={"delivery_mode": "mqtt"})
        assert page.status_code == 422
        assert "no broker" in page.text
        bad = await signed_in.post("/dashboard/delivery", data={"delivery_mode": "pigeon"})
        assert bad.status_code == 422


class TestApiKeys:
    async def test_create_shows_the_key_once_and_it_works(
        self, signed_in: httpx.AsyncClient
    ) -> None:
        page = await signed_in.post("/dashboard/keys", data={"name": "staging"})
        key = page.text.split('id="secret-value">', 1)[1].split("<", 1)[0]
        assert key.startswith("ghk_")
        assert "staging" in page.text
        api = await signed_in.get("/v1/commands", headers={"Authorization": f"Bearer {key}"})
        assert api.status_code == 200
        assert key not in (await signed_in.get("/dashboard/keys")).text

    async def test_revoke_stops_the_key(self, signed_in: httpx.AsyncClient) -> None:
        page = await signed_in.post("/dashboard/keys", data={"name": "old"})
        key = page.text.split('id="secret-value">', 1)[1].split("<", 1)[0]
        rows = page.text.split("<tr>")
        row = next(r for r in rows if ">old<" in r)
        key_id = row.split("/dashboard/keys/", 1)[1].split("/", 1)[0]
        revoked = await signed_in.post(f"/dashboard/keys/{key_id}/revoke")
        assert revoked.status_code == 303
        api = await signed_in.get("/v1/commands", headers={"Authorization": f"Bearer {key}"})
        assert api.status_code == 401
        assert "revoked" in (await signed_in.get("/dashboard/keys")).text

    async def test_another_device_makers_key_is_not_found(
        self, signed_in: httpx.AsyncClient, session: AsyncSession, other_oem: Tenant
    ) -> None:
        [key] = await auth_service.search_api_keys(session, org_id=other_oem.org.id)
        response = await signed_in.post(f"/dashboard/keys/{key.id}/revoke")
        assert response.status_code == 404
