"""`gridhive worker` processes against a real local receiver: killed mid-batch, or two at once.

Readiness is observed, never assumed: the receiver records each request as it arrives and the
tests poll it (and the database) against a deadline.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from gridhive.db.engine import is_sqlite
from gridhive.db.session import unit_of_work
from gridhive.webhooks import service
from gridhive.webhooks.models import Delivery, DeliveryState
from tests.factories import Tenant
from tests.workers import helpers
from tests.workers.conftest import CommittedDb
from tests.workers.live_receiver import Arrival, LiveReceiver

pytestmark = pytest.mark.cli

DEADLINE_S = 60.0
LEASE_S = 5  # the shortest lease the settings allow: the fresh worker waits for it to run out


@pytest.fixture
async def live_receiver() -> AsyncIterator[LiveReceiver]:
    receiver = LiveReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
def postgres(committed: CommittedDb) -> None:
    """Several workers at once are a PostgreSQL deployment (SQLite has one writer)."""
    if is_sqlite(committed.url):
        reason = (
            "needs PostgreSQL: runs in the PostgreSQL pass "
            "(GRIDHIVE_TEST_DATABASE_URL=postgresql+asyncpg://...)"
        )
        if os.environ.get("GRIDHIVE_REQUIRE_SERVICES") == "1" and os.environ.get(
            "GRIDHIVE_TEST_DATABASE_URL", ""
        ).startswith("postgresql"):
            pytest.fail(reason)
        pytest.skip(reason)


@contextmanager
def worker_process(
    db: CommittedDb, *, concurrency: int = 8, lease_s: int = 60
) -> Iterator[subprocess.Popen[bytes]]:
    """A `gridhive worker` on the test database; SIGKILLed at the end if still running."""
    env = {
        **os.environ,
        "GRIDHIVE_DATABASE_URL": db.url,
        "GRIDHIVE_RUN_MIGRATIONS_ON_START": "false",
        "GRIDHIVE_LOG_LEVEL": "WARNING",
        "GRIDHIVE_WORKER__LEASE_S": str(lease_s),
        "GRIDHIVE_WORKER__POLL_INTERVAL_S": "0.1",
        "GRIDHIVE_WORKER__CONCURRENCY": str(concurrency),
        "GRIDHIVE_WORKER__RETRY_JITTER": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gridhive.cli.main", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def states(db: CommittedDb) -> dict[str, DeliveryState]:
    async with db.sessionmaker() as session:
        rows = await session.execute(sa.select(Delivery.id, Delivery.state))
        return {str(delivery_id): state for delivery_id, state in rows}


async def all_delivered(db: CommittedDb) -> bool:
    found = await states(db)
    return bool(found) and set(found.values()) == {DeliveryState.DELIVERED}


async def emit_lanes(db: CommittedDb, owner: Tenant, devices: int, per_device: int) -> None:
    """`per_device` messages for each device, interleaved as an event's commands are."""
    async with unit_of_work(db.sessionmaker) as session:
        await service.emit_many(
            session,
            event_type="command.created",
            object_type="command",
            messages=[
                (
                    owner.org.id,
                    f"bat-{d}",
                    {"id": f"bat-{d}#{n}", "device_id": f"bat-{d}"},
                    None,
                    None,
                )
                for n in range(per_device)
                for d in range(devices)
            ],
        )


def first_arrival_order(arrivals: list[Arrival]) -> dict[str, list[str]]:
    """Each device's messages in the order they first arrived (a redelivery is not a new one)."""
    seen: set[str] = set()
    order: dict[str, list[str]] = {}
    for arrival in arrivals:
        if arrival.webhook_id in seen:
            continue
        seen.add(arrival.webhook_id)
        obj = arrival.event_object
        order.setdefault(obj["device_id"], []).append(obj["id"])
    return order


def emitted_order(devices: int, per_device: int) -> dict[str, list[str]]:
    return {f"bat-{d}": [f"bat-{d}#{n}" for n in range(per_device)] for d in range(devices)}


async def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_only_under_the_same_id(
    committed: CommittedDb, live_receiver: LiveReceiver
) -> None:
    oem = await helpers.tenant(committed)
    await helpers.add_endpoint(committed, oem, live_receiver.url)
    await emit_lanes(committed, oem, devices=12, per_device=4)
    live_receiver.answer_first = 10  # then requests hang: the kill lands mid-delivery

    # The killed worker's leases are short, so the test waits little for them to run out; the
    # fresh worker's are long, so that a slow machine does not make it repeat its own sends.
    with worker_process(committed, lease_s=LEASE_S) as doomed:

        async def some_held() -> bool:
            return live_receiver.held >= 3

        await until(some_held, "deliveries held open at the receiver")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)

    async def drained() -> bool:
        return live_receiver.settled()

    # What the worker wrote just before it died may still be unread in the receiver.
    await until(drained, "the killed worker's last requests to be read")
    before_kill = {a.webhook_id for a in live_receiver.arrivals}
    live_receiver.release()

    with worker_process(committed):
        await until(lambda: all_delivered(committed), "every delivery to be recorded")

    delivery_ids = set(await states(committed))
    counts = live_receiver.counts()
    assert set(counts) == delivery_ids  # nothing lost, nothing foreign
    repeated = {webhook_id for webhook_id, n in counts.items() if n > 1}
    assert repeated  # the held ones were on the wire when the worker died
    assert repeated <= before_kill  # only what the killed worker had sent comes again
    bodies: dict[str, set[bytes]] = {}
    for arrival in live_receiver.arrivals:
        bodies.setdefault(arrival.webhook_id, set()).add(arrival.body)
    assert all(len(b) == 1 for b in bodies.values())  # a repeat is the same message
    assert first_arrival_order(live_receiver.arrivals) == emitted_order(12, 4)


async def test_two_workers_deliver_each_message_once_in_each_devices_order(
    committed: CommittedDb, live_receiver: LiveReceiver, postgres: None
) -> None:
    oem = await helpers.tenant(committed)
    await helpers.add_endpoint(committed, oem, live_receiver.url)
    await emit_lanes(committed, oem, devices=100, per_device=3)

    with worker_process(committed), worker_process(committed):
        await until(lambda: all_delivered(committed), "every delivery to be recorded")

    counts = live_receiver.counts()
    assert set(counts) == set(await states(committed))
    assert len(counts) == 300
    assert set(counts.values()) == {1}  # each webhook-id exactly once
    assert first_arrival_order(live_receiver.arrivals) == emitted_order(100, 3)
