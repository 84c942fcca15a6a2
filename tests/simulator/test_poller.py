"""Polling GET /v1/commands: keyset pages over the inclusive updated_since, with an overlap."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from gridhive.kit.time import isoformat_z
from gridhive.simulator.client import GridhiveClient
from gridhive.simulator.fleet import Fleet, make_specs
from gridhive.simulator.inbox import CommandInbox
from gridhive.simulator.sources import Poller
from tests.simulator.conftest import FakeServer
from tests.simulator.test_inbox import command

T0 = datetime(2030, 1, 1, tzinfo=UTC)
SPECS = make_specs(6, seed=1, prefix="t")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.value = now

    def __call__(self) -> datetime:
        return self.value


def inbox() -> CommandInbox:
    return CommandInbox(Fleet(SPECS), {}, start_s=time.time())


def at(seconds: float) -> str:
    return isoformat_z(T0 + timedelta(seconds=seconds))


def commands(count: int, *, updated_at: str, first: int = 0) -> list[dict[str, object]]:
    return [
        {**command(i % 6, command_id=f"c-{first + i:05d}"), "updated_at": updated_at}
        for i in range(count)
    ]


class TestPaging:
    async def test_thousands_of_commands_sharing_one_instant_are_read_once_each(
        self, fake_client: GridhiveClient, fake_server: FakeServer
    ) -> None:
        # An event writes its commands in one transaction: one updated_at for all of them.
        fake_server.commands = commands(2500, updated_at=at(0)) + commands(
            1200, updated_at=at(1), first=2500
        )
        box = inbox()
        read = await Poller(fake_client, box).poll_once()
        assert read == 3700
        assert box.stats.received == 3700
        assert [q.get("skip") for q in fake_server.command_queries] == ["0", "1000", "2000", "500"]

    async def test_recent_changes_are_read_again_for_the_overlap(
        self, fake_client: GridhiveClient, fake_server: FakeServer
    ) -> None:
        fake_server.commands = commands(3, updated_at=at(0))
        clock = Clock(T0 + timedelta(seconds=1))
        poller = Poller(fake_client, inbox(), overlap_s=30, now=clock)
        await poller.poll_once()
        # A large dispatch commits late: rows may still appear with updated_at at(0).
        fake_server.commands += commands(2, updated_at=at(0), first=3)
        assert await poller.poll_once() == 5
        assert fake_server.command_queries[-1]["updated_since"] == at(-29)
        assert poller.inbox.stats.received == 5
        assert poller.inbox.stats.changed == 0

    async def test_once_quiet_the_next_poll_starts_after_the_newest_row(
        self, fake_client: GridhiveClient, fake_server: FakeServer
    ) -> None:
        fake_server.commands = commands(2500, updated_at=at(0))
        clock = Clock(T0 + timedelta(minutes=10))
        poller = Poller(fake_client, inbox(), overlap_s=30, now=clock)
        await poller.poll_once()
        fake_server.commands += commands(2, updated_at=at(700), first=2500)
        assert await poller.poll_once() == 2  # not the 2,500 of the old event again
        assert fake_server.command_queries[-1]["updated_since"] == "2030-01-01T00:00:00.000001Z"

    async def test_acks_of_the_group_being_paged_wait_for_the_walk(
        self, fake_server: FakeServer
    ) -> None:
        box = inbox()
        acked_while_paging: list[str] = []
        box.receive({**command(1, command_id="other"), "updated_at": at(-60)}, via="webhook")

        def handle(request: httpx.Request) -> httpx.Response:
            if request.method == "GET" and fake_server.command_queries:
                # between pages: the ack of the other command went out, the group's did not
                acked_while_paging.extend(a[0] for a in fake_server.acks)
            return fake_server.handle(request)

        client = GridhiveClient("http://g", "k", transport=httpx.MockTransport(handle))
        workers = [asyncio.create_task(box.worker(client)) for _ in range(2)]
        fake_server.commands = commands(2000, updated_at=at(0))
        poller = Poller(client, box, limit=1000, now=Clock(T0 + timedelta(seconds=1)))
        original = client.commands

        async def slow_commands(**kwargs: Any) -> list[dict[str, Any]]:
            await asyncio.sleep(0.05)  # let the ack workers run between pages
            return await original(**kwargs)

        client.commands = slow_commands  # type: ignore[method-assign]
        await poller.poll_once()
        await box.queue.join()
        for worker in workers:
            worker.cancel()
        await client.aclose()
        assert "other" in acked_while_paging
        assert not any(a.startswith("c-") for a in acked_while_paging)
        assert len(fake_server.acks) == 2001
