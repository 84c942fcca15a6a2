"""A poller that goes on from the newest `updated_at` it has seen never misses a dispatch or a
cancellation that committed after it looked (PostgreSQL: `commands.stamps`).

On SQLite the dispatch holds the database's write lock from its first statement, so the ack
below could not commit while the dispatch is open: the race does not exist there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.auth.deps import Principal
from gridhive.auth.models import OrgKind
from gridhive.commands import service as command_service
from gridhive.commands import stamps
from gridhive.commands.models import Command, CommandStatus
from gridhive.commands.schemas import CommandAck
from gridhive.events import service as event_service
from gridhive.events.models import Event
from gridhive.events.schemas import EventCreate
from gridhive.kit.pagination import Page
from gridhive.kit.time import utc_now
from tests.events.test_ticks import Fleet, action, make_fleet
from tests.factories import create_command, create_device, create_site, create_tenant
from tests.workers.conftest import (  # noqa: F401  (fixtures: a database with real commits)
    CommittedDb,
    committed,
    committed_engine,
)

pytestmark = pytest.mark.postgres_only


@pytest.fixture(autouse=True)
def _postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's single write lock already orders these changes (see the module)")


async def arrange(db: CommittedDb) -> tuple[Fleet, Command]:
    """Two homes in a program, and a command of a third home's battery, not in the program
    (so the dispatch does not supersede it: nothing but the lock orders the two)."""
    async with db.sessionmaker() as session:
        utility = await create_tenant(session, kind="utility", name="Acme Power")
        oem = await create_tenant(session, kind="oem", name="Volt Batteries")
        fleet = await make_fleet(session, utility, oem, {"home-1": ["b-1"], "home-2": ["b-2"]})
        other_home = await create_site(session, oem, "home-3")
        battery = await create_device(session, other_home, "b-3")
        earlier = await create_command(session, fleet.program, battery)
    return fleet, earlier


async def open_dispatch(session: AsyncSession, fleet: Fleet) -> Event:
    """The utility's POST /v1/events, through the service, left uncommitted."""
    principal = Principal(org_id=fleet.utility.org.id, kind=OrgKind.UTILITY, via="key")
    body = {
        "program_id": str(fleet.program.id),
        "target_type": "PROGRAM",
        "target_ids": [str(fleet.program.id)],
        "actions": [action(utc_now() + timedelta(hours=5))],
    }
    return await event_service.dispatch_event(session, principal, EventCreate.model_validate(body))


async def poll(db: CommittedDb, fleet: Fleet, since: datetime) -> Sequence[Command]:
    async with db.sessionmaker() as session:
        filters = command_service.CommandFilter(updated_since=since)
        return await command_service.search_commands(
            session, tenant_id=fleet.oem.org.id, filters=filters, page=Page(limit=1000)
        )


async def waiting_for_the_lock(db: CommittedDb) -> bool:
    async with db.engine.connect() as connection:
        waiting = await connection.scalar(
            sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        )
    return bool(waiting)


async def settled(db: CommittedDb, task: asyncio.Task[Sequence[Command]]) -> None:
    """Until the poll has either answered or is waiting for the dispatch's lock."""
    for _ in range(500):
        if task.done() or await waiting_for_the_lock(db):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the poll neither answered nor waited")


async def naive_polls_across(
    db: CommittedDb, fleet: Fleet, writing: AsyncSession, earlier: Command, since: datetime
) -> list[Command]:
    """While `writing` is open, the OEM acks `earlier` and polls; then `writing` commits and
    the OEM polls again from the newest `updated_at` it saw, as a naive poller does. What the
    two polls returned."""
    async with db.sessionmaker() as acking:
        ack = CommandAck.model_validate({"device_status": "OK"})
        await command_service.acknowledge(
            acking, tenant_id=fleet.oem.org.id, command_id=earlier.id, ack=ack
        )
        await acking.commit()
    first_poll = asyncio.create_task(poll(db, fleet, since))
    await settled(db, first_poll)
    await writing.commit()
    first = list(await first_poll)
    cursor = max(c.updated_at for c in first)
    return first + list(await poll(db, fleet, cursor))


async def test_a_poll_during_a_dispatch_misses_none_of_its_commands(
    committed: CommittedDb,  # noqa: F811
) -> None:
    fleet, earlier = await arrange(committed)
    started = utc_now()
    async with committed.sessionmaker() as dispatching:
        event = await open_dispatch(dispatching, fleet)  # stamped now, not yet committed
        polled = await naive_polls_across(committed, fleet, dispatching, earlier, started)
    async with committed.sessionmaker() as session:
        dispatched = set(
            await session.scalars(sa.select(Command.id).where(Command.event_id == event.id))
        )
    assert dispatched  # a pre-charge and a discharge per battery
    assert dispatched | {earlier.id} <= {c.id for c in polled}


async def test_a_poll_during_a_cancellation_sees_every_command_canceled(
    committed: CommittedDb,  # noqa: F811
) -> None:
    fleet, earlier = await arrange(committed)
    async with committed.sessionmaker() as session:
        event = await open_dispatch(session, fleet)
        await session.commit()
    started = utc_now()
    async with committed.sessionmaker() as canceling:
        await event_service.cancel_event(canceling, await canceling.get_one(Event, event.id))
        polled = await naive_polls_across(committed, fleet, canceling, earlier, started)
    async with committed.sessionmaker() as session:
        canceled = set(
            await session.execute(
                sa.select(Command.id, Command.status).where(Command.event_id == event.id)
            )
        )
    assert canceled
    assert {status for _, status in canceled} == {CommandStatus.CANCELED}
    assert canceled <= {(c.id, c.status) for c in polled}


async def test_a_dispatch_waits_for_a_poll_in_progress_and_stamps_after_it(
    committed: CommittedDb,  # noqa: F811
) -> None:
    fleet, _ = await arrange(committed)
    async with committed.sessionmaker() as polling:
        await stamps.wait_for_large_changes(polling)  # a poll under way holds the lock shared
        async with committed.sessionmaker() as dispatching:
            dispatch = asyncio.create_task(open_dispatch(dispatching, fleet))
            await settled_until_waiting(committed, dispatch)
            poll_ended = utc_now()
            await polling.commit()
            event = await dispatch
            await dispatching.commit()
    async with committed.sessionmaker() as session:
        stamps_of_event = set(
            await session.scalars(sa.select(Command.updated_at).where(Command.event_id == event.id))
        )
    assert stamps_of_event
    assert min(stamps_of_event) >= poll_ended


async def settled_until_waiting(db: CommittedDb, task: asyncio.Task[Event]) -> None:
    for _ in range(500):
        if task.done():
            raise AssertionError("the dispatch went ahead of the poll under way")
        if await waiting_for_the_lock(db):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the dispatch never waited")
