"""The delivery loop against a scripted receiver, with the clock moved by hand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks import Webhook

from gridhive.db.session import unit_of_work
from gridhive.kit.time import frozen_time
from gridhive.queue.backoff import MAX_ATTEMPTS, RETRY_SCHEDULE
from gridhive.webhooks import endpoints as endpoint_service
from gridhive.webhooks import service
from gridhive.webhooks.models import DeliveryState, EndpointStatus, WebhookEndpoint
from gridhive.workers.runner import DeliveryWorker
from tests.factories import Tenant
from tests.workers import helpers
from tests.workers.conftest import CommittedDb, MakeWorker, Receiver, worker_settings

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SUBJECTS = ["battery-0", "battery-1", "battery-2", "battery-3", "battery-4"]


def subjects(received: list[object]) -> list[str]:
    return [r.json["event_object"]["id"] for r in received]  # type: ignore[attr-defined]


class TestSignedDelivery:
    async def test_the_receiver_verifies_the_signature_and_reads_the_envelope(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        endpoint = await helpers.add_endpoint(committed, oem)
        await helpers.emit(committed, oem, ["battery-1"])

        assert await make_worker().drain() == 1

        [got] = receiver.delivered
        body = Webhook(endpoint.secret).verify(got.body, got.headers)
        assert body["event_type"] == "command.created"
        assert body["event_object"] == {
            "id": "battery-1",
            "device_id": "battery-1",
            "object_type": "command",
        }
        assert body["timestamp"].endswith("Z")
        assert got.headers["content-type"] == "application/json"
        [row] = await helpers.deliveries(committed)
        assert got.webhook_id == str(row.id)
        assert (row.state, row.attempts, row.last_status) == (DeliveryState.DELIVERED, 1, 204)
        assert row.delivered_at is not None
        [attempt] = await helpers.attempts(committed, row.id)
        assert (attempt.attempt, attempt.status_code, attempt.error) == (1, 204, None)

    async def test_after_a_rotation_both_secrets_verify_for_a_while(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        endpoint = await helpers.add_endpoint(committed, oem)
        old_secret = endpoint.secret
        async with committed.sessionmaker() as session:
            loaded = await session.get_one(type(endpoint), endpoint.id)
            rotated = await endpoint_service.rotate_secret(
                session, loaded, previous_valid=timedelta(hours=1)
            )
            new_secret = rotated.secret
            await session.commit()
        await helpers.emit(committed, oem, ["battery-1"])

        await make_worker().drain()

        [got] = receiver.delivered
        assert len(got.headers["webhook-signature"].split(" ")) == 2
        Webhook(new_secret).verify(got.body, got.headers)
        Webhook(old_secret).verify(got.body, got.headers)


class TestRetries:
    async def test_a_receiver_that_fails_times_out_then_recovers_gets_everything_in_order(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        await helpers.add_endpoint(committed, oem)
        with frozen_time(T0):
            await helpers.emit(committed, oem, SUBJECTS)
        receiver.script = [500, "timeout", 503]
        worker = make_worker(ordering="endpoint")

        assert await worker.drain(T0) == 1  # the first fails; the rest wait behind it
        assert await worker.drain(T0 + timedelta(seconds=4)) == 0
        assert await worker.drain(T0 + timedelta(seconds=5)) == 1  # times out
        assert await worker.drain(T0 + timedelta(seconds=35)) == 1  # 503
        assert await worker.drain(T0 + timedelta(seconds=155)) == 5  # recovered

        assert subjects(receiver.delivered) == SUBJECTS
        first = [r for r in receiver.requests if r.json["event_object"]["id"] == "battery-0"]
        assert len(first) == 4
        assert len({r.webhook_id for r in first}) == 1  # the same webhook-id on every retry
        # Nothing later was sent while the first was being retried.
        assert subjects(receiver.requests[:4]) == ["battery-0"] * 4
        rows = await helpers.deliveries(committed)
        assert [r.state for r in rows] == [DeliveryState.DELIVERED] * 5
        log = await helpers.attempts(committed, rows[0].id)
        assert [a.status_code for a in log] == [500, None, 503, 204]
        assert log[1].error is not None
        assert log[1].error.startswith("timeout")
        assert rows[0].attempts == 4

    async def test_retries_follow_the_backoff_schedule_then_dead_letter(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        await helpers.add_endpoint(committed, oem)
        with frozen_time(T0):
            await helpers.emit(committed, oem, ["first", "second"])
        receiver.default = 500
        worker = make_worker(ordering="endpoint")

        now = T0
        waits = []
        for _ in range(MAX_ATTEMPTS):
            assert await worker.run_once(now) == 1
            head = (await helpers.deliveries(committed))[0]
            if head.state is DeliveryState.FAILED:
                waits.append(head.due_at - now)
                now = head.due_at
        assert waits == list(RETRY_SCHEDULE)
        assert sum(waits, timedelta()) == timedelta(hours=7, minutes=42, seconds=35)
        head, _ = await helpers.deliveries(committed)
        assert (head.state, head.attempts) == (DeliveryState.DEAD, MAX_ATTEMPTS)
        assert head.last_status == 500
        assert subjects(receiver.requests) == ["first"] * MAX_ATTEMPTS

        # The dead letter no longer holds the line.
        assert await worker.run_once(now) == 1
        assert subjects(receiver.requests)[-1] == "second"
        assert (await helpers.deliveries(committed))[1].attempts == 1

    async def test_a_redirect_is_a_failure_and_is_not_followed(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        await helpers.add_endpoint(committed, oem)
        await helpers.emit(committed, oem, ["battery-1"])
        receiver.script = [302]

        await make_worker().drain()

        assert len(receiver.requests) == 1
        [row] = await helpers.deliveries(committed)
        assert (row.state, row.last_status) == (DeliveryState.FAILED, 302)


class TestLeases:
    async def test_a_crash_mid_delivery_is_delivered_again_after_the_lease(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        await helpers.add_endpoint(committed, oem)
        with frozen_time(T0):
            await helpers.emit(committed, oem, ["battery-1", "battery-2"])
        crashed = make_worker(ordering="endpoint")
        [job] = await crashed.claim(T0)  # claimed, then the process died: nothing recorded

        survivor = make_worker(ordering="endpoint")
        assert await survivor.drain(T0 + timedelta(seconds=59)) == 0  # still leased
        assert await survivor.drain(T0 + timedelta(seconds=61)) == 2

        assert receiver.delivered[0].webhook_id == str(job.delivery_id)
        assert subjects(receiver.delivered) == ["battery-1", "battery-2"]
        rows = await helpers.deliveries(committed)
        assert [(r.state, r.attempts) for r in rows] == [(DeliveryState.DELIVERED, 1)] * 2

    async def test_a_worker_that_lost_its_lease_does_not_overwrite_the_outcome(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        await helpers.add_endpoint(committed, oem)
        with frozen_time(T0):
            await helpers.emit(committed, oem, ["battery-1"])
        slow, fast = make_worker(), make_worker()
        [job] = await slow.claim(T0)
        assert await fast.drain(T0 + timedelta(minutes=2)) == 1
        receiver.default = 500

        assert await slow.process(job, T0 + timedelta(minutes=3)) is None

        [row] = await helpers.deliveries(committed)
        assert (row.state, row.attempts) == (DeliveryState.DELIVERED, 1)
        assert [a.status_code for a in await helpers.attempts(committed, row.id)] == [204, 500]


class TestEndpointChanges:
    async def test_a_new_url_gets_the_waiting_retry_at_once(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        endpoint = await helpers.add_endpoint(committed, oem)
        with frozen_time(T0):
            await helpers.emit(committed, oem, ["a", "b"])
        receiver.script = [500]
        worker = make_worker(ordering="endpoint")
        assert await worker.drain(T0) == 1
        later = T0 + timedelta(seconds=1)  # before the 5 s retry

        with frozen_time(later):
            await helpers.update_endpoint(committed, endpoint.id, url="https://new.example/hook")
        assert await worker.drain(later) == 2

        assert [r.headers["host"] for r in receiver.delivered] == ["new.example"] * 2
        assert subjects(receiver.delivered) == ["a", "b"]

    async def test_deleting_an_endpoint_mid_delivery_loses_nothing_else(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        endpoint = await helpers.add_endpoint(committed, oem)
        await helpers.emit(committed, oem, ["a"])
        worker = make_worker()
        [job] = await worker.claim(T0 + timedelta(days=365 * 10))
        async with committed.sessionmaker() as session:
            await endpoint_service.delete_endpoint(
                session, await session.get_one(type(endpoint), endpoint.id)
            )
            await session.commit()

        assert await worker.process(job) is None
        assert await helpers.deliveries(committed) == []


class TestSuspension:
    async def test_an_endpoint_failing_for_24_hours_is_suspended_and_resumes_in_order(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        endpoint = await helpers.add_endpoint(committed, oem)
        with frozen_time(T0):
            await helpers.emit(committed, oem, SUBJECTS)
        receiver.default = 500
        worker = make_worker(ordering="endpoint")

        now = T0
        for _ in range(100):
            await worker.run_once(now)
            status = (await helpers.endpoint(committed, endpoint.id)).status
            if status is not EndpointStatus.ENABLED:
                break
            waiting = [
                r for r in await helpers.deliveries(committed) if r.state is DeliveryState.FAILED
            ]
            now = waiting[0].due_at if waiting else now  # else the next one is due now
        suspended = await helpers.endpoint(committed, endpoint.id)
        assert suspended.status is EndpointStatus.SUSPENDED
        assert suspended.failing_since == T0
        assert suspended.suspended_at is not None
        assert suspended.suspended_at >= T0 + timedelta(hours=24)
        states = [r.state for r in await helpers.deliveries(committed)]
        dead = states.count(DeliveryState.DEAD)
        assert 1 <= dead < len(SUBJECTS)
        assert states[:dead] == [DeliveryState.DEAD] * dead  # in order: a dead prefix

        # Suspended: nothing is tried, and new messages join the backlog.
        tried = len(receiver.requests)
        assert await worker.drain(now + timedelta(days=2)) == 0
        assert len(receiver.requests) == tried
        with frozen_time(now + timedelta(days=2)):
            await helpers.emit(committed, oem, ["battery-5"])
            receiver.default = 204
            await helpers.update_endpoint(committed, endpoint.id, status="enabled")

        await worker.drain(now + timedelta(days=2))

        assert subjects(receiver.delivered) == [*SUBJECTS[dead:], "battery-5"]
        resumed = await helpers.endpoint(committed, endpoint.id)
        assert resumed.status is EndpointStatus.ENABLED
        assert resumed.failing_since is None

    async def test_a_success_resets_the_failing_run(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        endpoint = await helpers.add_endpoint(committed, oem)
        with frozen_time(T0):
            await helpers.emit(committed, oem, ["a"])
        receiver.script = [500]
        worker = make_worker()
        await worker.drain(T0)
        assert (await helpers.endpoint(committed, endpoint.id)).failing_since == T0
        await worker.drain(T0 + timedelta(seconds=5))
        assert (await helpers.endpoint(committed, endpoint.id)).failing_since is None

    async def test_a_disabled_endpoint_holds_its_backlog_and_gets_nothing_new(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        endpoint = await helpers.add_endpoint(committed, oem)
        await helpers.emit(committed, oem, ["before"])
        await helpers.update_endpoint(committed, endpoint.id, status="disabled")
        await helpers.emit(committed, oem, ["while-disabled"])
        worker = make_worker()
        assert await worker.drain() == 0

        await helpers.update_endpoint(committed, endpoint.id, status="enabled")
        assert await worker.drain() == 1
        assert subjects(receiver.delivered) == ["before"]


class TestConcurrency:
    async def test_many_endpoints_are_delivered_to_at_once(self, committed: CommittedDb) -> None:
        in_flight = peak = 0

        async def slow_receiver(request: httpx.Request) -> httpx.Response:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.05)
            in_flight -= 1
            return httpx.Response(204)

        oem = await helpers.tenant(committed)
        for i in range(20):
            await helpers.add_endpoint(committed, oem, f"https://e{i}.example/hook")
        await helpers.emit(committed, oem, ["battery-1"])
        client = httpx.AsyncClient(transport=httpx.MockTransport(slow_receiver))
        worker = DeliveryWorker(
            committed.sessionmaker,
            worker_settings(committed.url, concurrency=8),
            http_client=client,
        )
        try:
            assert await worker.drain() == 20
        finally:
            await client.aclose()
            await worker.aclose()
        assert peak == 8  # the worker's whole concurrency at once, not one endpoint after another

    async def test_an_endpoint_gets_at_most_its_window_in_flight(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        await helpers.add_endpoint(committed, oem)
        with frozen_time(T0):
            await helpers.emit(committed, oem, [f"battery-{i}" for i in range(10)])
        worker = make_worker(endpoint_window=4)

        assert [len(await worker.claim(T0)) for _ in range(2)] == [4, 0]  # 4 leased, in flight
        assert await worker.drain(T0 + timedelta(minutes=2)) == 10  # leases ran out: again
        assert len(receiver.delivered) == 10


def lanes(received: list[object]) -> dict[str, list[str]]:
    """Each subject's messages (their `seq` payload field) in the order they arrived."""
    order: dict[str, list[str]] = {}
    for r in received:
        obj = r.json["event_object"]  # type: ignore[attr-defined]
        order.setdefault(obj["device_id"], []).append(obj["id"])
    return order


async def emit_numbered(db: CommittedDb, owner: Tenant, devices: list[str]) -> None:
    """One message per entry, in order, its id numbering the device's messages: `a#0`, ..."""
    counts: dict[str, int] = {}
    async with unit_of_work(db.sessionmaker) as session:
        rows = []
        for device in devices:
            n = counts[device] = counts.get(device, -1) + 1
            rows.append((owner.org.id, device, {"id": f"{device}#{n}", "device_id": device}))
        await service.emit_many(
            session,
            event_type="command.created",
            object_type="command",
            messages=[(org, subject, body, None, None) for org, subject, body in rows],
        )


class TestSubjectOrdering:
    """The default: a device's messages in order, different devices in parallel."""

    async def test_each_device_gets_its_messages_in_order_and_devices_go_together(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        await helpers.add_endpoint(committed, oem)
        with frozen_time(T0):
            await emit_numbered(committed, oem, ["a", "b", "a", "c", "b", "a"])
        worker = make_worker()

        assert await worker.run_once(T0) == 3  # a#0, b#0, c#0: one per device
        assert await worker.run_once(T0) == 2  # a#1, b#1
        assert await worker.run_once(T0) == 1  # a#2
        assert await worker.run_once(T0) == 0

        assert lanes(receiver.delivered) == {
            "a": ["a#0", "a#1", "a#2"],
            "b": ["b#0", "b#1"],
            "c": ["c#0"],
        }

    async def test_a_failed_message_holds_its_device_only(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        await helpers.add_endpoint(committed, oem)
        with frozen_time(T0):
            await emit_numbered(committed, oem, ["a", "b", "a", "b", "a"])
        receiver.script = [500]  # a#0's first try
        worker = make_worker()

        assert await worker.drain(T0) == 3  # a#0 fails; b#0 and b#1 go; a#1, a#2 wait
        assert lanes(receiver.delivered) == {"b": ["b#0", "b#1"]}
        assert await worker.drain(T0 + timedelta(seconds=5)) == 3  # the retry, then the rest

        assert lanes(receiver.delivered)["a"] == ["a#0", "a#1", "a#2"]
        first = [r for r in receiver.requests if r.json["event_object"]["id"] == "a#0"]
        assert len({r.webhook_id for r in first}) == 1
        assert len(first) == 2

    async def test_an_endpoint_that_is_down_gets_one_request_per_retry_step(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        endpoint = await helpers.add_endpoint(committed, oem)
        devices = [f"battery-{i}" for i in range(20)]
        with frozen_time(T0):
            await helpers.emit(committed, oem, devices)
        receiver.default = 500
        worker = make_worker(endpoint_window=4)

        assert await worker.drain(T0) == 4  # the first window finds it down
        assert (await helpers.endpoint(committed, endpoint.id)).failing_since == T0
        assert await worker.drain(T0 + timedelta(seconds=5)) == 1  # only the oldest is retried
        assert await worker.drain(T0 + timedelta(seconds=35)) == 1
        assert len(receiver.requests) == 6

        receiver.default = 204
        delivered = await worker.drain(T0 + timedelta(minutes=3))

        assert delivered == 20
        assert sorted(subjects(receiver.delivered)) == sorted(devices)
        rows = await helpers.deliveries(committed)
        assert {r.state for r in rows} == {DeliveryState.DELIVERED}
        assert (await helpers.endpoint(committed, endpoint.id)).failing_since is None

    async def test_a_suspended_endpoint_keeps_its_backlog_and_delivers_it_in_order(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        endpoint = await helpers.add_endpoint(committed, oem)
        await helpers.update_endpoint(committed, endpoint.id, status="disabled")
        async with unit_of_work(committed.sessionmaker) as session:
            loaded = await session.get_one(WebhookEndpoint, endpoint.id)
            loaded.status = EndpointStatus.SUSPENDED  # as 24 h of failures leave it
        await emit_numbered(committed, oem, ["a", "b", "a", "a", "b"])
        worker = make_worker()
        assert await worker.drain() == 0

        await helpers.update_endpoint(committed, endpoint.id, status="enabled")
        assert await worker.drain() == 5

        assert lanes(receiver.delivered) == {"a": ["a#0", "a#1", "a#2"], "b": ["b#0", "b#1"]}


class TestLoop:
    async def test_the_long_running_loop_delivers_and_stops_cleanly(
        self, committed: CommittedDb, receiver: Receiver, make_worker: MakeWorker
    ) -> None:
        oem = await helpers.tenant(committed)
        await helpers.add_endpoint(committed, oem)
        worker = make_worker(poll_interval_s=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await helpers.emit(committed, oem, SUBJECTS)

        for _ in range(1200):
            if len(receiver.delivered) == len(SUBJECTS):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 5)

        assert subjects(receiver.delivered) == SUBJECTS


@pytest.mark.parametrize("address", ["127.0.0.1", "[::1]", "10.1.2.3", "169.254.169.254"])
async def test_private_addresses_are_refused_at_connection_time(
    committed: CommittedDb, address: str
) -> None:
    """Registered while allowed (or a name that later resolves privately): still refused."""
    oem = await helpers.tenant(committed)
    await helpers.add_endpoint(committed, oem, f"http://{address}:9/hook")
    await helpers.emit(committed, oem, ["battery-1"])
    settings = worker_settings(committed.url)
    settings.webhooks.allow_private = False
    worker = DeliveryWorker(committed.sessionmaker, settings)
    try:
        assert await worker.drain() == 1
    finally:
        await worker.aclose()
    [row] = await helpers.deliveries(committed)
    assert row.state is DeliveryState.FAILED
    assert row.last_error is not None
    assert "non-public" in row.last_error
