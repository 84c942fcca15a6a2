from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands import service as command_service
from gridhive.commands.models import Command, DeviceStatus
from gridhive.commands.schemas import CommandAck, CommandRead
from gridhive.kit.time import frozen_time, isoformat_z, utc_now
from tests.factories import (
    Tenant,
    create_command,
    create_device,
    create_program,
    create_site,
    site_token,
)

COMMAND_FIELDS = {
    "id",
    "event_id",
    "device_id",
    "starts_at",
    "ends_at",
    "duration_s",
    "is_preparatory_action",
    "battery_commands",
    "status",
    "device_status",
    "device_status_reason",
    "created_at",
    "updated_at",
}


@pytest.fixture
async def command_id(session: AsyncSession, oem: Tenant, utility: Tenant) -> str:
    program = await create_program(session, utility)
    site = await create_site(session, oem, "site-1")
    device = await create_device(session, site, "battery-1")
    command = await create_command(session, program, device)
    return str(command.id)


class TestPolling:
    async def test_lists_commands_with_flips_shape(
        self, client: httpx.AsyncClient, oem: Tenant, command_id: str
    ) -> None:
        response = await client.get("/v1/commands", headers=oem.headers)
        assert response.status_code == 200
        [command] = response.json()
        assert set(command) == COMMAND_FIELDS
        assert command["id"] == command_id
        assert command["device_status"] == "PENDING"
        assert command["battery_commands"]["mode"] == "DISCHARGE"
        assert set(command["battery_commands"]) == {
            "mode",
            "power_mode",
            "setpoint_w",
            "enable_grid_import",
            "enable_grid_export",
            "backup_reserve_percentage",
            "maximum_charge_percentage",
        }

    async def test_filters(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        program = await create_program(session, utility)
        site = await create_site(session, oem, "site-1")
        one = await create_device(session, site, "b-1")
        two = await create_device(session, site, "b-2")
        first = await create_command(session, program, one)
        second = await create_command(session, program, two)
        await client.patch(
            f"/v1/command/{first.id}", json={"device_status": "OK"}, headers=oem.headers
        )

        async def ids(query: str) -> list[str]:
            response = await client.get(f"/v1/commands?{query}", headers=oem.headers)
            assert response.status_code == 200
            return [c["id"] for c in response.json()]

        assert await ids("device_id=b-2") == [str(second.id)]
        assert await ids("device_status=PENDING") == [str(second.id)]
        assert await ids("device_status=OK&device_status=PENDING") == sorted(
            [str(first.id), str(second.id)], key=lambda i: i != str(second.id)
        )
        assert await ids("status=CANCELED") == []

    async def test_updated_since_and_order_let_a_poller_miss_nothing(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        program = await create_program(session, utility)
        site = await create_site(session, oem, "site-1")
        start = utc_now()
        with frozen_time(start):
            old = await create_command(session, program, await create_device(session, site, "b-1"))
        with frozen_time(start + timedelta(minutes=1)):
            new = await create_command(session, program, await create_device(session, site, "b-2"))
        with frozen_time(start + timedelta(minutes=2)):
            await client.patch(
                f"/v1/command/{old.id}", json={"device_status": "OK"}, headers=oem.headers
            )
        since = (start + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
        response = await client.get(
            "/v1/commands", params={"updated_since": since}, headers=oem.headers
        )
        # The acknowledged command moved to the end: it changed last.
        assert [c["id"] for c in response.json()] == [str(new.id), str(old.id)]

    async def test_other_oem_sees_none_and_bad_filters_are_422(
        self, client: httpx.AsyncClient, other_oem: Tenant, command_id: str
    ) -> None:
        assert (await client.get("/v1/commands", headers=other_oem.headers)).json() == []
        bad = await client.get("/v1/commands?status=DONE", headers=other_oem.headers)
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["path"] == "status.0"

    async def test_site_token_and_utility_key_are_403(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        utility: Tenant,
        command_id: str,
    ) -> None:
        site = await create_site(session, oem, "site-1")
        headers = await site_token(session, oem, site)
        assert (await client.get("/v1/commands", headers=headers)).status_code == 403
        assert (await client.get("/v1/commands", headers=utility.headers)).status_code == 403


class TestAcknowledge:
    @pytest.mark.parametrize("path", ["/v1/command/{id}", "/v1/commands/{id}"])
    async def test_ack_ok_on_both_paths(
        self, client: httpx.AsyncClient, oem: Tenant, command_id: str, path: str
    ) -> None:
        response = await client.patch(
            path.format(id=command_id),
            json={"device_status": "OK", "device_status_reason": "Command scheduled"},
            headers=oem.headers,
        )
        assert response.status_code == 200
        assert response.json()["device_status"] == "OK"
        assert response.json()["device_status_reason"] == "Command scheduled"

    async def test_legacy_failed_is_stored_as_failed_fault(
        self, client: httpx.AsyncClient, oem: Tenant, command_id: str
    ) -> None:
        response = await client.patch(
            f"/v1/command/{command_id}", json={"device_status": "FAILED"}, headers=oem.headers
        )
        assert response.json()["device_status"] == "FAILED_FAULT"

    async def test_repeating_an_ack_changes_nothing(
        self, client: httpx.AsyncClient, oem: Tenant, command_id: str
    ) -> None:
        first = await client.patch(
            f"/v1/command/{command_id}", json={"device_status": "OK"}, headers=oem.headers
        )
        again = await client.patch(
            f"/v1/command/{command_id}", json={"device_status": "OK"}, headers=oem.headers
        )
        assert again.status_code == 200
        assert again.json()["updated_at"] == first.json()["updated_at"]

    @pytest.mark.parametrize(
        "body", [{"device_status": "PENDING"}, {"device_status": "ok"}, {}, {"device_status": 1}]
    )
    async def test_bad_ack_is_422(
        self, client: httpx.AsyncClient, oem: Tenant, command_id: str, body: object
    ) -> None:
        response = await client.patch(f"/v1/command/{command_id}", json=body, headers=oem.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == "device_status"

    async def test_other_oems_command_is_404(
        self, client: httpx.AsyncClient, other_oem: Tenant, command_id: str
    ) -> None:
        response = await client.patch(
            f"/v1/command/{command_id}", json={"device_status": "OK"}, headers=other_oem.headers
        )
        assert response.status_code == 404

    async def test_unknown_or_malformed_id(self, client: httpx.AsyncClient, oem: Tenant) -> None:
        unknown = await client.patch(
            f"/v1/command/{uuid.uuid4()}", json={"device_status": "OK"}, headers=oem.headers
        )
        assert unknown.status_code == 404
        malformed = await client.patch(
            "/v1/command/not-a-uuid", json={"device_status": "OK"}, headers=oem.headers
        )
        assert malformed.status_code == 422


class TestAcknowledgementAnswer:
    """The ack's answer is Flip's Command (§9.6) as stored, and only real changes are stored."""

    async def test_answer_is_the_stored_command(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, command_id: str
    ) -> None:
        at = utc_now().replace(microsecond=0) + timedelta(minutes=1)
        with frozen_time(at):
            response = await client.patch(
                f"/v1/command/{command_id}",
                json={"device_status": "FAILED_OFFLINE", "device_status_reason": "No signal"},
                headers=oem.headers,
            )
        assert response.status_code == 200
        command = await session.get(Command, uuid.UUID(command_id), populate_existing=True)
        assert command is not None
        assert response.json() == CommandRead.model_validate(command).model_dump(mode="json")
        assert response.json()["updated_at"] == isoformat_z(at)
        assert command.acknowledged_at == at
        polled = (await client.get("/v1/commands", headers=oem.headers)).json()
        assert polled == [response.json()]

    async def test_a_new_reason_is_a_change_and_no_reason_keeps_the_stored_one(
        self, client: httpx.AsyncClient, oem: Tenant, command_id: str
    ) -> None:
        start = utc_now().replace(microsecond=0)

        async def ack(minutes: int, body: dict[str, str]) -> dict[str, object]:
            with frozen_time(start + timedelta(minutes=minutes)):
                response = await client.patch(
                    f"/v1/command/{command_id}", json=body, headers=oem.headers
                )
            assert response.status_code == 200
            answer: dict[str, object] = response.json()
            return answer

        first = await ack(1, {"device_status": "OK", "device_status_reason": "Scheduled"})
        same = await ack(2, {"device_status": "OK", "device_status_reason": "Scheduled"})
        no_reason = await ack(3, {"device_status": "OK"})
        new_reason = await ack(4, {"device_status": "OK", "device_status_reason": "Rescheduled"})
        assert same == first
        assert no_reason == first
        assert new_reason["device_status_reason"] == "Rescheduled"
        assert new_reason["updated_at"] == isoformat_z(start + timedelta(minutes=4))

    async def test_another_status_without_a_reason_clears_the_reason(
        self, client: httpx.AsyncClient, oem: Tenant, command_id: str
    ) -> None:
        await client.patch(
            f"/v1/command/{command_id}",
            json={"device_status": "OK", "device_status_reason": "Scheduled"},
            headers=oem.headers,
        )
        response = await client.patch(
            f"/v1/command/{command_id}", json={"device_status": "FAILED"}, headers=oem.headers
        )
        assert response.json()["device_status"] == "FAILED_FAULT"
        assert response.json()["device_status_reason"] is None

    async def test_another_oems_ack_changes_nothing(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        other_oem: Tenant,
        command_id: str,
    ) -> None:
        response = await client.patch(
            f"/v1/command/{command_id}", json={"device_status": "OK"}, headers=other_oem.headers
        )
        assert response.status_code == 404
        assert response.json()["code"] == "NOT_FOUND"
        command = await session.get(Command, uuid.UUID(command_id), populate_existing=True)
        assert command is not None
        assert command.device_status == DeviceStatus.PENDING
        assert command.acknowledged_at is None

    async def test_a_command_the_session_holds_sees_the_ack(
        self, session: AsyncSession, oem: Tenant, command_id: str
    ) -> None:
        # A worker that loaded the command before the ack reads the acknowledged values.
        loaded = await session.get(Command, uuid.UUID(command_id))
        assert loaded is not None
        await command_service.acknowledge(
            session,
            tenant_id=oem.org.id,
            command_id=loaded.id,
            ack=CommandAck(device_status="OK"),
        )
        assert loaded.device_status == DeviceStatus.OK
        assert loaded.acknowledged_at is not None
