"""End to end on a committed database: the homeowner's request reaches the OEM's webhook,
signed per Standard Webhooks, in the envelope of every gridhive message."""

from __future__ import annotations

import httpx
from standardwebhooks import Webhook

from gridhive.app import create_app
from gridhive.webhooks.models import DeliveryState
from tests.factories import create_device, create_site, site_token
from tests.workers import helpers
from tests.workers.conftest import CommittedDb, MakeWorker, Receiver, worker_settings


async def test_the_oem_receives_a_signed_settings_apply(
    committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
) -> None:
    oem = await helpers.tenant(committed)
    endpoint = await helpers.add_endpoint(committed, oem)
    async with committed.sessionmaker() as session:
        site = await create_site(session, oem, "home-42")
        await create_device(session, site, "pw-1")
        homeowner = await site_token(session, oem, site)
    app = create_app(worker_settings(committed.url, in_process=False), engine=committed.engine)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.post(
                "/v1/site/home-42/device/pw-1/settings",
                json={"backup_reserve_percentage": 40, "mode": "BACKUP"},
                headers=homeowner,
            )
    assert response.status_code == 200

    assert await make_worker().drain() == 1

    [got] = receiver.delivered
    body = Webhook(endpoint.secret).verify(got.body, got.headers)
    assert set(body) == {"event_type", "event_object", "timestamp"}
    assert body["event_type"] == "settings.apply"
    assert body["event_object"] == {**response.json(), "object_type": "settings_request"}
    assert body["timestamp"].endswith("Z")
    [row] = await helpers.deliveries(committed)
    assert got.webhook_id == str(row.id)
    assert row.state is DeliveryState.DELIVERED
