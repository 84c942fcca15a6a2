from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.devices.models import Device
from gridhive.enrollments.models import Enrollment, EnrollmentStatus
from gridhive.programs.models import Program
from gridhive.sites.models import Site
from gridhive.webhooks.models import OutboundMessage
from tests.factories import (
    Tenant,
    create_device,
    create_enrollment,
    create_program,
    create_site,
    site_token,
)

ENROLLMENT_FIELDS = {
    "id",
    "device_ids",
    "site_id",
    "program_id",
    "enroll_method",
    "status",
    "status_reason",
    "enrolled_at",
    "unenrolled_at",
    "program_specific_attributes",
    "has_agreed_to_terms_and_conditions",
    "terms_and_conditions_version",
    "created_at",
    "updated_at",
}
PROGRAM_FIELDS = {
    "id",
    "name",
    "description",
    "eligible_device_types",
    "can_auto_enroll",
    "minimum_reserve_percentage",
    "minimum_commitment_months",
    "participation_months",
    "earnings_for_site_upfront",
    "earnings_for_site_yearly",
    "enrollment_form",
    "terms_and_conditions_version",
    "terms_and_conditions_text",
    "created_at",
    "updated_at",
}
ACCOUNT_FIELD = {"name": "account_id", "label": "Utility Account Number", "type": "string"}


def enroll_body(program: Program, *device_ids: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "device_ids": list(device_ids) or ["battery-1"],
        "program_id": str(program.id),
        "enroll_method": "USER_ACTION",
        "has_agreed_to_terms_and_conditions": True,
    }
    body.update(overrides)
    return body


async def enroll(
    client: httpx.AsyncClient, oem: Tenant, program: Program, *device_ids: str, **overrides: Any
) -> httpx.Response:
    return await client.post(
        "/v1/site/site-1/enrollments",
        json=enroll_body(program, *device_ids, **overrides),
        headers=oem.headers,
    )


def error_paths(response: httpx.Response) -> list[str]:
    return [error["path"] for error in response.json()["errors"]]


async def outbox(session: AsyncSession, event_type: str) -> list[OutboundMessage]:
    rows = await session.scalars(
        sa.select(OutboundMessage).where(OutboundMessage.event_type == event_type)
    )
    return list(rows)


class TestSitePrograms:
    async def test_lists_programs_offered_at_the_sites_place(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        utility: Tenant,
        site: Site,
        battery: Device,
    ) -> None:
        in_ca = await create_program(session, utility, name="CA", state_codes=["CA"])
        await create_program(session, utility, name="TX", state_codes=["TX"])
        await create_program(session, utility, name="EV", eligible_device_types=["EV_CHARGER"])
        response = await client.get(
            "/v1/site/site-1/programs?device_type=BATTERY",
            headers=await site_token(session, oem, site),
        )
        assert response.status_code == 200
        assert [p["id"] for p in response.json()] == [str(in_ca.id)]
        assert set(response.json()[0]) == PROGRAM_FIELDS

    async def test_zip_code_query_replaces_the_sites_zip(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        utility: Tenant,
        site: Site,
    ) -> None:
        program = await create_program(session, utility, zip_codes=["10001"])
        url = "/v1/site/site-1/programs?device_type=BATTERY"
        assert (await client.get(url, headers=oem.headers)).json() == []
        found = await client.get(f"{url}&zip_code=10001", headers=oem.headers)
        assert [p["id"] for p in found.json()] == [str(program.id)]

    async def test_sandbox_zip_shows_test_programs_only(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_site(session, oem, "sandbox-site", zip_code="88801")
        test_program = await create_program(session, utility, is_test=True, state_codes=["NY"])
        await create_program(session, utility, name="Anywhere")
        response = await client.get(
            "/v1/site/sandbox-site/programs?device_type=BATTERY", headers=oem.headers
        )
        assert [p["id"] for p in response.json()] == [str(test_program.id)]

    async def test_minimum_capacity_is_judged_on_the_sum_of_the_sites_batteries(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        utility: Tenant,
        site: Site,
        battery: Device,
    ) -> None:
        program = await create_program(session, utility, minimum_battery_capacity_wh=20_000)
        url = "/v1/site/site-1/programs?device_type=BATTERY"
        assert (await client.get(url, headers=oem.headers)).json() == []
        await create_device(session, site, "battery-2")  # 2 x 13,500 Wh
        assert [p["id"] for p in (await client.get(url, headers=oem.headers)).json()] == [
            str(program.id)
        ]

    async def test_device_type_is_required(
        self, client: httpx.AsyncClient, oem: Tenant, site: Site
    ) -> None:
        response = await client.get("/v1/site/site-1/programs", headers=oem.headers)
        assert response.status_code == 422
        assert error_paths(response) == ["device_type"]

    async def test_read_one_program_and_unknown_is_404(
        self, client: httpx.AsyncClient, oem: Tenant, site: Site, program: Program
    ) -> None:
        found = await client.get(f"/v1/site/site-1/program/{program.id}", headers=oem.headers)
        assert found.status_code == 200
        assert found.json()["id"] == str(program.id)
        assert set(found.json()) == PROGRAM_FIELDS
        missing = await client.get(
            "/v1/site/site-1/program/00000000-0000-0000-0000-000000000000", headers=oem.headers
        )
        assert missing.status_code == 404


class TestCreateEnrollment:
    async def test_user_action_waits_for_the_utility(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        site: Site,
        battery: Device,
        program: Program,
    ) -> None:
        second = await create_device(session, site, "battery-2")
        response = await client.post(
            "/v1/site/site-1/enrollments",
            json=enroll_body(program, second.id, battery.id),
            headers=await site_token(session, oem, site),
        )
        assert response.status_code == 200
        body = response.json()
        assert set(body) == ENROLLMENT_FIELDS
        assert body["device_ids"] == ["battery-2", "battery-1"]  # as sent
        assert body["site_id"] == "site-1"
        assert body["program_id"] == str(program.id)
        assert (body["status"], body["status_reason"]) == (
            "PENDING",
            "Waiting for the utility's approval",
        )
        assert body["enrolled_at"] is None
        assert body["unenrolled_at"] is None
        assert body["created_at"].endswith("Z")

    async def test_program_that_approves_on_its_own_is_active_at_once(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        utility: Tenant,
        site: Site,
        battery: Device,
    ) -> None:
        program = await create_program(session, utility, auto_approve=True)
        body = (await enroll(client, oem, program)).json()
        assert (body["status"], body["status_reason"]) == (
            "ACTIVE",
            "Enrollment approved by utility",
        )
        assert body["enrolled_at"].endswith("Z")

    async def test_auto_enroll_is_active_at_once(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        utility: Tenant,
        site: Site,
        battery: Device,
    ) -> None:
        program = await create_program(session, utility, can_auto_enroll=True)
        body = (await enroll(client, oem, program, enroll_method="AUTO_ENROLL")).json()
        assert (body["status"], body["status_reason"]) == ("ACTIVE", "Enrolled automatically")
        assert body["enroll_method"] == "AUTO_ENROLL"
        assert body["enrolled_at"] is not None

    async def test_auto_enroll_needs_a_program_that_allows_it(
        self, client: httpx.AsyncClient, oem: Tenant, battery: Device, program: Program
    ) -> None:
        response = await enroll(client, oem, program, enroll_method="AUTO_ENROLL")
        assert response.status_code == 422
        assert error_paths(response) == ["enroll_method"]

    async def test_created_enrollment_is_told_to_the_oem_and_the_utility(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        utility: Tenant,
        battery: Device,
        program: Program,
    ) -> None:
        body = (await enroll(client, oem, program)).json()
        messages = await outbox(session, "enrollment.created")
        assert {m.org_id for m in messages} == {oem.org.id, utility.org.id}
        for message in messages:
            assert message.object_type == "enrollment"
            assert message.subject_id == "site-1"
            assert message.payload == {**body, "object_type": "enrollment"}


class TestEnrollmentChecks:
    async def test_program_id_is_required(
        self, client: httpx.AsyncClient, oem: Tenant, battery: Device, program: Program
    ) -> None:
        body = enroll_body(program)
        del body["program_id"]
        response = await client.post("/v1/site/site-1/enrollments", json=body, headers=oem.headers)
        assert response.status_code == 422
        assert error_paths(response) == ["program_id"]

    async def test_unknown_program_is_404(
        self, client: httpx.AsyncClient, oem: Tenant, battery: Device, program: Program
    ) -> None:
        body = enroll_body(program, program_id="00000000-0000-0000-0000-000000000000")
        response = await client.post("/v1/site/site-1/enrollments", json=body, headers=oem.headers)
        assert response.status_code == 404

    async def test_program_not_offered_at_the_site_is_422_on_program_id(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        utility: Tenant,
        battery: Device,
    ) -> None:
        program = await create_program(session, utility, state_codes=["TX"])
        response = await enroll(client, oem, program)
        assert response.status_code == 422
        assert error_paths(response) == ["program_id"]
        assert "location" in response.json()["message"]

    async def test_program_needing_more_capacity_is_422_on_program_id(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        utility: Tenant,
        battery: Device,
    ) -> None:
        program = await create_program(session, utility, minimum_battery_power_w=6000)
        response = await enroll(client, oem, program)
        assert response.status_code == 422
        assert error_paths(response) == ["program_id"]
        assert "6000 W" in response.json()["message"]

    async def test_every_device_must_be_a_live_device_of_the_site(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        site: Site,
        battery: Device,
        program: Program,
    ) -> None:
        elsewhere = await create_site(session, oem, "site-2")
        await create_device(session, elsewhere, "battery-elsewhere")
        gone = await create_device(session, site, "battery-gone")
        await client.delete("/v1/site/site-1/device/battery-gone", headers=oem.headers)
        response = await enroll(
            client, oem, program, "battery-1", "nope", "battery-elsewhere", gone.id, "battery-1"
        )
        assert response.status_code == 422
        assert error_paths(response) == [
            "device_ids.1",
            "device_ids.2",
            "device_ids.3",
            "device_ids.4",
        ]
        messages = [e["message"] for e in response.json()["errors"]]
        assert "'nope'" in messages[0]
        assert "twice" in messages[3]

    async def test_device_of_a_type_the_program_does_not_take_is_named(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        site: Site,
        battery: Device,
        program: Program,
    ) -> None:
        await create_device(
            session, site, "charger-1", type="EV_CHARGER", attributes={"max_power_w": 11000}
        )
        response = await enroll(client, oem, program, "battery-1", "charger-1")
        assert response.status_code == 422
        assert error_paths(response) == ["device_ids.1"]
        assert "EV_CHARGER" in response.json()["message"]

    async def test_terms_must_be_agreed_in_the_current_version(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        utility: Tenant,
        battery: Device,
    ) -> None:
        program = await create_program(session, utility, terms_and_conditions_version="2025-01-01")
        response = await enroll(
            client,
            oem,
            program,
            has_agreed_to_terms_and_conditions=False,
            terms_and_conditions_version="2024-01-01",
        )
        assert response.status_code == 422
        assert error_paths(response) == [
            "has_agreed_to_terms_and_conditions",
            "terms_and_conditions_version",
        ]
        assert "'2025-01-01'" in response.json()["errors"][1]["message"]
        agreed = await enroll(client, oem, program, terms_and_conditions_version="2025-01-01")
        assert agreed.status_code == 200
        assert agreed.json()["terms_and_conditions_version"] == "2025-01-01"


class TestProgramSpecificAttributes:
    @pytest.fixture
    async def form_program(self, session: AsyncSession, utility: Tenant) -> Program:
        return await create_program(
            session,
            utility,
            enrollment_form=[
                ACCOUNT_FIELD,
                {"name": "has_solar", "label": "Solar panels?", "type": "boolean"},
                {"name": "panels_kw", "label": "Solar size", "type": "number", "required": False},
            ],
        )

    async def test_answers_are_checked_and_stored(
        self, client: httpx.AsyncClient, oem: Tenant, battery: Device, form_program: Program
    ) -> None:
        answers = [
            {"name": "account_id", "value": "1234567-0"},
            {"name": "has_solar", "value": "TRUE"},
            {"name": "panels_kw", "value": "7.5"},
        ]
        response = await enroll(client, oem, form_program, program_specific_attributes=answers)
        assert response.status_code == 200
        assert response.json()["program_specific_attributes"] == [
            {"name": "account_id", "value": "1234567-0"},
            {"name": "has_solar", "value": "true"},
            {"name": "panels_kw", "value": "7.5"},
        ]

    async def test_json_values_are_taken_as_their_text(
        self, client: httpx.AsyncClient, oem: Tenant, battery: Device, form_program: Program
    ) -> None:
        answers = [
            {"name": "account_id", "value": True},
            {"name": "has_solar", "value": False},
            {"name": "panels_kw", "value": 7.5},
        ]
        response = await enroll(client, oem, form_program, program_specific_attributes=answers)
        assert response.status_code == 200
        values = [a["value"] for a in response.json()["program_specific_attributes"]]
        assert values == ["true", "false", "7.5"]

    async def test_required_fields_must_be_answered(
        self, client: httpx.AsyncClient, oem: Tenant, battery: Device, form_program: Program
    ) -> None:
        answers = [{"name": "has_solar", "value": "false"}, {"name": "account_id", "value": ""}]
        response = await enroll(client, oem, form_program, program_specific_attributes=answers)
        assert response.status_code == 422
        assert error_paths(response) == ["program_specific_attributes"]
        assert "account_id" in response.json()["message"]

    @pytest.mark.parametrize(
        ("bad", "path"),
        [
            ({"has_solar": "yes"}, "program_specific_attributes.1.value"),
            ({"panels_kw": "seven"}, "program_specific_attributes.2.value"),
            ({"panels_kw": "nan"}, "program_specific_attributes.2.value"),
            ({"pet_name": "Rex"}, "program_specific_attributes.2.name"),
        ],
    )
    async def test_bad_answers_are_named(
        self,
        client: httpx.AsyncClient,
        oem: Tenant,
        battery: Device,
        form_program: Program,
        bad: dict[str, str],
        path: str,
    ) -> None:
        values = {"account_id": "1", "has_solar": "false", **bad}
        answers = [{"name": name, "value": value} for name, value in values.items()]
        response = await enroll(client, oem, form_program, program_specific_attributes=answers)
        assert response.status_code == 422
        assert error_paths(response) == [path]

    async def test_a_field_answered_twice_is_named(
        self, client: httpx.AsyncClient, oem: Tenant, battery: Device, form_program: Program
    ) -> None:
        answers = [
            {"name": "account_id", "value": "1"},
            {"name": "has_solar", "value": "false"},
            {"name": "account_id", "value": "2"},
        ]
        response = await enroll(client, oem, form_program, program_specific_attributes=answers)
        assert response.status_code == 422
        assert error_paths(response) == ["program_specific_attributes.2.name"]

    async def test_several_problems_come_back_together(
        self, client: httpx.AsyncClient, oem: Tenant, battery: Device, form_program: Program
    ) -> None:
        response = await enroll(client, oem, form_program, "nope", program_specific_attributes=[])
        assert response.status_code == 422
        assert error_paths(response) == [
            "device_ids.0",
            "program_specific_attributes",
            "program_specific_attributes",
        ]
        assert "(and 2 more)" in response.json()["message"]


class TestEnrollmentConflicts:
    async def test_second_open_enrollment_in_the_same_program_is_409(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        site: Site,
        battery: Device,
        program: Program,
    ) -> None:
        await create_enrollment(session, site, program, [battery])
        response = await enroll(client, oem, program)
        assert response.status_code == 409
        assert "already has an open enrollment" in response.json()["message"]

    async def test_rejected_site_cannot_apply_again(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        site: Site,
        battery: Device,
        program: Program,
    ) -> None:
        enrollment = await create_enrollment(session, site, program, [battery])
        enrollment.status = EnrollmentStatus.REJECTED
        await session.commit()
        response = await enroll(client, oem, program)
        assert response.status_code == 409
        assert "re-applying is not possible" in response.json()["message"]

    async def test_device_held_by_another_programs_enrollment_is_409(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        utility: Tenant,
        site: Site,
        battery: Device,
        program: Program,
    ) -> None:
        other = await create_program(session, utility, name="Winter")
        await create_enrollment(session, site, other, [battery])
        response = await enroll(client, oem, program)
        assert response.status_code == 409
        assert error_paths(response) == ["device_ids.0"]

    async def test_after_unenrolling_the_site_may_enroll_again(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        site: Site,
        battery: Device,
        program: Program,
    ) -> None:
        first = await create_enrollment(session, site, program, [battery])
        await client.delete(f"/v1/site/site-1/enrollment/{first.id}", headers=oem.headers)
        response = await enroll(client, oem, program)
        assert response.status_code == 200
        assert response.json()["id"] != str(first.id)


class TestReadAndUnenroll:
    async def test_lists_newest_first_with_paging(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        utility: Tenant,
        site: Site,
        battery: Device,
        program: Program,
    ) -> None:
        older = await create_enrollment(session, site, program, [battery])
        await client.delete(f"/v1/site/site-1/enrollment/{older.id}", headers=oem.headers)
        newer = await create_enrollment(session, site, program, [battery])
        listed = await client.get("/v1/site/site-1/enrollments", headers=oem.headers)
        assert [e["id"] for e in listed.json()] == [str(newer.id), str(older.id)]
        assert set(listed.json()[0]) == ENROLLMENT_FIELDS
        paged = await client.get("/v1/site/site-1/enrollments?skip=1&limit=1", headers=oem.headers)
        assert [e["id"] for e in paged.json()] == [str(older.id)]

    async def test_read_one_enrollment(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        site: Site,
        battery: Device,
        program: Program,
    ) -> None:
        enrollment = await create_enrollment(session, site, program, [battery])
        response = await client.get(
            f"/v1/site/site-1/enrollment/{enrollment.id}",
            headers=await site_token(session, oem, site),
        )
        assert response.status_code == 200
        assert response.json()["device_ids"] == ["battery-1"]

    async def test_enrollment_of_another_site_is_404(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        site: Site,
        battery: Device,
        program: Program,
    ) -> None:
        enrollment = await create_enrollment(session, site, program, [battery])
        await create_site(session, oem, "site-2")
        for method in ("GET", "DELETE"):
            response = await client.request(
                method, f"/v1/site/site-2/enrollment/{enrollment.id}", headers=oem.headers
            )
            assert response.status_code == 404

    async def test_unenroll_keeps_the_enrollment_and_tells_both_sides(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        utility: Tenant,
        site: Site,
        battery: Device,
        program: Program,
    ) -> None:
        enrollment = await create_enrollment(session, site, program, [battery])
        response = await client.delete(
            f"/v1/site/site-1/enrollment/{enrollment.id}",
            headers=await site_token(session, oem, site),
        )
        assert response.status_code == 204
        assert response.content == b""
        body = (
            await client.get(f"/v1/site/site-1/enrollment/{enrollment.id}", headers=oem.headers)
        ).json()
        assert (body["status"], body["status_reason"]) == (
            "UNENROLLED",
            "Unenrolled by the homeowner",
        )
        assert body["unenrolled_at"].endswith("Z")
        messages = await outbox(session, "enrollment.updated")
        assert {m.org_id for m in messages} == {oem.org.id, utility.org.id}
        assert all(m.payload["status"] == "UNENROLLED" for m in messages)

    @pytest.mark.parametrize("status", [EnrollmentStatus.UNENROLLED, EnrollmentStatus.REJECTED])
    async def test_unenrolling_an_ended_enrollment_is_409(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        site: Site,
        battery: Device,
        program: Program,
        status: EnrollmentStatus,
    ) -> None:
        enrollment = await create_enrollment(session, site, program, [battery])
        enrollment.status = status
        await session.commit()
        response = await client.delete(
            f"/v1/site/site-1/enrollment/{enrollment.id}", headers=oem.headers
        )
        assert response.status_code == 409
        assert f"already {status}" in response.json()["message"]
        assert await outbox(session, "enrollment.updated") == []


def site_routes(site_id: str, program: Program, enrollment_id: str) -> list[tuple[str, str]]:
    base = f"/v1/site/{site_id}"
    return [
        ("GET", f"{base}/programs?device_type=BATTERY"),
        ("GET", f"{base}/program/{program.id}"),
        ("POST", f"{base}/enrollments"),
        ("GET", f"{base}/enrollments"),
        ("GET", f"{base}/enrollment/{enrollment_id}"),
        ("DELETE", f"{base}/enrollment/{enrollment_id}"),
    ]


class TestAccess:
    async def test_another_oems_key_gets_404_on_every_route(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        other_oem: Tenant,
        site: Site,
        battery: Device,
        program: Program,
    ) -> None:
        enrollment = await create_enrollment(session, site, program, [battery])
        for method, url in site_routes("site-1", program, str(enrollment.id)):
            body = enroll_body(program) if method == "POST" else None
            response = await client.request(method, url, json=body, headers=other_oem.headers)
            assert response.status_code == 404, (method, url)
        assert await session.scalar(sa.select(sa.func.count()).select_from(Enrollment)) == 1

    async def test_another_oems_enrollment_is_404_on_a_site_with_the_same_id(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        other_oem: Tenant,
        site: Site,
        program: Program,
    ) -> None:
        theirs = await create_site(session, other_oem, "site-1")
        their_battery = await create_device(session, theirs, "battery-1")
        enrollment = await create_enrollment(session, theirs, program, [their_battery])
        for method in ("GET", "DELETE"):
            response = await client.request(
                method, f"/v1/site/site-1/enrollment/{enrollment.id}", headers=oem.headers
            )
            assert response.status_code == 404

    async def test_site_token_of_another_site_gets_403_on_every_route(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        site: Site,
        battery: Device,
        program: Program,
    ) -> None:
        other = await create_site(session, oem, "site-2")
        other_battery = await create_device(session, other, "battery-2")
        enrollment = await create_enrollment(session, other, program, [other_battery])
        headers = await site_token(session, oem, site)
        for method, url in site_routes("site-2", program, str(enrollment.id)):
            body = enroll_body(program, "battery-2") if method == "POST" else None
            response = await client.request(method, url, json=body, headers=headers)
            assert response.status_code == 403, (method, url)

    async def test_utility_key_is_403(
        self,
        client: httpx.AsyncClient,
        utility: Tenant,
        site: Site,
        program: Program,
    ) -> None:
        response = await client.get("/v1/site/site-1/enrollments", headers=utility.headers)
        assert response.status_code == 403

    @pytest.mark.parametrize("site_id", ["site-for-device::abc", "site-for-device%3A%3Aabc"])
    async def test_site_ids_with_colons_work_in_paths(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        program: Program,
        site_id: str,
    ) -> None:
        site = await create_site(session, oem, "site-for-device::abc")
        await create_device(session, site, "battery-1")
        created = await client.post(
            f"/v1/site/{site_id}/enrollments", json=enroll_body(program), headers=oem.headers
        )
        assert created.status_code == 200
        assert created.json()["site_id"] == "site-for-device::abc"
        enrollment_id = created.json()["id"]
        for method, url in site_routes(site_id, program, enrollment_id):
            if method != "POST":
                response = await client.request(method, url, headers=oem.headers)
                assert response.status_code in (200, 204), (method, url)
