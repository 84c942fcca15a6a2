"""Timed webhooks: command.started / command.ended and event status changes at their times.

The scheduler runs on the test's session (each of its units of work is a savepoint) and the
clock is moved by hand through every time at which something of the event starts or ends.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridhive.auth.models import OrgKind
from gridhive.auth.service import Principal
from gridhive.commands import service as command_service
from gridhive.commands.models import Command, DeviceStatus
from gridhive.commands.schemas import CommandAck, CommandRead
from gridhive.config import SchedulerSettings, Settings
from gridhive.events import service as event_service
from gridhive.events import ticks
from gridhive.events.models import Event, SiteEvent
from gridhive.events.planning.types import EventPlan
from gridhive.events.schemas import EventCreate
from gridhive.kit.time import frozen_time, isoformat_z
from gridhive.programs.models import Program
from gridhive.queue import schedule
from gridhive.queue.models import ScheduledJob
from gridhive.webhooks.models import OutboundMessage
from gridhive.workers.scheduler import Scheduler
from tests.factories import Tenant, create_device, create_enrollment, create_program, create_site

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


# Helpers shared with tests/commands/test_deadlines.py ---------------------------------------


class SessionAsMaker:
    """A sessionmaker stand-in handing out the test's session: each unit of work of the
    scheduler or the delivery worker commits a savepoint of the test's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def __call__(self) -> Any:
        @asynccontextmanager
        async def open_session() -> AsyncIterator[AsyncSession]:
            yield self.session

        return open_session()


def maker(session: AsyncSession) -> async_sessionmaker[AsyncSession]:
    return cast("async_sessionmaker[AsyncSession]", SessionAsMaker(session))


def scheduler_on(session: AsyncSession, **scheduler: Any) -> Scheduler:
    settings = Settings(log_json=False, scheduler=SchedulerSettings(retry_jitter=0, **scheduler))
    return Scheduler(maker(session), settings, worker_id="test-scheduler", periodic=[])


@dataclass
class Fleet:
    program: Program
    utility: Tenant
    oem: Tenant


async def make_fleet(
    session: AsyncSession, utility: Tenant, oem: Tenant, homes: dict[str, list[str]]
) -> Fleet:
    program = await create_program(session, utility, auto_approve=True)
    for site_id, devices in homes.items():
        site = await create_site(session, oem, site_id)
        batteries = [await create_device(session, site, d) for d in devices]
        await create_enrollment(session, site, program, batteries)
    return Fleet(program=program, utility=utility, oem=oem)


def action(starts_at: datetime, duration_s: int = 3600, **extra: Any) -> dict[str, Any]:
    return {
        "mode": "DISCHARGE",
        "starts_at": isoformat_z(starts_at),
        "duration_s": duration_s,
        "power_mode": "SETPOINT",
        "setpoint_w": 3000,
        **extra,
    }


async def dispatch(session: AsyncSession, fleet: Fleet, actions: list[dict[str, Any]]) -> Event:
    """The utility's POST /v1/events, through the service, committed."""
    principal = Principal(org_id=fleet.utility.org.id, kind=OrgKind.UTILITY, via="key")
    body = {
        "program_id": str(fleet.program.id),
        "target_type": "PROGRAM",
        "target_ids": [str(fleet.program.id)],
        "actions": actions,
    }
    event = await event_service.dispatch_event(session, principal, EventCreate.model_validate(body))
    await session.commit()
    return event


async def commands_of(session: AsyncSession, event_id: uuid.UUID) -> list[Command]:
    rows = await session.scalars(
        sa.select(Command)
        .where(Command.event_id == event_id)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def messages_of(session: AsyncSession, event_id: uuid.UUID) -> list[OutboundMessage]:
    rows = await session.scalars(
        sa.select(OutboundMessage)
        .where(OutboundMessage.event_id == event_id)
        .order_by(OutboundMessage.created_at, OutboundMessage.id)
    )
    return list(rows)


# Tests -----------------------------------------------------------------------------------------


@pytest.fixture
async def fleet(session: AsyncSession, utility: Tenant, oem: Tenant) -> Fleet:
    """Two enrolled homes: home-1 with two batteries, home-2 with one."""
    return await make_fleet(session, utility, oem, {"home-1": ["b-1", "b-2"], "home-2": ["b-3"]})


async def two_action_event(session: AsyncSession, fleet: Fleet) -> Event:
    """Two discharges (2 h and 5 h from T0, an hour each): each gets a grid pre-charge."""
    with frozen_time(T0):
        return await dispatch(
            session,
            fleet,
            [action(T0 + timedelta(hours=2)), action(T0 + timedelta(hours=5))],
        )


class Walk:
    """Moves the clock from tick to tick and collects what each tick emitted."""

    def __init__(self, session: AsyncSession, event: Event) -> None:
        self.session = session
        self.event = event
        self.scheduler = scheduler_on(session)
        self.seen: set[uuid.UUID] = set()

    async def skip_existing(self) -> None:
        """Leave out the messages written so far (the dispatch's own, a cancel's...)."""
        self.seen.update(m.id for m in await messages_of(self.session, self.event.id))

    async def run_until(self, at: datetime) -> list[OutboundMessage]:
        with frozen_time(at):
            await self.scheduler.drain(at)
        new = [m for m in await messages_of(self.session, self.event.id) if m.id not in self.seen]
        self.seen.update(m.id for m in new)
        return new

    async def tick_times(self) -> list[datetime]:
        rows = await self.session.scalars(
            sa.select(ScheduledJob.due_at).where(ScheduledJob.kind == ticks.KIND)
        )
        return sorted(rows)


async def replan(session: AsyncSession, event: Event) -> EventPlan:
    """What scheduling reads of a plan (its commands' times), from the stored commands."""
    return cast(EventPlan, SimpleNamespace(commands=await commands_of(session, event.id)))


def by_type(messages: Sequence[OutboundMessage], event_type: str) -> list[OutboundMessage]:
    return [m for m in messages if m.event_type == event_type]


def command_ids(messages: Sequence[OutboundMessage]) -> set[uuid.UUID | None]:
    return {m.command_id for m in messages}


class TestTimedWebhooks:
    async def test_started_and_ended_at_their_times_for_two_actions_with_precharges(
        self, session: AsyncSession, fleet: Fleet
    ) -> None:
        event = await two_action_event(session, fleet)
        commands = await commands_of(session, event.id)
        assert sum(c.is_preparatory_action for c in commands) == 6  # 3 batteries x 2 actions
        walk = Walk(session, event)
        await walk.skip_existing()
        times = await walk.tick_times()
        # All on whole minutes here (the dispatch time and the actions'): a tick each.
        expected = {c.starts_at for c in commands} | {c.ends_at for c in commands}
        assert set(times) == expected | {event.starts_at, event.ends_at}

        for at in times:
            assert await walk.run_until(at - timedelta(seconds=1)) == []
            new = await walk.run_until(at)
            started = by_type(new, "command.started")
            ended = by_type(new, "command.ended")
            assert command_ids(started) == {c.id for c in commands if c.starts_at == at}
            assert command_ids(ended) == {c.id for c in commands if c.ends_at == at}
            assert len(started) + len(ended) == len(command_ids(started) | command_ids(ended))
            status = {m.payload["status"] for m in by_type(new, "event.updated")}
            if at == event.starts_at:
                assert status == {"ACTIVE"}
            elif at == event.ends_at:
                assert status == {"COMPLETED"}
            else:
                assert status == set()
        assert await walk.run_until(event.ends_at + timedelta(days=1)) == []

    async def test_event_updated_goes_to_the_utility_and_each_site(
        self, session: AsyncSession, fleet: Fleet
    ) -> None:
        event = await two_action_event(session, fleet)
        walk = Walk(session, event)
        await walk.run_until(event.starts_at - timedelta(seconds=1))
        new = await walk.run_until(event.starts_at)
        updates = by_type(new, "event.updated")
        assert sorted((m.org_id, m.subject_id) for m in updates) == sorted(
            [
                (fleet.utility.org.id, str(event.id)),
                (fleet.oem.org.id, "home-1"),
                (fleet.oem.org.id, "home-2"),
            ]
        )

    async def test_scheduling_twice_adds_nothing_and_only_a_handful_of_rows(
        self, session: AsyncSession, fleet: Fleet
    ) -> None:
        event = await two_action_event(session, fleet)
        walk = Walk(session, event)
        before = await walk.tick_times()
        # Per action at most: pre-charge start, action start (= pre-charge end), action end.
        commands = await commands_of(session, event.id)
        assert len(commands) == 12
        assert len(before) == len({c.starts_at for c in commands} | {c.ends_at for c in commands})
        assert len(before) <= 6
        await ticks.schedule_event(session, event, await replan(session, event))
        job = (await session.scalars(sa.select(ScheduledJob).limit(1))).one()
        assert not await schedule.schedule(session, job.kind, job.key, job.due_at, job.payload)
        assert await walk.tick_times() == before


class TestMinuteTicks:
    async def test_times_off_the_minute_are_announced_by_the_next_whole_minute(
        self, session: AsyncSession, fleet: Fleet
    ) -> None:
        # Pre-charges start when each battery's state of charge says: seconds apart.
        off = timedelta(seconds=30)
        event = await two_action_event(session, fleet)
        late = {c.id for c in await commands_of(session, event.id) if c.starts_at == T0}
        await session.execute(
            sa.update(Command).where(Command.id.in_(late)).values(starts_at=T0 + off)
        )
        await session.execute(sa.delete(ScheduledJob))
        await ticks.schedule_event(session, event, await replan(session, event))
        await session.commit()
        walk = Walk(session, event)
        await walk.skip_existing()

        assert await walk.run_until(T0 + off) == []
        new = await walk.run_until(T0 + timedelta(minutes=1))

        assert command_ids(by_type(new, "command.started")) == late
        assert T0 + off not in await walk.tick_times()

    def test_a_tick_covers_the_minute_up_to_it(self) -> None:
        assert ticks.tick_of(T0) == T0
        assert ticks.tick_of(T0 + timedelta(microseconds=1)) == T0 + timedelta(minutes=1)
        assert ticks.tick_of(T0 + timedelta(seconds=59)) == T0 + timedelta(minutes=1)


class TestAckDeadlineAtTheEnd:
    async def test_a_command_still_pending_at_its_end_fails_offline_not_acknowledged(
        self, session: AsyncSession, fleet: Fleet
    ) -> None:
        with frozen_time(T0):
            event = await dispatch(session, fleet, [action(T0 + timedelta(hours=1))])
        main = {
            c.device_id: c
            for c in await commands_of(session, event.id)
            if not c.is_preparatory_action
        }
        with frozen_time(T0 + timedelta(minutes=5)):
            await command_service.acknowledge(
                session,
                tenant_id=fleet.oem.org.id,
                command_id=main["b-1"].id,
                ack=CommandAck(device_status="OK"),
            )
            await session.commit()
        walk = Walk(session, event)
        await walk.run_until(event.ends_at - timedelta(seconds=1))
        new = await walk.run_until(event.ends_at)

        after = {
            c.device_id: c
            for c in await commands_of(session, event.id)
            if not c.is_preparatory_action
        }
        assert after["b-1"].device_status is DeviceStatus.OK
        for device_id in ("b-2", "b-3"):
            assert after[device_id].device_status is DeviceStatus.FAILED_OFFLINE
            assert after[device_id].device_status_reason == "not acknowledged"
        ended = {m.subject_id: m.payload for m in by_type(new, "command.ended")}
        assert {d: p["device_status"] for d, p in ended.items()} == {
            "b-1": "OK",
            "b-2": "FAILED_OFFLINE",
            "b-3": "FAILED_OFFLINE",
        }
        assert ended["b-2"]["device_status_reason"] == "not acknowledged"


class TestWireForm:
    async def test_command_ended_carries_the_final_command_as_the_api_shows_it(
        self, session: AsyncSession, fleet: Fleet
    ) -> None:
        with frozen_time(T0):
            event = await dispatch(session, fleet, [action(T0 + timedelta(hours=1))])
        walk = Walk(session, event)
        await walk.skip_existing()

        ended = by_type(await walk.run_until(event.ends_at), "command.ended")

        commands = {c.id: c for c in await commands_of(session, event.id)}
        assert command_ids(ended) == set(commands), "pre-charges and discharges"
        for message in ended:
            shown = CommandRead.model_validate(commands[message.command_id])
            assert message.payload == {**shown.model_dump(mode="json"), "object_type": "command"}
        assert {m.payload["device_status_reason"] for m in ended} == {"not acknowledged"}


class TestNothingForWhatIsNotInForce:
    async def test_a_canceled_event_gets_no_timed_webhooks(
        self, session: AsyncSession, fleet: Fleet
    ) -> None:
        event = await two_action_event(session, fleet)
        with frozen_time(T0 + timedelta(minutes=1)):
            await event_service.cancel_event(session, event)
            await session.commit()
        walk = Walk(session, event)
        await walk.skip_existing()

        later = await walk.run_until(event.ends_at + timedelta(hours=1))

        assert later == []
        jobs = await session.scalars(sa.select(ScheduledJob.state))
        assert {j.value for j in jobs} == {"done"}

    async def test_an_opted_out_site_gets_nothing(
        self, session: AsyncSession, fleet: Fleet
    ) -> None:
        event = await two_action_event(session, fleet)
        site_event = await session.scalar(
            sa.select(SiteEvent).where(
                SiteEvent.event_id == event.id, SiteEvent.site_id == "home-2"
            )
        )
        assert site_event is not None
        with frozen_time(T0 + timedelta(minutes=1)):
            await event_service.set_participation(session, event, site_event, False)
            await session.commit()
        opted_out = {c.id for c in await commands_of(session, event.id) if c.device_id == "b-3"}
        walk = Walk(session, event)
        await walk.skip_existing()

        later = await walk.run_until(event.ends_at)

        assert later, "the participating site still gets its messages"
        assert not command_ids(later) & opted_out
        assert "home-2" not in {m.subject_id for m in by_type(later, "event.updated")}
        assert "home-1" in {m.subject_id for m in by_type(later, "event.updated")}
