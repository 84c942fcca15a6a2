"""Group commit of acknowledgements (PostgreSQL): many answers in one statement, each request
its own result, the same rule of what changes as one ack alone, nothing stored on failure."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gridhive.commands import service
from gridhive.commands.ack_group import AckGroup, Unit
from gridhive.commands.models import Command, DeviceStatus
from gridhive.commands.schemas import CommandAck
from tests.factories import Tenant, create_command, create_device, create_program, create_site

pytestmark = pytest.mark.postgres_only


@pytest.fixture(autouse=True)
def _postgresql_only(session: AsyncSession) -> None:
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("group commit runs on PostgreSQL (SQLite acks one by one)")


@pytest.fixture
async def commands(session: AsyncSession, utility: Tenant, oem: Tenant) -> list[Command]:
    program = await create_program(session, utility)
    site = await create_site(session, oem, "site-1")
    made = []
    for n in range(4):
        device = await create_device(session, site, f"battery-{n}")
        made.append(await create_command(session, program, device))
    return made


def answer(
    tenant: Tenant, command: Command | uuid.UUID, status: str, reason: str | None = None
) -> service.Acknowledgement:
    command_id = command if isinstance(command, uuid.UUID) else command.id
    ack = CommandAck.model_validate({"device_status": status, "device_status_reason": reason})
    return service.Acknowledgement(tenant.org.id, command_id, ack)


async def stored(session: AsyncSession, command: Command) -> tuple[DeviceStatus, str | None]:
    row = (
        await session.execute(
            sa.select(Command.device_status, Command.device_status_reason).where(
                Command.id == command.id
            )
        )
    ).one()
    return row.device_status, row.device_status_reason


class TestAcknowledgeMany:
    async def test_changes_only_what_one_ack_alone_would(
        self,
        session: AsyncSession,
        oem: Tenant,
        other_oem: Tenant,
        commands: list[Command],
    ) -> None:
        connection = await session.connection()
        first = await service.acknowledge_many(connection, [answer(oem, commands[3], "OK")])
        assert first[commands[3].id]["device_status"] == "OK"
        answers = [
            answer(oem, commands[0], "OK"),
            answer(oem, commands[1], "FAILED", "inverter fault"),  # legacy FAILED
            answer(other_oem, commands[2], "OK"),  # not its command
            answer(oem, commands[3], "OK"),  # a repeat: nothing changes
            answer(oem, uuid.uuid4(), "OK"),  # no such command
        ]
        result = await service.acknowledge_many(connection, answers)
        assert set(result) == {commands[0].id, commands[1].id}
        assert result[commands[1].id]["device_status"] == "FAILED_FAULT"
        assert result[commands[1].id]["device_status_reason"] == "inverter fault"
        assert await stored(session, commands[2]) == (DeviceStatus.PENDING, None)
        # Each changed command reads as `acknowledge` (one by one) answers for it.
        alone = await service.acknowledge(
            session, tenant_id=oem.org.id, command_id=commands[0].id, ack=answers[0].ack
        )
        assert alone == result[commands[0].id]

    async def test_a_reason_alone_changes_the_answer(
        self, session: AsyncSession, oem: Tenant, commands: list[Command]
    ) -> None:
        connection = await session.connection()
        await service.acknowledge_many(connection, [answer(oem, commands[0], "FAILED_FAULT")])
        again = await service.acknowledge_many(
            connection, [answer(oem, commands[0], "FAILED_FAULT", "battery too cold")]
        )
        assert again[commands[0].id]["device_status_reason"] == "battery too cold"
        unchanged = await service.acknowledge_many(
            connection, [answer(oem, commands[0], "FAILED_FAULT")]
        )
        assert unchanged == {}  # no reason given: the same status is a repeat


def on(connection: AsyncConnection, statements: list[str]) -> Unit:
    """A unit of work on the test's connection that counts the statements it is used for."""

    @asynccontextmanager
    async def unit() -> AsyncIterator[AsyncConnection]:
        statements.append("UPDATE")
        yield connection

    return unit


class TestAckGroup:
    async def test_acks_arriving_together_share_a_statement_and_keep_their_order(
        self, session: AsyncSession, oem: Tenant, commands: list[Command]
    ) -> None:
        statements: list[str] = []
        group = AckGroup(None, unit=on(await session.connection(), statements))
        asks = [
            ("OK", commands[0]),
            ("FAILED_OFFLINE", commands[1]),
            ("OK", commands[2]),
            ("OK", commands[1]),  # the same command again: applied after the first
            ("OK", commands[3]),
        ]
        results = await asyncio.gather(
            *(
                group.acknowledge(
                    tenant_id=oem.org.id,
                    command_id=command.id,
                    ack=CommandAck.model_validate({"device_status": status}),
                )
                for status, command in asks
            )
        )
        assert len(statements) == 2  # four at once, then the second answer of commands[1]
        assert [r["device_status"] if r else None for r in results] == [
            "OK",
            "FAILED_OFFLINE",
            "OK",
            "OK",
            "OK",
        ]
        assert await stored(session, commands[1]) == (DeviceStatus.OK, None)

    async def test_a_repeat_or_a_stranger_gets_none(
        self, session: AsyncSession, oem: Tenant, other_oem: Tenant, commands: list[Command]
    ) -> None:
        group = AckGroup(None, unit=on(await session.connection(), []))
        ok = CommandAck.model_validate({"device_status": "OK"})
        assert await group.acknowledge(tenant_id=oem.org.id, command_id=commands[0].id, ack=ok)
        assert (
            await group.acknowledge(tenant_id=oem.org.id, command_id=commands[0].id, ack=ok)
        ) is None
        stranger = await group.acknowledge(
            tenant_id=other_oem.org.id, command_id=commands[1].id, ack=ok
        )
        assert stranger is None
        assert await stored(session, commands[1]) == (DeviceStatus.PENDING, None)

    async def test_when_the_statement_fails_every_waiting_ack_is_told_and_none_is_stored(
        self, session: AsyncSession, oem: Tenant, commands: list[Command]
    ) -> None:
        @asynccontextmanager
        async def broken() -> AsyncIterator[AsyncConnection]:
            raise ConnectionError("database went away")
            yield  # pragma: no cover

        group = AckGroup(None, unit=broken)
        ok = CommandAck.model_validate({"device_status": "OK"})
        results = await asyncio.gather(
            *(group.acknowledge(tenant_id=oem.org.id, command_id=c.id, ack=ok) for c in commands),
            return_exceptions=True,
        )
        assert all(isinstance(r, ConnectionError) for r in results)
        assert {await stored(session, c) for c in commands} == {(DeviceStatus.PENDING, None)}
        # The group still works afterwards.
        group.unit = on(await session.connection(), [])
        assert await group.acknowledge(tenant_id=oem.org.id, command_id=commands[0].id, ack=ok)

    async def test_when_the_writer_is_stopped_no_ack_is_left_waiting(
        self, oem: Tenant, commands: list[Command]
    ) -> None:
        entered = asyncio.Event()

        @asynccontextmanager
        async def stuck() -> AsyncIterator[AsyncConnection]:
            entered.set()
            await asyncio.Event().wait()  # a database that never answers
            yield  # pragma: no cover

        group = AckGroup(None, unit=stuck)
        ok = CommandAck.model_validate({"device_status": "OK"})
        first = asyncio.ensure_future(
            group.acknowledge(tenant_id=oem.org.id, command_id=commands[0].id, ack=ok)
        )
        await entered.wait()
        second = asyncio.ensure_future(  # waits for the next statement
            group.acknowledge(tenant_id=oem.org.id, command_id=commands[1].id, ack=ok)
        )
        await asyncio.sleep(0)
        assert group._writer is not None
        group._writer.cancel()  # the process shuts down
        for waiting in (first, second):
            with pytest.raises(RuntimeError, match="writer stopped"):
                await waiting
