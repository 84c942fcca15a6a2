"""Polling GET /v1/commands: keyset pages over the inclusive updated_since, with an overlap."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

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

    async def test_the_next_poll_starts_a_little_before_the_newest_change(
        self, fake_client: GridhiveClient, fake_server: FakeServer
    ) -> None:
        fake_server.commands = commands(3, updated_at=at(0))
        poller = Poller(fake_client, inbox(), overlap_s=5)
        await poller.poll_once()
        fake_server.commands += commands(2, updated_at=at(60), first=3)
        # the first three are within 5 s of the newest change seen so far: read again
        assert await poller.poll_once() == 5
        assert fake_server.command_queries[-1]["updated_since"] == at(-5)
        assert await poller.poll_once() == 2
        assert fake_server.command_queries[-1]["updated_since"] == at(55)
        assert poller.inbox.stats.received == 5
        assert poller.inbox.stats.changed == 0

    async def test_acks_wait_while_the_pages_are_read(self, fake_server: FakeServer) -> None:
        box = inbox()
        gate_while_reading: list[bool] = []

        def handle(request: httpx.Request) -> httpx.Response:
            gate_while_reading.append(box.gate.is_set())
            return fake_server.handle(request)

        client = GridhiveClient("http://g", "k", transport=httpx.MockTransport(handle))
        fake_server.commands = commands(2, updated_at=at(0))
        await Poller(client, box).poll_once()
        await client.aclose()
        assert gate_while_reading == [False]
        assert box.gate.is_set()
