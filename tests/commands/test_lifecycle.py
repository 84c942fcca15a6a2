"""Ending a device or an enrollment cancels its unfinished commands (system.md §3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.devices.models import Device
from gridhive.enrollments.models import Enrollment, EnrollmentStatus
from gridhive.kit.time import frozen_time, isoformat_z, utc_now
from gridhive.programs.models import Program
from gridhive.webhooks.models import OutboundMessage
from tests.factories import (
    Tenant,
    create_command,
    create_device,
    create_enrollment,
    create_program,
    create_site,
    site_token,
)


@dataclass
class Fleet:
    program: Program
    utility: Tenant
    oem: Tenant
    enrollments: dict[str, Enrollment]
    devices: dict[str, Device]


@pytest.fixture
async def fleet(session: AsyncSession, utility: Tenant, oem: Tenant) -> Fleet:
    """Two enrolled homes: home-1 with b-1 and b-2, home-2 with b-3 (approved at once)."""
    program = await create_program(session, utility, auto_approve=True)
    enrollments: dict[str, Enrollment] = {}
    devices: dict[str, Device] = {}
    for site_id, device_ids in (("home-1", ["b-1", "b-2"]), ("home-2", ["b-3"])):
        site = await create_site(session, oem, site_id)
        batteries = [await create_device(session, site, d) for d in device_ids]
        devices.update({d.id: d for d in batteries})
        enrollments[site_id] = await create_enrollment(session, site, program, batteries)
    return Fleet(program, utility, oem, enrollments, devices)


async def dispatch(client: httpx.AsyncClient, fleet: Fleet) -> str:
    """A 2 h discharge starting in 2 h: each battery gets a pre-charge ending at the start and
    the discharge itself."""
    body = {
        "program_id": str(fleet.program.id),
        "target_type": "PROGRAM",
        "target_ids": [str(fleet.program.id)],
        "actions": [
            {
                "mode": "DISCHARGE",
                "starts_at": isoformat_z(utc_now() + timedelta(hours=2)),
                "duration_s": 7200,
                "power_mode": "SETPOINT",
                "setpoint_w": 3000,
            }
        ],
    }
    response = await client.post("/v1/events", json=body, headers=fleet.utility.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def commands(client: httpx.AsyncClient, fleet: Fleet) -> list[dict[str, Any]]:
    response = await client.get("/v1/commands?limit=1000", headers=fleet.oem.headers)
    return list(response.json())


def states(rows: list[dict[str, Any]], *device_ids: str) -> set[tuple[str, str]]:
    return {(c["status"], c["device_status"]) for c in rows if c["device_id"] in device_ids}


async def canceled_messages(session: AsyncSession) -> list[OutboundMessage]:
    rows = await session.scalars(
        sa.select(OutboundMessage).where(OutboundMessage.event_type == "command.canceled")
    )
    return list(rows)


async def acknowledge_all(client: httpx.AsyncClient, fleet: Fleet) -> None:
    for command in await commands(client, fleet):
        response = await client.patch(
            f"/v1/command/{command['id']}",
            json={"device_status": "OK"},
            headers=fleet.oem.headers,
        )
        assert response.status_code == 200


class TestDeleteDevice:
    async def test_the_devices_unfinished_commands_are_canceled_and_await_a_new_ack(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        await dispatch(client, fleet)
        await acknowledge_all(client, fleet)
        response = await client.delete("/v1/site/home-1/device/b-1", headers=fleet.oem.headers)
        assert response.status_code == 204
        rows = await commands(client, fleet)
        assert states(rows, "b-1") == {("CANCELED", "PENDING")}
        assert {c["device_status_reason"] for c in rows if c["device_id"] == "b-1"} == {
            "Device 'b-1' was deleted"
        }
        assert states(rows, "b-2", "b-3") == {("OK", "OK")}
        messages = await canceled_messages(session)
        assert sorted(m.subject_id for m in messages) == ["b-1", "b-1"]
        assert {m.org_id for m in messages} == {fleet.oem.org.id}
        assert {m.payload["status"] for m in messages} == {"CANCELED"}

    async def test_a_finished_command_is_left_as_it_was(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        await dispatch(client, fleet)
        # Half an hour into the discharge: the pre-charge has ended, the discharge has not.
        with frozen_time(utc_now() + timedelta(hours=2, minutes=30)):
            response = await client.delete(
                "/v1/site/home-1/device/b-1",
                headers=await site_token(session, fleet.oem, fleet.devices["b-1"].site),
            )
        assert response.status_code == 204
        b1 = [c for c in await commands(client, fleet) if c["device_id"] == "b-1"]
        assert {(c["is_preparatory_action"], c["status"]) for c in b1} == {
            (True, "OK"),
            (False, "CANCELED"),
        }
        assert len(await canceled_messages(session)) == 1

    async def test_other_tenants_and_unknown_devices_are_404_and_cancel_nothing(
        self,
        client: httpx.AsyncClient,
        fleet: Fleet,
        session: AsyncSession,
        other_oem: Tenant,
    ) -> None:
        await dispatch(client, fleet)
        foreign = await client.delete("/v1/site/home-1/device/b-1", headers=other_oem.headers)
        unknown = await client.delete("/v1/site/home-1/device/b-9", headers=fleet.oem.headers)
        assert (foreign.status_code, unknown.status_code) == (404, 404)
        assert states(await commands(client, fleet), "b-1") == {("OK", "PENDING")}
        assert await canceled_messages(session) == []


class TestUnenroll:
    async def test_the_enrollments_devices_commands_are_canceled(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        await dispatch(client, fleet)
        enrollment = fleet.enrollments["home-1"]
        response = await client.delete(
            f"/v1/site/home-1/enrollment/{enrollment.id}", headers=fleet.oem.headers
        )
        assert response.status_code == 204
        rows = await commands(client, fleet)
        assert states(rows, "b-1", "b-2") == {("CANCELED", "PENDING")}
        assert states(rows, "b-3") == {("OK", "PENDING")}
        assert {c["device_status_reason"] for c in rows if c["device_id"] == "b-1"} == {
            f"Enrollment {enrollment.id} is UNENROLLED"
        }
        assert sorted(m.subject_id for m in await canceled_messages(session)) == [
            "b-1",
            "b-1",
            "b-2",
            "b-2",
        ]

    async def test_commands_of_another_programs_events_are_kept(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        other_program = await create_program(session, fleet.utility, name="Winter")
        device = await session.get_one(Device, fleet.devices["b-1"].pk)
        other = await create_command(session, other_program, device)
        enrollment = fleet.enrollments["home-1"]
        await client.delete(
            f"/v1/site/home-1/enrollment/{enrollment.id}", headers=fleet.oem.headers
        )
        [kept] = [c for c in await commands(client, fleet) if c["id"] == str(other.id)]
        assert kept["status"] == "OK"
        assert await canceled_messages(session) == []

    async def test_a_finished_command_is_left_as_it_was(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        await dispatch(client, fleet)
        enrollment = fleet.enrollments["home-2"]
        with frozen_time(utc_now() + timedelta(hours=2, minutes=30)):
            await client.delete(
                f"/v1/site/home-2/enrollment/{enrollment.id}", headers=fleet.oem.headers
            )
        b3 = [c for c in await commands(client, fleet) if c["device_id"] == "b-3"]
        assert {(c["is_preparatory_action"], c["status"]) for c in b3} == {
            (True, "OK"),
            (False, "CANCELED"),
        }

    async def test_an_ended_enrollment_is_409_and_cancels_nothing(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        await dispatch(client, fleet)
        enrollment = await session.get_one(Enrollment, fleet.enrollments["home-1"].id)
        enrollment.status = EnrollmentStatus.REJECTED
        await session.commit()
        response = await client.delete(
            f"/v1/site/home-1/enrollment/{enrollment.id}", headers=fleet.oem.headers
        )
        assert response.status_code == 409
        assert await canceled_messages(session) == []


async def utility_patch(
    client: httpx.AsyncClient, fleet: Fleet, site_id: str, **body: Any
) -> httpx.Response:
    enrollment = fleet.enrollments[site_id]
    response = await client.patch(
        f"/v1/enrollments/{enrollment.id}", json=body, headers=fleet.utility.headers
    )
    assert response.status_code == 200, response.text
    return response


class TestUtilityDecisions:
    @pytest.mark.parametrize("status", ["PAUSED", "UNENROLLED"])
    async def test_leaving_active_cancels_the_sites_commands(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession, status: str
    ) -> None:
        await dispatch(client, fleet)
        await utility_patch(client, fleet, "home-2", status=status)
        rows = await commands(client, fleet)
        assert states(rows, "b-3") == {("CANCELED", "PENDING")}
        assert states(rows, "b-1", "b-2") == {("OK", "PENDING")}
        messages = await canceled_messages(session)
        assert sorted(m.subject_id for m in messages) == ["b-3", "b-3"]
        assert {m.org_id for m in messages} == {fleet.oem.org.id}

    async def test_rejecting_cancels_the_programs_commands(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession, oem: Tenant
    ) -> None:
        site = await create_site(session, oem, "home-3")
        battery = await create_device(session, site, "b-4")
        program = await create_program(session, fleet.utility, name="Reviewed")
        pending = await create_enrollment(session, site, program, [battery])
        command = await create_command(session, program, battery)
        response = await client.patch(
            f"/v1/enrollments/{pending.id}",
            json={"status": "REJECTED"},
            headers=fleet.utility.headers,
        )
        assert response.status_code == 200
        [row] = [c for c in await commands(client, fleet) if c["id"] == str(command.id)]
        assert (row["status"], row["device_status"]) == ("CANCELED", "PENDING")

    async def test_a_finished_command_is_left_as_it_was(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        await dispatch(client, fleet)
        with frozen_time(utc_now() + timedelta(hours=2, minutes=30)):
            await utility_patch(client, fleet, "home-2", status="PAUSED")
        b3 = [c for c in await commands(client, fleet) if c["device_id"] == "b-3"]
        assert {(c["is_preparatory_action"], c["status"]) for c in b3} == {
            (True, "OK"),
            (False, "CANCELED"),
        }

    async def test_commands_of_another_programs_events_are_kept(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        other_program = await create_program(session, fleet.utility, name="Winter")
        device = await session.get_one(Device, fleet.devices["b-3"].pk)
        other = await create_command(session, other_program, device)
        await utility_patch(client, fleet, "home-2", status="PAUSED")
        [kept] = [c for c in await commands(client, fleet) if c["id"] == str(other.id)]
        assert kept["status"] == "OK"

    async def test_changes_that_keep_the_site_active_cancel_nothing(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        await dispatch(client, fleet)
        await utility_patch(client, fleet, "home-2", status="ACTIVE", group_ids=[])
        await utility_patch(client, fleet, "home-2", status_reason="Checked again")
        assert states(await commands(client, fleet), "b-3") == {("OK", "PENDING")}
        assert await canceled_messages(session) == []

    async def test_a_refused_move_cancels_nothing(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        await dispatch(client, fleet)
        enrollment = fleet.enrollments["home-2"]
        response = await client.patch(
            f"/v1/enrollments/{enrollment.id}",
            json={"status": "REJECTED"},
            headers=fleet.utility.headers,
        )
        assert response.status_code == 409
        assert states(await commands(client, fleet), "b-3") == {("OK", "PENDING")}
        assert await canceled_messages(session) == []

    async def test_the_same_status_again_cancels_nothing(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        await utility_patch(client, fleet, "home-2", status="PAUSED")
        # A command that exists while paused (e.g. planned before a restore): a repeat of the
        # pause is a no-op and must not touch it.
        device = await session.get_one(Device, fleet.devices["b-3"].pk)
        command = await create_command(session, fleet.program, device)
        await utility_patch(client, fleet, "home-2", status="PAUSED")
        [row] = [c for c in await commands(client, fleet) if c["id"] == str(command.id)]
        assert row["status"] == "OK"
