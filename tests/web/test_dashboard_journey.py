"""The utility's and the device maker's journeys through the dashboard, in a real browser.

The utility acts only through the pages. The device maker's cloud is simulated for real: a
local receiver verifies each signed webhook with the `standardwebhooks` package and
acknowledges `command.created` with `PATCH /v1/command/{id}` and its key, over HTTP. With
GRIDHIVE_SCREENSHOTS=1 the pages are also saved to docs/screenshots/dashboard-*.png.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.factories import Tenant, create_tenant
from tests.web.conftest import LiveServer, _free_port
from tests.web.dashboard_support import Fleet, seed_fleet

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
Handler = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Receiver:
    """A device maker's webhook endpoint: verifies signatures, keeps what it accepted."""

    url: str
    secret: str | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    handle: Handler | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        if self.secret is None:
            return Response(status_code=503)  # not configured yet: gridhive retries
        message: dict[str, Any] = Webhook(self.secret).verify(body, dict(request.headers))
        self.received.append(message)
        self.arrived.set()
        if self.handle is not None:
            await self.handle(message)
        return Response(status_code=204)


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    port = _free_port()
    hook = Receiver(url=f"http://127.0.0.1:{port}/hooks")
    app = Starlette(routes=[Route("/hooks", hook.endpoint, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)  # waiting for readiness, not for timing
    try:
        yield hook
    finally:
        server.should_exit = True
        await task


async def screenshot(page: Any, name: str) -> None:
    if os.environ.get("GRIDHIVE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=True)


async def sign_in(page: Any, live: LiveServer, tenant: Tenant) -> None:
    from playwright.async_api import expect

    await page.goto(f"{live.base_url}/dashboard/sign-in")
    await page.get_by_label("API key").fill(tenant.key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator(".org-name")).to_contain_text(tenant.org.name)


@pytest.fixture
async def fleet(live: LiveServer) -> Fleet:
    async with live.sessionmaker() as session:
        utility = await create_tenant(session, kind="utility", name="Acme Power")
        oem = await create_tenant(session, kind="oem", name="Volt Batteries")
        return await seed_fleet(session, utility, oem)


async def oem_acknowledges_commands(live: LiveServer, fleet: Fleet, hook: Receiver) -> None:
    """Register the receiver with the OEM's key, and ack each command it is told about."""

    async def acknowledge(message: dict[str, Any]) -> None:
        if message["event_type"] != "command.created":
            return
        command_id = message["event_object"]["id"]
        async with httpx.AsyncClient(base_url=live.base_url) as http:
            answer = await http.patch(
                f"/v1/command/{command_id}", json={"device_status": "OK"}, headers=fleet.oem.headers
            )
        assert answer.status_code == 200, answer.text

    async with httpx.AsyncClient(base_url=live.base_url) as http:
        created = await http.post(
            "/v1/webhook-endpoints",
            json={"url": hook.url, "event_types": ["command.created"]},
            headers=fleet.oem.headers,
        )
    assert created.status_code == 200, created.text
    hook.secret = created.json()["secret"]
    hook.handle = acknowledge


async def test_the_utility_dispatches_watches_acks_and_cancels(
    live: LiveServer, page: Any, fleet: Fleet
) -> None:
    from playwright.async_api import expect

    async with receiver() as hook:
        await oem_acknowledges_commands(live, fleet, hook)
        await sign_in(page, live, fleet.utility)
        await expect(page.get_by_role("heading", name="Events")).to_be_visible()

        await page.get_by_role("link", name="New event").click()
        await page.get_by_label("Program").select_option(label="Summer Peak Rewards")
        await expect(page.get_by_label("Target ids")).to_be_empty()  # the whole program
        await page.get_by_label("Setpoint (kW)").first.fill("4")
        await screenshot(page, "create-event")
        await page.get_by_role("button", name="Dispatch event").click()

        await expect(page.get_by_text("Event dispatched")).to_be_visible()
        await expect(page.locator("#event-status")).to_have_text("UPCOMING")
        await expect(page.get_by_text("2 of 2 devices targeted get commands")).to_be_visible()
        # Each battery: its discharge, and a pre-charge before it (state of charge unknown).
        await expect(page.locator("#commands-total")).to_have_text("4")
        # From here on the page is never reloaded: the marker would vanish with a reload.
        await page.evaluate("window.stillTheSamePage = true")

        await expect(page.locator("#commands-acknowledged")).to_have_text("4")
        await expect(page.locator("#commands-pending")).to_have_text("0")
        rows = page.locator("#device-commands tbody tr")
        await expect(rows).to_have_count(4)
        for i in range(4):
            await expect(rows.nth(i).locator(".badge").last).to_have_text("OK")
        assert await page.evaluate("window.stillTheSamePage") is True
        assert len(hook.received) == 4
        await expect(page.locator("#power-chart")).to_be_visible()
        drawn = "Chart.getChart('power-chart').data.datasets.map(d => d.label)"
        assert await page.evaluate(drawn) == ["Requested kW", "Expected kW", "Delivered kW"]
        await screenshot(page, "event-acknowledged")

        await page.get_by_role("link", name="Cancel event").click()
        await expect(page.get_by_role("heading", name="Cancel this event?")).to_be_visible()
        await page.get_by_role("button", name="Yes, cancel the event").click()
        await expect(page.locator("#event-status")).to_have_text("CANCELED")
        await expect(page.get_by_role("status")).to_contain_text("Event canceled")
        await expect(rows.first.locator(".badge.CANCELED")).to_have_text("CANCELED")
        await expect(page.get_by_role("link", name="Cancel event")).to_have_count(0)

        await page.get_by_role("link", name="Enrollments").click()
        await expect(page.locator("table.enrollments tbody tr")).to_have_count(2)
        await page.get_by_role("link", name="Fleet health").click()
        await expect(page.locator("#soc-chart")).to_be_visible()
        assert await page.evaluate("Chart.getChart('soc-chart').data.labels.length") == 10


async def test_the_device_maker_registers_a_webhook_and_sends_a_test(
    live: LiveServer, page: Any, fleet: Fleet
) -> None:
    from playwright.async_api import expect

    async with receiver() as hook:
        await sign_in(page, live, fleet.oem)
        await page.get_by_role("link", name="Webhooks").click()
        await page.get_by_label("URL").fill(hook.url)
        await page.get_by_role("button", name="Create endpoint").click()

        secret = page.locator("#secret-value")
        await expect(secret).to_contain_text("whsec_")
        hook.secret = await secret.inner_text()
        await expect(page.get_by_text("shown only once")).to_be_visible()
        await page.get_by_role("link", name="Open the endpoint").click()
        await expect(page.locator("#secret-value")).to_have_count(0)  # never shown again

        await page.get_by_role("button", name="Send test").click()
        await expect(page.get_by_text("Test message queued")).to_be_visible()
        log = page.locator("#delivery-log tbody tr").first
        await expect(log).to_contain_text("webhook.test")
        await expect(log.locator(".badge")).to_have_text("delivered")  # refreshed in place
        await expect(log).to_contain_text("HTTP 204")
        await hook.arrived.wait()
        [message] = hook.received
        assert message["event_type"] == "webhook.test"
        assert json.dumps(message)  # verified with the secret shown once
        await screenshot(page, "webhooks")
