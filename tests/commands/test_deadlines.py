"""Ack deadlines: a command still PENDING 15 minutes after it reached its OEM is sent again.

The delivery worker runs on the test's session against a scripted receiver, and the periodic
sweep runs through the scheduler; the clock is moved by hand.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands import deadlines
from gridhive.commands import service as command_service
from gridhive.commands.models import Command
from gridhive.commands.schemas import CommandAck
from gridhive.config import MqttSettings, SchedulerSettings, Settings, WorkerSettings
from gridhive.kit.time import frozen_time
from gridhive.webhooks import endpoints
from gridhive.webhooks.models import DeliveryMode, OutboundMessage
from gridhive.webhooks.schemas import WebhookEndpointCreate
from gridhive.workers.runner import DeliveryWorker
from gridhive.workers.schedule import periodic_jobs
from gridhive.workers.scheduler import Scheduler
from tests.events.test_ticks import T0, Fleet, action, commands_of, dispatch, make_fleet, maker
from tests.factories import Tenant
from tests.workers.conftest import Receiver

DEADLINE = timedelta(minutes=15)


def settings() -> Settings:
    return Settings(
        log_json=False,
        worker=WorkerSettings(retry_jitter=0, concurrency=8),
        scheduler=SchedulerSettings(retry_jitter=0),
        mqtt=MqttSettings(url=None),
    )


class Oem:
    """One battery's OEM: its endpoint behind `receiver`, the delivery worker, the sweep."""

    def __init__(self, session: AsyncSession, fleet: Fleet, receiver: Receiver) -> None:
        self.session = session
        self.fleet = fleet
        self.receiver = receiver
        http = httpx.AsyncClient(transport=httpx.MockTransport(receiver))
        self.worker = DeliveryWorker(
            maker(session), settings(), http_client=http, worker_id="test-worker"
        )
        sweep = [p for p in periodic_jobs(settings()) if p.kind == deadlines.KIND]
        self.scheduler = Scheduler(
            maker(session), settings(), worker_id="test-scheduler", periodic=sweep
        )

    async def at(self, now: datetime) -> None:
        """Everything due at `now`: deliveries, then the sweep, then what the sweep sent."""
        with frozen_time(now):
            await self.worker.drain(now)
            await self.scheduler.seed(now - timedelta(minutes=1))
            await self.scheduler.drain(now)
            await self.worker.drain(now)

    def received(self, command_id: uuid.UUID) -> list[str]:
        """The webhook ids of the messages received about the command, in order."""
        return [
            r.webhook_id
            for r in self.receiver.delivered
            if r.json["event_object"].get("id") == str(command_id)
        ]


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def fleet(session: AsyncSession, utility: Tenant, oem: Tenant) -> Fleet:
    return await make_fleet(session, utility, oem, {"home-1": ["b-1"]})


async def add_endpoint(session: AsyncSession, fleet: Fleet) -> None:
    await endpoints.create_endpoint(
        session,
        org_id=fleet.oem.org.id,
        data=WebhookEndpointCreate(url="https://oem.example/hook", event_types=None),
        allow_private=True,
    )
    await session.commit()


async def discharge_command(session: AsyncSession, fleet: Fleet) -> Command:
    """An event 3 hours from T0; its discharge command (the pre-charge starts at T0)."""
    with frozen_time(T0):
        event = await dispatch(session, fleet, [action(T0 + timedelta(hours=3))])
    [command] = [c for c in await commands_of(session, event.id) if not c.is_preparatory_action]
    return command


class TestResends:
    async def test_exactly_three_resends_with_new_delivery_ids_and_the_same_command(
        self, session: AsyncSession, fleet: Fleet, receiver: Receiver
    ) -> None:
        await add_endpoint(session, fleet)
        command = await discharge_command(session, fleet)
        oem = Oem(session, fleet, receiver)
        await oem.at(T0)
        assert len(oem.received(command.id)) == 1

        await oem.at(T0 + DEADLINE - timedelta(minutes=1))
        assert len(oem.received(command.id)) == 1
        for minutes in range(15, 120, 1):
            await oem.at(T0 + timedelta(minutes=minutes))

        ids = oem.received(command.id)
        assert len(ids) == 4  # the first send and three resends
        assert len(set(ids)) == 4
        bodies = [
            r.json
            for r in receiver.delivered
            if r.json["event_object"].get("id") == str(command.id)
        ]
        assert {b["event_type"] for b in bodies} == {"command.created"}
        assert {b["event_object"]["device_status"] for b in bodies} == {"PENDING"}
        [stored] = [c for c in await commands_of(session, command.event_id) if c.id == command.id]
        assert stored.resend_count == 3

    async def test_resends_follow_each_delivery_by_the_deadline(
        self, session: AsyncSession, fleet: Fleet, receiver: Receiver
    ) -> None:
        await add_endpoint(session, fleet)
        command = await discharge_command(session, fleet)
        oem = Oem(session, fleet, receiver)
        await oem.at(T0)
        await oem.at(T0 + DEADLINE)
        assert len(oem.received(command.id)) == 2
        await oem.at(T0 + DEADLINE + DEADLINE - timedelta(minutes=1))
        assert len(oem.received(command.id)) == 2
        await oem.at(T0 + DEADLINE + DEADLINE)
        assert len(oem.received(command.id)) == 3

    async def test_none_after_an_ack(
        self, session: AsyncSession, fleet: Fleet, receiver: Receiver
    ) -> None:
        await add_endpoint(session, fleet)
        command = await discharge_command(session, fleet)
        oem = Oem(session, fleet, receiver)
        await oem.at(T0)
        with frozen_time(T0 + timedelta(minutes=3)):
            await command_service.acknowledge(
                session,
                tenant_id=fleet.oem.org.id,
                command_id=command.id,
                ack=CommandAck(device_status="OK"),
            )
            await session.commit()

        await oem.at(T0 + timedelta(hours=1))

        assert len(oem.received(command.id)) == 1

    async def test_none_while_the_first_delivery_is_still_failing(
        self, session: AsyncSession, fleet: Fleet, receiver: Receiver
    ) -> None:
        await add_endpoint(session, fleet)
        command = await discharge_command(session, fleet)
        receiver.default = 503
        oem = Oem(session, fleet, receiver)
        for minutes in range(0, 60, 5):
            await oem.at(T0 + timedelta(minutes=minutes))

        sent = await session.scalars(
            sa.select(OutboundMessage.id).where(OutboundMessage.command_id == command.id)
        )
        assert len(sent.all()) == 1
        assert receiver.requests, "the endpoint was tried"
        assert oem.received(command.id) == []


class TestPollingMode:
    async def test_the_deadline_runs_from_the_message_and_the_poller_sees_it_again(
        self, session: AsyncSession, fleet: Fleet, receiver: Receiver
    ) -> None:
        await endpoints.set_delivery_mode(
            session, fleet.oem.org.id, DeliveryMode.POLLING, mqtt_available=False
        )
        await session.commit()
        command = await discharge_command(session, fleet)
        oem = Oem(session, fleet, receiver)

        await oem.at(T0 + DEADLINE - timedelta(minutes=1))
        [before] = [c for c in await commands_of(session, command.event_id) if c.id == command.id]
        assert before.resend_count == 0
        await oem.at(T0 + DEADLINE)

        [after] = [c for c in await commands_of(session, command.event_id) if c.id == command.id]
        assert after.resend_count == 1
        assert after.updated_at == T0 + DEADLINE  # GET /v1/commands?updated_since= finds it
        types = await session.scalars(
            sa.select(OutboundMessage.event_type).where(OutboundMessage.command_id == command.id)
        )
        assert types.all() == ["command.created", "command.created"]
        assert receiver.requests == []
