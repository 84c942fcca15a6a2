"""The worker inside `gridhive serve` (the app's lifespan) and the `/metrics` page."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gridhive.app import create_app
from gridhive.kit.time import frozen_time, utc_now
from gridhive.webhooks.models import DeliveryState
from tests.workers import helpers
from tests.workers.conftest import CommittedDb, MakeWorker, Receiver, worker_settings


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_show_the_queue_and_the_endpoints(
    committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
) -> None:
    oem = await helpers.tenant(committed)
    await helpers.add_endpoint(committed, oem)
    suspended = await helpers.add_endpoint(committed, oem, "https://b.example/hook")
    await helpers.update_endpoint(committed, suspended.id, status="disabled")
    start = utc_now() - timedelta(minutes=10)
    with frozen_time(start):
        await helpers.emit(committed, oem, ["a", "b", "c"])
    receiver.script = [500]
    await make_worker(ordering="endpoint").run_once()  # "a" fails: two pending behind it

    app = create_app(worker_settings(committed.url), engine=committed.engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)

    def deliveries(state: str) -> float:
        labels = (("channel", "webhook"), ("event_type", "command.created"), ("state", state))
        return found[("gridhive_deliveries", labels)]

    assert deliveries("pending") == 2
    assert deliveries("failed") == 1
    assert found[("gridhive_delivery_queue_due", ())] == 2
    assert found[("gridhive_delivery_queue_oldest_due_age_seconds", ())] >= 600
    assert found[("gridhive_webhook_endpoints", (("status", "enabled"),))] == 1
    assert found[("gridhive_webhook_endpoints", (("status", "disabled"),))] == 1
    assert found[("gridhive_webhook_endpoints", (("status", "suspended"),))] == 0
    assert found[("gridhive_metrics_database_up", ())] == 1
    assert ("gridhive_delivery_attempt_seconds_count", (("channel", "webhook"),)) in found


async def test_serve_runs_the_delivery_loop_in_its_lifespan(committed: CommittedDb) -> None:
    """Nothing listens on port 1: the loop's attempt shows up as a refused connection."""
    oem = await helpers.tenant(committed)
    await helpers.add_endpoint(committed, oem, "http://127.0.0.1:1/hook")
    await helpers.emit(committed, oem, ["battery-1"])
    settings = worker_settings(committed.url, in_process=True, poll_interval_s=0.05)
    app = create_app(settings)

    async with app.router.lifespan_context(app):
        for _ in range(1200):
            [row] = await helpers.deliveries(committed)
            if row.attempts:
                break
            await asyncio.sleep(0.05)

    assert row.state is DeliveryState.FAILED
    assert row.last_error


async def test_no_workers_leaves_the_queue_alone(committed: CommittedDb) -> None:
    oem = await helpers.tenant(committed)
    await helpers.add_endpoint(committed, oem, "http://127.0.0.1:1/hook")
    await helpers.emit(committed, oem, ["battery-1"])
    app = create_app(worker_settings(committed.url, in_process=False, poll_interval_s=0.05))

    async with app.router.lifespan_context(app):
        await asyncio.sleep(0.3)

    [row] = await helpers.deliveries(committed)
    assert (row.state, row.attempts) == (DeliveryState.PENDING, 0)
