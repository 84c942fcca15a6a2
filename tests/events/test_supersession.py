"""A newer overlapping event supersedes the older one's commands, in bulk (system.md §4)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands.models import Command, CommandStatus
from gridhive.commands.schemas import CommandRead
from gridhive.events import repository
from gridhive.kit.time import isoformat_z, utc_now
from gridhive.programs.models import Program
from gridhive.webhooks.models import OutboundMessage
from gridhive.webhooks.repository import payload_of
from tests.factories import (
    Tenant,
    create_device,
    create_enrollment,
    create_program,
    create_site,
)


@pytest.fixture
async def program(session: AsyncSession, utility: Tenant, oem: Tenant) -> Program:
    """Three enrolled homes of one battery each."""
    program = await create_program(session, utility, auto_approve=True)
    for n in range(1, 4):
        site = await create_site(session, oem, f"home-{n}")
        battery = await create_device(session, site, f"bat-{n}")
        await create_enrollment(session, site, program, [battery])
    return program


async def dispatch(
    client: httpx.AsyncClient, program: Program, utility: Tenant, *, in_hours: float
) -> str:
    """A 2 h discharge of the whole program (with a pre-charge before it)."""
    body = {
        "program_id": str(program.id),
        "target_type": "PROGRAM",
        "target_ids": [str(program.id)],
        "actions": [
            {
                "mode": "DISCHARGE",
                "starts_at": isoformat_z(utc_now() + timedelta(hours=in_hours)),
                "duration_s": 7200,
                "power_mode": "SETPOINT",
                "setpoint_w": 3000,
            }
        ],
    }
    response = await client.post("/v1/events", json=body, headers=utility.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def commands_of(session: AsyncSession, event_id: str) -> list[Command]:
    session.expire_all()
    stmt = sa.select(Command).where(Command.event_id == uuid.UUID(event_id))
    return list(await session.scalars(stmt.order_by(Command.device_id, Command.starts_at)))


async def canceled_messages(session: AsyncSession) -> dict[str, OutboundMessage]:
    stmt = sa.select(OutboundMessage).where(OutboundMessage.event_type == "command.canceled")
    return {str(m.command_id): m for m in await session.scalars(stmt)}


def wire_form(command: Command) -> dict[str, Any]:
    return CommandRead.model_validate(command).model_dump(mode="json")


class TestSupersession:
    async def test_overlapped_commands_are_canceled_and_await_a_new_ack(
        self, client: httpx.AsyncClient, session: AsyncSession, program: Program, utility: Tenant
    ) -> None:
        first = await dispatch(client, program, utility, in_hours=2)
        second = await dispatch(client, program, utility, in_hours=2.5)
        old = await commands_of(session, first)
        assert len(old) == 6  # a pre-charge and a discharge per battery, all overlapped
        assert {(c.status, c.device_status) for c in old} == {(CommandStatus.CANCELED, "PENDING")}
        assert {c.status_reason for c in old} == {f"Superseded by event {second}"}
        assert all(c.acknowledged_at is None for c in old)
        assert {c.status for c in await commands_of(session, second)} == {CommandStatus.OK}

    async def test_each_oem_gets_the_full_canceled_command(
        self, client: httpx.AsyncClient, session: AsyncSession, program: Program, utility: Tenant
    ) -> None:
        first = await dispatch(client, program, utility, in_hours=2)
        await dispatch(client, program, utility, in_hours=2.5)
        old = await commands_of(session, first)
        messages = await canceled_messages(session)
        assert set(messages) == {str(c.id) for c in old}
        for command in old:
            message = messages[str(command.id)]
            payload = await payload_of(session, message)
            assert payload == {**wire_form(command), "object_type": "command"}
            assert message.org_id == command.tenant_id
            assert message.subject_id == command.device_id
            assert str(message.event_id) == first

    async def test_a_fleet_larger_than_one_id_list_is_superseded_whole(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        program: Program,
        utility: Tenant,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # Two ids per statement: the overlap query scans the window, the UPDATE goes in chunks.
        monkeypatch.setattr(repository, "IN_CHUNK", 2)
        first = await dispatch(client, program, utility, in_hours=2)
        await dispatch(client, program, utility, in_hours=3)
        old = await commands_of(session, first)
        assert {c.status for c in old if not c.is_preparatory_action} == {CommandStatus.CANCELED}
        assert len(await canceled_messages(session)) == sum(
            c.status is CommandStatus.CANCELED for c in old
        )


class TestCancelCommandsInForce:
    async def test_only_commands_still_in_force_change(
        self, client: httpx.AsyncClient, session: AsyncSession, program: Program, utility: Tenant
    ) -> None:
        event_id = await dispatch(client, program, utility, in_hours=2)
        opted_out, in_force, *_ = await commands_of(session, event_id)
        opted_out.status = CommandStatus.OPT_OUT
        await session.flush()
        now = utc_now()
        canceled = await repository.cancel_commands_in_force(
            session, [opted_out.id, in_force.id], reason="test", now=now
        )
        assert [row[0] for row in canceled] == [in_force.id]
        await session.refresh(opted_out)
        await session.refresh(in_force)
        assert opted_out.status is CommandStatus.OPT_OUT
        assert (in_force.status, in_force.status_reason) == (CommandStatus.CANCELED, "test")
