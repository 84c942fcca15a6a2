"""Utility pages: programs with capacity and groups, enrollments, fleet health."""

from __future__ import annotations

import html

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.dashboard import utility_pages
from gridhive.enrollments.models import Enrollment
from tests.factories import (
    Tenant,
    create_device,
    create_enrollment,
    create_group,
    create_program,
    create_site,
)
from tests.web.dashboard_support import Fleet, report_soc, seed_fleet, sign_in


@pytest.fixture
async def fleet(session: AsyncSession, utility: Tenant, oem: Tenant) -> Fleet:
    return await seed_fleet(session, utility, oem)


@pytest.fixture
async def signed_in(client: httpx.AsyncClient, fleet: Fleet) -> httpx.AsyncClient:
    await sign_in(client, fleet.utility)
    return client


class TestPrograms:
    async def test_the_list_links_each_program(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        page = await signed_in.get("/dashboard/programs")
        assert page.status_code == 200
        assert "Summer Peak Rewards" in page.text
        assert f"/dashboard/programs/{fleet.program.id}" in page.text

    async def test_the_program_page_shows_capacity_now_per_group(
        self, signed_in: httpx.AsyncClient, session: AsyncSession, fleet: Fleet
    ) -> None:
        await create_group(session, fleet.program, "zone-a", "Load zone A")
        page = await signed_in.get(f"/dashboard/programs/{fleet.program.id}")
        assert page.status_code == 200
        assert "Capacity now" in page.text
        assert "Batteries available" in page.text
        assert "0 / 2" in page.text  # no telemetry yet: both batteries in unknown state
        assert "Load zone A" in page.text

    async def test_another_utilitys_program_is_not_found(
        self, client: httpx.AsyncClient, fleet: Fleet, other_utility: Tenant
    ) -> None:
        await sign_in(client, other_utility)
        page = await client.get(f"/dashboard/programs/{fleet.program.id}")
        assert page.status_code == 404
        assert "Not found" in page.text

    async def test_a_malformed_program_id_is_a_clear_4xx_page(
        self, signed_in: httpx.AsyncClient
    ) -> None:
        page = await signed_in.get("/dashboard/programs/not-a-uuid")
        assert page.status_code == 422
        assert page.headers["content-type"].startswith("text/html")
        assert "Traceback" not in page.text


class TestGroups:
    async def test_create_rename_and_delete_a_group(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        base = f"/dashboard/programs/{fleet.program.id}"
        created = await signed_in.post(f"{base}/groups", data={"id": "zone-b", "name": "Zone B"})
        assert created.status_code == 303
        assert "Group created" in (await signed_in.get(created.headers["location"])).text
        await signed_in.post(f"{base}/groups/zone-b", data={"name": "North valley"})
        assert "North valley" in (await signed_in.get(base)).text
        deleted = await signed_in.post(f"{base}/groups/zone-b/delete")
        assert deleted.status_code == 303
        assert "North valley" not in (await signed_in.get(base)).text

    async def test_a_bad_group_id_is_shown_at_the_field_with_the_input_kept(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        base = f"/dashboard/programs/{fleet.program.id}"
        page = await signed_in.post(f"{base}/groups", data={"id": "zone a!", "name": "Zone A"})
        assert page.status_code == 422
        assert 'id="group-id-error"' in page.text
        assert "should match pattern" in page.text
        assert 'value="zone a!"' in page.text

    async def test_an_id_in_use_is_named(
        self, signed_in: httpx.AsyncClient, session: AsyncSession, fleet: Fleet
    ) -> None:
        await create_group(session, fleet.program, "zone-a")
        base = f"/dashboard/programs/{fleet.program.id}"
        page = await signed_in.post(f"{base}/groups", data={"id": "zone-a", "name": "Again"})
        assert page.status_code == 409
        assert "already exists in this program" in page.text

    async def test_an_unknown_group_is_not_found(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        page = await signed_in.post(f"/dashboard/programs/{fleet.program.id}/groups/nope/delete")
        assert page.status_code == 404


class TestEnrollments:
    @pytest.fixture
    async def pending(self, session: AsyncSession, fleet: Fleet) -> Enrollment:
        """A home waiting for the utility, in a program that does not approve by itself."""
        program = await create_program(session, fleet.utility, name="Winter Reserve")
        site = await create_site(session, fleet.oem, "home-9")
        battery = await create_device(session, site, "b-9")
        return await create_enrollment(session, site, program, [battery])

    async def test_the_status_filter_shows_only_that_status(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        url = f"/dashboard/enrollments?program={fleet.program.id}"
        active = await signed_in.get(f"{url}&status=ACTIVE")
        assert "home-1" in active.text
        assert "home-2" in active.text
        paused = await signed_in.get(f"{url}&status=PAUSED")
        assert "home-1" not in paused.text
        assert "No PAUSED enrollments" in paused.text

    async def test_a_large_program_is_paged_with_its_filter_kept(
        self, signed_in: httpx.AsyncClient, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(utility_pages, "ENROLLMENTS_PER_PAGE", 1)
        url = f"/dashboard/enrollments?program={fleet.program.id}&status=ACTIVE"
        first = await signed_in.get(url)
        assert "home-1" in first.text
        assert "home-2" not in first.text
        next_link = f'href="?program={fleet.program.id}&status=ACTIVE&page=2">Next'
        assert next_link in html.unescape(first.text)
        second = await signed_in.get(f"{url}&page=2")
        assert "home-2" in second.text
        assert "home-1" not in second.text
        assert 'status=ACTIVE&page=1">Previous' in html.unescape(second.text)

    async def test_approve_a_pending_enrollment(
        self, signed_in: httpx.AsyncClient, pending: Enrollment
    ) -> None:
        url = f"/dashboard/enrollments?program={pending.program_id}"
        before = await signed_in.get(url)
        assert '<span class="badge PENDING">PENDING</span>' in before.text
        assert "Approve" in before.text
        done = await signed_in.post(
            f"/dashboard/enrollments/{pending.id}", data={"status": "ACTIVE"}
        )
        assert done.status_code == 303
        after = await signed_in.get(done.headers["location"])
        assert "Enrollment updated" in after.text
        assert '<span class="badge ACTIVE">ACTIVE</span>' in after.text
        assert "Pause" in after.text

    async def test_reject_then_no_more_decisions(
        self, signed_in: httpx.AsyncClient, pending: Enrollment
    ) -> None:
        await signed_in.post(f"/dashboard/enrollments/{pending.id}", data={"status": "REJECTED"})
        page = await signed_in.get(f"/dashboard/enrollments?program={pending.program_id}")
        assert '<span class="badge REJECTED">REJECTED</span>' in page.text
        assert "Final" in page.text
        again = await signed_in.post(
            f"/dashboard/enrollments/{pending.id}", data={"status": "ACTIVE"}
        )
        assert again.status_code == 409

    async def test_pause_and_set_groups(
        self, signed_in: httpx.AsyncClient, session: AsyncSession, fleet: Fleet
    ) -> None:
        await create_group(session, fleet.program, "zone-a", "Load zone A")
        url = f"/dashboard/enrollments?program={fleet.program.id}"
        page = await signed_in.get(url)
        enrollment_id = page.text.split('id="enrollment-', 1)[1].split('"', 1)[0]
        target = f"/dashboard/enrollments/{enrollment_id}"
        await signed_in.post(target, data={"set_groups": "1", "group_ids": ["zone-a"]})
        await signed_in.post(target, data={"status": "PAUSED"})
        after = await signed_in.get(f"{url}&status=PAUSED")
        assert "home-1" in after.text
        assert 'value="zone-a" checked' in after.text

    async def test_an_unknown_group_is_the_apis_422(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        page = await signed_in.get(f"/dashboard/enrollments?program={fleet.program.id}")
        enrollment_id = page.text.split('id="enrollment-', 1)[1].split('"', 1)[0]
        response = await signed_in.post(
            f"/dashboard/enrollments/{enrollment_id}",
            data={"set_groups": "1", "group_ids": ["nope"]},
        )
        assert response.status_code == 422
        assert "nope" in response.text

    async def test_another_utilitys_enrollment_is_not_found(
        self, client: httpx.AsyncClient, pending: Enrollment, other_utility: Tenant
    ) -> None:
        await sign_in(client, other_utility)
        response = await client.post(
            f"/dashboard/enrollments/{pending.id}", data={"status": "ACTIVE"}
        )
        assert response.status_code == 404
        listing = await client.get(f"/dashboard/enrollments?program={pending.program_id}")
        assert listing.status_code == 404

    async def test_a_bad_status_is_a_clear_4xx(
        self, signed_in: httpx.AsyncClient, pending: Enrollment
    ) -> None:
        response = await signed_in.post(
            f"/dashboard/enrollments/{pending.id}", data={"status": "WHATEVER"}
        )
        assert response.status_code == 422
        assert "Traceback" not in response.text


class TestFleetHealth:
    async def test_online_devices_soc_histogram_and_capacity(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        await report_soc(signed_in, fleet, {"b-1": 85.0, "b-2": 42.0})
        page = await signed_in.get(f"/dashboard/fleet?program={fleet.program.id}")
        assert page.status_code == 200
        assert '<div class="stat" id="online-devices">2</div>' in page.text
        chart = page.text.split('id="soc-data">', 1)[1].split("</script>", 1)[0]
        assert '"data": [0, 0, 0, 0, 1, 0, 0, 0, 1, 0]' in chart
        assert "Capacity now" in page.text
        assert "2 / 2" in page.text
