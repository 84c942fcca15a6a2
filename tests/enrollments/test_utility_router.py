"""Enrollments through the Utility API: reads across a program, decisions, group membership."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gridhive.devices.models import Device
from gridhive.enrollments.models import Enrollment, EnrollmentStatus
from gridhive.kit.time import frozen_time, isoformat_z, utc_now
from gridhive.programs.models import Program, SiteGroup
from gridhive.sites.models import Site
from gridhive.webhooks.models import OutboundMessage
from tests.factories import (
    Tenant,
    create_device,
    create_enrollment,
    create_group,
    create_program,
    create_site,
)

S = EnrollmentStatus
ENROLLMENT_FIELDS = {
    "id",
    "status",
    "status_reason",
    "created_at",
    "updated_at",
    "enrolled_at",
    "unenrolled_at",
    "program_specific_attributes",
    "site",
    "devices",
}
SITE_FIELDS = {
    "id",
    "first_name",
    "last_name",
    "company_name",
    "email",
    "city",
    "state_code",
    "zip_code",
    "street_address",
    "street_address2",
    "service_account_id",
    "groups",
    "created_at",
    "updated_at",
}
DEVICE_FIELDS = {
    "id",
    "site_id",
    "type",
    "manufacturer_name",
    "product_name",
    "serial_number",
    "install_date",
    "attributes",
    "configuration",
    "created_at",
    "updated_at",
}


async def outbox(session: AsyncSession, event_type: str) -> list[OutboundMessage]:
    rows = await session.scalars(
        sa.select(OutboundMessage).where(OutboundMessage.event_type == event_type)
    )
    return list(rows)


async def set_status(session: AsyncSession, enrollment: Enrollment, status: S) -> None:
    """Put an enrollment in `status` directly (as if it had got there earlier)."""
    stored = await session.get_one(Enrollment, enrollment.id)
    stored.status = status
    await session.commit()


async def patch(
    client: httpx.AsyncClient, utility: Tenant, enrollment: Enrollment, **body: Any
) -> httpx.Response:
    return await client.patch(
        f"/v1/enrollments/{enrollment.id}", json=body, headers=utility.headers
    )


def group_ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [g["id"] for g in response.json()["site"]["groups"]]


@pytest.fixture
async def enrollment(
    session: AsyncSession, site: Site, battery: Device, program: Program
) -> Enrollment:
    """site-1's battery in `program`, waiting for the utility (PENDING)."""
    return await create_enrollment(session, site, program, [battery])


class TestRead:
    async def test_list_answers_flips_utility_enrollment(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        utility: Tenant,
        oem: Tenant,
    ) -> None:
        form = [{"name": "account_id", "label": "Account", "type": "string"}]
        program = await create_program(session, utility, enrollment_form=form)
        site = await create_site(session, oem, "site-1", first_name="Ada", city="Fresno")
        battery = await create_device(session, site, "battery-1")
        enrollment = await create_enrollment(
            session,
            site,
            program,
            [battery],
            program_specific_attributes=[{"name": "account_id", "value": "1234567-0"}],
        )
        await create_group(session, program, "zone-a", "Zone A")
        await patch(client, utility, enrollment, group_ids=["zone-a"])
        response = await client.get(
            f"/v1/enrollments?program_id={program.id}", headers=utility.headers
        )
        assert response.status_code == 200
        [item] = response.json()["enrollments"]
        assert set(response.json()) == {"enrollments"}
        assert set(item) == ENROLLMENT_FIELDS
        assert (item["id"], item["status"]) == (str(enrollment.id), "PENDING")
        assert item["program_specific_attributes"] == [
            {"name": "account_id", "type": "string", "value": "1234567-0"}
        ]
        assert set(item["site"]) == SITE_FIELDS
        assert (item["site"]["id"], item["site"]["first_name"]) == ("site-1", "Ada")
        assert item["site"]["groups"] == [{"id": "zone-a", "name": "Zone A"}]
        [device] = item["devices"]
        assert set(device) == DEVICE_FIELDS
        assert device["attributes"] == {
            "battery_capacity_wh": 13500,
            "battery_power_input_w": 5000,
            "battery_power_output_w": 5000,
        }
        assert device["configuration"] == {"reserve_percentage": 20}
        assert item["created_at"].endswith("Z")

    async def test_read_one(
        self, client: httpx.AsyncClient, utility: Tenant, enrollment: Enrollment
    ) -> None:
        response = await client.get(f"/v1/enrollments/{enrollment.id}", headers=utility.headers)
        assert response.status_code == 200
        assert set(response.json()) == ENROLLMENT_FIELDS
        assert [d["id"] for d in response.json()["devices"]] == ["battery-1"]

    async def test_list_is_oldest_first_with_paging_and_ended_ones(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        utility: Tenant,
        oem: Tenant,
        program: Program,
    ) -> None:
        made = []
        for n in range(3):
            site = await create_site(session, oem, f"home-{n}")
            made.append(
                await create_enrollment(
                    session, site, program, [await create_device(session, site, f"b-{n}")]
                )
            )
        await set_status(session, made[0], S.UNENROLLED)
        url = f"/v1/enrollments?program_id={program.id}"
        listed = (await client.get(url, headers=utility.headers)).json()["enrollments"]
        assert [e["id"] for e in listed] == [str(e.id) for e in made]
        paged = await client.get(f"{url}&skip=1&limit=1", headers=utility.headers)
        assert [e["id"] for e in paged.json()["enrollments"]] == [str(made[1].id)]
        too_many = await client.get(f"{url}&limit=1001", headers=utility.headers)
        assert too_many.status_code == 422

    async def test_status_filter_keeps_paging_exact(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        utility: Tenant,
        oem: Tenant,
        program: Program,
    ) -> None:
        made = []
        for n in range(4):
            site = await create_site(session, oem, f"home-{n}")
            made.append(
                await create_enrollment(
                    session, site, program, [await create_device(session, site, f"b-{n}")]
                )
            )
        await set_status(session, made[0], S.PENDING)
        await set_status(session, made[1], S.ACTIVE)
        await set_status(session, made[2], S.PENDING)
        await set_status(session, made[3], S.UNENROLLED)
        url = f"/v1/enrollments?program_id={program.id}"
        pending = await client.get(f"{url}&status=PENDING", headers=utility.headers)
        expected = [str(made[0].id), str(made[2].id)]
        assert [e["id"] for e in pending.json()["enrollments"]] == expected
        second = await client.get(f"{url}&status=PENDING&skip=1&limit=1", headers=utility.headers)
        assert [e["id"] for e in second.json()["enrollments"]] == [str(made[2].id)]
        either = await client.get(
            f"{url}&status=PENDING&status=UNENROLLED", headers=utility.headers
        )
        assert {e["status"] for e in either.json()["enrollments"]} == {"PENDING", "UNENROLLED"}
        assert len(either.json()["enrollments"]) == 3
        unknown = await client.get(f"{url}&status=MAYBE", headers=utility.headers)
        assert unknown.status_code == 422
        assert unknown.json()["errors"][0]["path"] == "status.0"

    async def test_program_id_is_required(self, client: httpx.AsyncClient, utility: Tenant) -> None:
        response = await client.get("/v1/enrollments", headers=utility.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == "program_id"

    async def test_deleted_devices_are_left_out(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        utility: Tenant,
        oem: Tenant,
        site: Site,
        battery: Device,
        program: Program,
    ) -> None:
        second = await create_device(session, site, "battery-2")
        enrollment = await create_enrollment(session, site, program, [battery, second])
        await client.delete("/v1/site/site-1/device/battery-1", headers=oem.headers)
        response = await client.get(f"/v1/enrollments/{enrollment.id}", headers=utility.headers)
        assert [d["id"] for d in response.json()["devices"]] == ["battery-2"]

    async def test_only_groups_of_the_enrollments_program_are_shown(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        utility: Tenant,
        site: Site,
        enrollment: Enrollment,
        program: Program,
    ) -> None:
        other_program = await create_program(session, utility, name="Winter")
        elsewhere = await create_group(session, other_program, "elsewhere")
        session.add(SiteGroup(group_pk=elsewhere.pk, site_pk=site.pk))
        await session.commit()
        await create_group(session, program, "here")
        response = await patch(client, utility, enrollment, group_ids=["here"])
        assert group_ids(response) == ["here"]
        members = await session.scalars(
            sa.select(SiteGroup.group_pk).where(SiteGroup.site_pk == site.pk)
        )
        assert elsewhere.pk in set(members)  # the other program's membership is kept


@contextmanager
def counting_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", count)


class TestLoading:
    async def test_a_page_costs_the_same_queries_for_2_or_8_enrollments(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        engine: AsyncEngine,
        utility: Tenant,
        oem: Tenant,
        program: Program,
    ) -> None:
        group = await create_group(session, program, "zone-a")
        # Authenticate once first: the credential is then cached, so both counts are the page's.
        await client.get(f"/v1/enrollments?program_id={program.id}", headers=utility.headers)
        counts = []
        for total in (2, 8):
            while await session.scalar(sa.select(sa.func.count()).select_from(Enrollment)) < total:
                n = await session.scalar(sa.select(sa.func.count()).select_from(Site))
                site = await create_site(session, oem, f"home-{n}")
                devices = [await create_device(session, site, f"b-{n}-{i}") for i in range(2)]
                await create_enrollment(session, site, program, devices)
                session.add(SiteGroup(group_pk=group.pk, site_pk=site.pk))
                await session.commit()
            with counting_statements(engine) as statements:
                response = await client.get(
                    f"/v1/enrollments?program_id={program.id}", headers=utility.headers
                )
            assert len(response.json()["enrollments"]) == total
            assert all(len(e["devices"]) == 2 for e in response.json()["enrollments"])
            counts.append(len([s for s in statements if s.lstrip().upper().startswith("SELECT")]))
        assert counts[0] == counts[1]


class TestStatus:
    @pytest.mark.parametrize(
        ("start", "to"),
        [
            (S.PENDING, S.ACTIVE),
            (S.SUBMITTED, S.ACTIVE),
            (S.CREATED, S.ACTIVE),
            (S.NEEDS_ACTION, S.ACTIVE),
            (S.PENDING, S.REJECTED),
            (S.NEEDS_ACTION, S.REJECTED),
            (S.PENDING, S.NEEDS_ACTION),
            (S.NEEDS_ACTION, S.PENDING),
            (S.CREATED, S.SUBMITTED),
            (S.ACTIVE, S.PAUSED),
            (S.PAUSED, S.ACTIVE),
            (S.ACTIVE, S.UNENROLLED),
            (S.PAUSED, S.UNENROLLED),
            (S.PENDING, S.UNENROLLED),
        ],
    )
    async def test_allowed_moves_are_stored_and_told_to_both_sides(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        utility: Tenant,
        oem: Tenant,
        enrollment: Enrollment,
        start: S,
        to: S,
    ) -> None:
        await set_status(session, enrollment, start)
        response = await patch(client, utility, enrollment, status=to)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == to
        messages = await outbox(session, "enrollment.updated")
        assert {m.org_id for m in messages} == {oem.org.id, utility.org.id}
        assert {m.payload["status"] for m in messages} == {to}

    @pytest.mark.parametrize(
        ("start", "to"),
        [
            (S.ACTIVE, S.REJECTED),
            (S.ACTIVE, S.PENDING),
            (S.ACTIVE, S.NEEDS_ACTION),
            (S.PAUSED, S.REJECTED),
            (S.PENDING, S.PAUSED),
            (S.PENDING, S.CREATED),
            (S.REJECTED, S.ACTIVE),
            (S.REJECTED, S.UNENROLLED),
            (S.UNENROLLED, S.ACTIVE),
            (S.UNENROLLED, S.PAUSED),
        ],
    )
    async def test_other_moves_are_409_and_change_nothing(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        utility: Tenant,
        enrollment: Enrollment,
        start: S,
        to: S,
    ) -> None:
        await set_status(session, enrollment, start)
        response = await patch(client, utility, enrollment, status=to)
        assert response.status_code == 409
        assert str(start) in response.json()["message"]
        if start in (S.REJECTED, S.UNENROLLED):
            assert "final" in response.json()["message"]
        read = await client.get(f"/v1/enrollments/{enrollment.id}", headers=utility.headers)
        assert read.json()["status"] == start
        assert await outbox(session, "enrollment.updated") == []

    async def test_approval_stamps_enrolled_at_once_and_unenrolling_unenrolled_at(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        utility: Tenant,
        enrollment: Enrollment,
    ) -> None:
        start = utc_now()
        with frozen_time(start):
            approved = await patch(client, utility, enrollment, status="ACTIVE")
        assert approved.json()["enrolled_at"] == isoformat_z(start)
        assert approved.json()["status_reason"] == "Enrollment approved by utility"
        with frozen_time(start + timedelta(days=1)):
            await patch(client, utility, enrollment, status="PAUSED")
            resumed = await patch(client, utility, enrollment, status="ACTIVE")
        assert resumed.json()["enrolled_at"] == isoformat_z(start)
        assert resumed.json()["unenrolled_at"] is None
        with frozen_time(start + timedelta(days=2)):
            ended = await patch(client, utility, enrollment, status="UNENROLLED")
        assert ended.json()["unenrolled_at"] == isoformat_z(start + timedelta(days=2))

    async def test_reason_is_stored_and_sent(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        utility: Tenant,
        enrollment: Enrollment,
    ) -> None:
        response = await patch(
            client, utility, enrollment, status="NEEDS_ACTION", status_reason="Upload a bill"
        )
        assert response.json()["status_reason"] == "Upload a bill"
        messages = await outbox(session, "enrollment.updated")
        assert {m.payload["status_reason"] for m in messages} == {"Upload a bill"}

    async def test_the_same_status_again_changes_nothing(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        utility: Tenant,
        enrollment: Enrollment,
    ) -> None:
        first = await patch(client, utility, enrollment, status="ACTIVE")
        with frozen_time(utc_now() + timedelta(hours=1)):
            again = await patch(client, utility, enrollment, status="ACTIVE")
        assert again.status_code == 200
        assert again.json() == first.json()
        assert len(await outbox(session, "enrollment.updated")) == 2  # the first change only

    @pytest.mark.parametrize("final", [S.REJECTED, S.UNENROLLED])
    async def test_a_final_enrollment_takes_no_change_but_a_repeat_is_fine(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        utility: Tenant,
        program: Program,
        enrollment: Enrollment,
        final: S,
    ) -> None:
        await create_group(session, program, "zone-a")
        await set_status(session, enrollment, final)
        for body in ({"group_ids": ["zone-a"]}, {"group_ids": []}, {"status_reason": "x"}):
            response = await patch(client, utility, enrollment, **body)
            assert response.status_code == 409, body
        repeat = await patch(client, utility, enrollment, status=final)
        assert repeat.status_code == 200
        assert group_ids(repeat) == []
        assert await outbox(session, "enrollment.updated") == []

    async def test_unknown_status_is_422(
        self, client: httpx.AsyncClient, utility: Tenant, enrollment: Enrollment
    ) -> None:
        response = await patch(client, utility, enrollment, status="APPROVED")
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == "status"


class TestGroupIds:
    async def test_group_ids_replace_the_sites_groups(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        utility: Tenant,
        program: Program,
        enrollment: Enrollment,
    ) -> None:
        for gid in ("a", "b", "c"):
            await create_group(session, program, gid)
        assert group_ids(await patch(client, utility, enrollment, group_ids=["a", "b"])) == [
            "a",
            "b",
        ]
        assert group_ids(await patch(client, utility, enrollment, group_ids=["c"])) == ["c"]
        assert group_ids(await patch(client, utility, enrollment, status="ACTIVE")) == ["c"]
        assert group_ids(await patch(client, utility, enrollment, group_ids=None)) == ["c"]
        assert group_ids(await patch(client, utility, enrollment, group_ids=[])) == []
        # Group membership is not part of the OEM's Enrollment: only the status change was told.
        assert len(await outbox(session, "enrollment.updated")) == 2

    async def test_unknown_group_is_422_naming_it_and_changes_nothing(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        utility: Tenant,
        program: Program,
        enrollment: Enrollment,
    ) -> None:
        await create_group(session, program, "a")
        other_program = await create_program(session, utility, name="Winter")
        await create_group(session, other_program, "theirs")
        await patch(client, utility, enrollment, group_ids=["a"])
        response = await patch(
            client, utility, enrollment, status="ACTIVE", group_ids=["a", "nope", "theirs"]
        )
        assert response.status_code == 422
        assert [e["path"] for e in response.json()["errors"]] == ["group_ids.1", "group_ids.2"]
        assert "nope" in response.json()["errors"][0]["message"]
        read = await client.get(f"/v1/enrollments/{enrollment.id}", headers=utility.headers)
        assert group_ids(read) == ["a"]
        assert read.json()["status"] == "PENDING"


class TestAccess:
    async def test_another_utility_gets_404_on_every_route(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        other_utility: Tenant,
        program: Program,
        enrollment: Enrollment,
    ) -> None:
        for method, url, body in (
            ("GET", f"/v1/enrollments?program_id={program.id}", None),
            ("GET", f"/v1/enrollments/{enrollment.id}", None),
            ("PATCH", f"/v1/enrollments/{enrollment.id}", {"status": "ACTIVE"}),
        ):
            response = await client.request(method, url, json=body, headers=other_utility.headers)
            assert response.status_code == 404, (method, url)
        stored = await session.get_one(Enrollment, enrollment.id, populate_existing=True)
        assert stored.status == S.PENDING

    async def test_oem_key_gets_403_on_every_route(
        self,
        client: httpx.AsyncClient,
        oem: Tenant,
        program: Program,
        enrollment: Enrollment,
    ) -> None:
        for method, url, body in (
            ("GET", f"/v1/enrollments?program_id={program.id}", None),
            ("GET", f"/v1/enrollments/{enrollment.id}", None),
            ("PATCH", f"/v1/enrollments/{enrollment.id}", {"status": "ACTIVE"}),
        ):
            response = await client.request(method, url, json=body, headers=oem.headers)
            assert response.status_code == 403, (method, url)

    async def test_unknown_enrollment_is_404(
        self, client: httpx.AsyncClient, utility: Tenant
    ) -> None:
        url = "/v1/enrollments/00000000-0000-0000-0000-000000000000"
        assert (await client.get(url, headers=utility.headers)).status_code == 404


class TestGroupTargetedEvents:
    async def test_a_group_event_targets_exactly_the_sites_put_in_the_group(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        utility: Tenant,
        oem: Tenant,
    ) -> None:
        program = await create_program(session, utility, auto_approve=True)
        enrollments = {}
        for site_id, device_ids in (("home-1", ["b-1", "b-2"]), ("home-2", ["b-3"])):
            site = await create_site(session, oem, site_id)
            devices = [await create_device(session, site, d) for d in device_ids]
            enrollments[site_id] = await create_enrollment(session, site, program, devices)
        await create_group(session, program, "LZ_HOUSTON")
        await patch(client, utility, enrollments["home-1"], group_ids=["LZ_HOUSTON"])
        assert await targeted_devices(client, utility, oem, program, hours=2) == ["b-1", "b-2"]
        await patch(client, utility, enrollments["home-1"], group_ids=[])
        await patch(client, utility, enrollments["home-2"], group_ids=["LZ_HOUSTON"])
        assert await targeted_devices(client, utility, oem, program, hours=30) == ["b-3"]


async def targeted_devices(
    client: httpx.AsyncClient, utility: Tenant, oem: Tenant, program: Program, *, hours: int
) -> list[str]:
    """Dispatch a discharge to the LZ_HOUSTON group; the devices that got its main command."""
    body = {
        "program_id": str(program.id),
        "target_type": "GROUP",
        "target_ids": ["LZ_HOUSTON"],
        "actions": [
            {
                "mode": "DISCHARGE",
                "starts_at": isoformat_z(utc_now() + timedelta(hours=hours)),
                "duration_s": 3600,
            }
        ],
    }
    event = await client.post("/v1/events", json=body, headers=utility.headers)
    assert event.status_code == 200, event.text
    commands = (await client.get("/v1/commands?limit=1000", headers=oem.headers)).json()
    return sorted(
        c["device_id"]
        for c in commands
        if c["event_id"] == event.json()["id"] and not c["is_preparatory_action"]
    )
