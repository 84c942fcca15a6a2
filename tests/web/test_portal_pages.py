"""The homeowner portal's pages, checked as HTML: session link, programs, enrollment, events."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands.models import Command, CommandStatus
from gridhive.db.session import get_session
from gridhive.enrollments.models import Enrollment, EnrollmentStatus
from gridhive.portal.router import writing_session
from gridhive.programs.models import Program
from gridhive.sites.models import Site
from tests.factories import (
    Tenant,
    create_device,
    create_enrollment,
    create_event_at,
    create_program,
    create_site,
)

TERMS = {"terms_and_conditions_version": "2026-01-01", "terms_and_conditions_text": "Be nice."}
FORM = [
    {"name": "account_id", "label": "Utility account number", "type": "string"},
    {"name": "meter_count", "label": "Number of meters", "type": "number", "required": False},
]


@pytest.fixture(autouse=True)
def _links_in_the_test_transaction(app: FastAPI) -> None:
    """Following the link writes through its own unit of work: here, the test's session."""
    app.dependency_overrides[writing_session] = app.dependency_overrides[get_session]


@pytest.fixture
async def program(session: AsyncSession, utility: Tenant) -> Program:
    return await create_program(
        session,
        utility,
        state_codes=["CA"],
        earnings_for_site_upfront=100,
        earnings_for_site_yearly=250,
        minimum_commitment_months=12,
        minimum_reserve_percentage=25,
        enrollment_form=FORM,
        **TERMS,
    )


@pytest.fixture
async def home(session: AsyncSession, oem: Tenant) -> Site:
    site = await create_site(session, oem, "home-42")
    await create_device(session, site, "pw-1")
    return site


async def open_portal(client: httpx.AsyncClient, oem: Tenant, site_id: str, **brand: str) -> str:
    """What the OEM's app does: a session token, then the link; answers the link's token."""
    answer = await client.post("/v1/sessions", json={"site": {"id": site_id}}, headers=oem.headers)
    assert answer.status_code == 200, answer.text
    token = str(answer.json()["token"])
    opened = await client.get("/portal/session", params={"token": token, **brand})
    assert opened.status_code == 303
    assert opened.headers["location"] == "/portal"
    return token


def enroll_form(program: Program, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "answer_account_id": "1234567-0",
        "answer_meter_count": "",
        "device_ids": ["pw-1"],
        "agree": "true",
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


class TestSessionLink:
    async def test_the_link_opens_the_portal_for_its_site(
        self, client: httpx.AsyncClient, oem: Tenant, home: Site, program: Program
    ) -> None:
        await open_portal(client, oem, home.id)
        page = await client.get("/portal")
        assert page.status_code == 200
        assert "Programs your home can join" in page.text
        assert program.name in page.text

    async def test_flips_path_works_too(
        self, client: httpx.AsyncClient, oem: Tenant, home: Site
    ) -> None:
        answer = await client.post(
            "/v1/sessions", json={"site": {"id": home.id}}, headers=oem.headers
        )
        opened = await client.get("/auth/session_token", params={"token": answer.json()["token"]})
        assert opened.status_code == 303
        assert (await client.get("/portal")).status_code == 200

    async def test_a_used_link_is_a_friendly_401(
        self, client: httpx.AsyncClient, oem: Tenant, home: Site
    ) -> None:
        token = await open_portal(client, oem, home.id)
        client.cookies.clear()
        again = await client.get("/portal/session", params={"token": token})
        assert again.status_code == 401
        assert "Open the energy programs page again" in again.text
        assert (await client.get("/portal")).status_code == 401

    @pytest.mark.parametrize("token", ["ghp_unknown", "", "x" * 400])
    async def test_an_unknown_link_is_a_friendly_401(
        self, client: httpx.AsyncClient, token: str
    ) -> None:
        answer = await client.get("/portal/session", params={"token": token})
        assert answer.status_code == 401
        assert "This link has expired" in answer.text
        assert "Traceback" not in answer.text

    async def test_without_a_cookie_the_portal_asks_to_open_it_from_the_app(
        self, client: httpx.AsyncClient
    ) -> None:
        answer = await client.get("/portal/events")
        assert answer.status_code == 401
        assert "Open the portal again from your app" in answer.text


class TestBranding:
    async def test_good_parameters_restyle_the_pages(
        self, client: httpx.AsyncClient, oem: Tenant, home: Site, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("GRIDHIVE_PORTAL_ASSET_BASE_URL", "https://cdn.volt.example/brand/")
        await open_portal(
            client,
            oem,
            home.id,
            primaryButtonBackgroundColor="#123abc",
            primaryTextColor="navy",
            fontName="Open Sans",
            logoFileName="volt-logo.svg",
            faviconFileName="https://cdn.volt.example/favicon.ico",
            alwaysShowBackButton="true",
        )
        page = (await client.get("/portal")).text
        assert "--primary-bg: #123abc;" in page
        assert "--text: navy;" in page
        assert "--font: Open Sans, system-ui" in page
        assert 'src="https://cdn.volt.example/brand/volt-logo.svg"' in page
        assert 'href="https://cdn.volt.example/favicon.ico"' in page
        assert "portal-back-always" in page

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("primaryButtonBackgroundColor", "red; } body { display: none"),
            ("primaryTextColor", "#12345"),
            ("secondaryTextColor", "url(javascript:alert(1))"),
            ("fontName", "Arial; color: red"),
            ("fontName", "</style><script>alert(1)</script>"),
            ("logoFileName", "../../etc/passwd.png"),
            ("logoFileName", "javascript:alert(1)"),
            ("faviconFileName", "http://plain.example/icon.png"),
            ("faviconFileName", 'https://x.example/a.png" onload="alert(1)'),
        ],
    )
    async def test_a_bad_parameter_is_ignored_never_injected(
        self, client: httpx.AsyncClient, oem: Tenant, home: Site, name: str, value: str
    ) -> None:
        await open_portal(client, oem, home.id, **{name: value})
        page = await client.get("/portal")
        assert page.status_code == 200
        for fragment in ("display: none", "alert(1)", "passwd", "plain.example", "color: red"):
            assert fragment not in page.text
        assert "<style>" not in page.text
        assert 'rel="icon"' not in page.text

    async def test_a_forged_brand_cookie_is_checked_again(
        self, client: httpx.AsyncClient, oem: Tenant, home: Site
    ) -> None:
        await open_portal(client, oem, home.id)
        client.cookies.set("gridhive_portal_brand", "eyJwcmltYXJ5VGV4dENvbG9yIjoicmVkO30ifQ")
        page = await client.get("/portal")  # {"primaryTextColor":"red;}"}
        assert page.status_code == 200
        assert "red;}" not in page.text


class TestPrograms:
    async def test_the_home_shows_what_a_program_pays_and_asks(
        self, client: httpx.AsyncClient, oem: Tenant, home: Site, program: Program
    ) -> None:
        await open_portal(client, oem, home.id)
        page = (await client.get("/portal")).text
        for shown in ("$100", "$250", "12 months", "All year", "at least 25%"):
            assert shown in page

    async def test_the_program_page_generates_the_form_with_terms_and_devices(
        self, client: httpx.AsyncClient, oem: Tenant, home: Site, program: Program
    ) -> None:
        await open_portal(client, oem, home.id)
        page = await client.get(f"/portal/programs/{program.id}")
        assert page.status_code == 200
        html = page.text
        assert '<label for="answer_account_id">Utility account number' in html
        assert 'name="answer_meter_count"' in html
        assert "(optional)" in html
        assert 'name="device_ids" value="pw-1"' in html
        assert "checked" in html
        assert "Be nice." in html
        assert "I agree to the terms and conditions" in html

    async def test_a_program_not_offered_to_the_home_is_404(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        utility: Tenant,
        home: Site,
    ) -> None:
        texas = await create_program(session, utility, name="Texas only", state_codes=["TX"])
        await open_portal(client, oem, home.id)
        for program_id in (str(texas.id), "not-a-uuid"):
            answer = await client.get(f"/portal/programs/{program_id}")
            assert answer.status_code == 404
            assert "Not found" in answer.text


class TestEnroll:
    async def test_enrolling_shows_pending(
        self, client: httpx.AsyncClient, oem: Tenant, home: Site, program: Program
    ) -> None:
        await open_portal(client, oem, home.id)
        answer = await client.post(
            f"/portal/programs/{program.id}/enroll", data=enroll_form(program)
        )
        assert answer.status_code == 303
        page = await client.get(answer.headers["location"])
        assert "You are enrolled. We will let you know" in page.text
        assert 'data-testid="enrollment-status">PENDING<' in page.text
        assert "Waiting for the utility to approve" in page.text
        enrollments = await client.get(f"/v1/site/{home.id}/enrollments", headers=oem.headers)
        [enrollment] = enrollments.json()
        assert enrollment["enroll_method"] == "USER_ACTION"
        assert enrollment["program_specific_attributes"] == [
            {"name": "account_id", "value": "1234567-0"}
        ]

    async def test_errors_show_by_their_fields_and_keep_the_input(
        self, client: httpx.AsyncClient, oem: Tenant, home: Site, program: Program
    ) -> None:
        await open_portal(client, oem, home.id)
        form = enroll_form(program, answer_account_id="", answer_meter_count="lots", agree=None)
        answer = await client.post(f"/portal/programs/{program.id}/enroll", data=form)
        assert answer.status_code == 422
        html = answer.text
        assert "Please check 3 things below." in html
        assert '<div class="field-error" id="answer_account_id-error">' in html
        assert "Please answer this question" in html
        assert 'aria-describedby="answer_account_id-error"' in html
        assert "The value of &#39;meter_count&#39; must be a number" in html
        assert 'value="lots"' in html
        assert "Tick &#34;I agree&#34; to accept the terms and conditions" in html

    async def test_no_device_chosen_is_shown_by_the_devices(
        self, client: httpx.AsyncClient, oem: Tenant, home: Site, program: Program
    ) -> None:
        await open_portal(client, oem, home.id)
        form = enroll_form(program, device_ids=None)
        answer = await client.post(f"/portal/programs/{program.id}/enroll", data=form)
        assert answer.status_code == 422
        assert 'id="devices-error"' in answer.text
        assert "Choose at least one device to enroll" in answer.text
        assert 'value="1234567-0"' in answer.text

    async def test_a_huge_or_foreign_answer_is_a_4xx_page(
        self, client: httpx.AsyncClient, oem: Tenant, home: Site, program: Program
    ) -> None:
        await open_portal(client, oem, home.id)
        form = enroll_form(program, answer_account_id="9" * 5000, device_ids=["someone-else"])
        answer = await client.post(f"/portal/programs/{program.id}/enroll", data=form)
        assert answer.status_code == 422
        assert "Too long: at most 1000 characters" in answer.text
        assert "Traceback" not in answer.text

    async def test_enrolling_twice_is_a_409_with_the_reason(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        home: Site,
        program: Program,
    ) -> None:
        await open_portal(client, oem, home.id)
        url = f"/portal/programs/{program.id}/enroll"
        assert (await client.post(url, data=enroll_form(program))).status_code == 303
        again = await client.post(url, data=enroll_form(program))
        assert again.status_code == 409
        assert "already has an open enrollment" in again.text
        assert "You are enrolled in this program" in again.text


class TestUnenroll:
    async def test_leaving_asks_first_then_unenrolls(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        home: Site,
        program: Program,
    ) -> None:
        device = await create_device(session, home, "pw-2")
        enrollment = await create_enrollment(session, home, program, [device], **_agreed())
        await open_portal(client, oem, home.id)
        home_page = await client.get("/portal")
        url = f"/portal/enrollments/{enrollment.id}/unenroll"
        assert url in home_page.text
        confirm = await client.get(url)
        assert "Leave Summer Peak Rewards?" in confirm.text
        done = await client.post(url)
        assert done.status_code == 303
        page = await client.get(done.headers["location"])
        assert "You have left the program." in page.text
        assert "Earlier enrollments" in page.text
        stored = await session.get(Enrollment, enrollment.id, populate_existing=True)
        assert stored is not None
        assert stored.status == EnrollmentStatus.UNENROLLED

    async def test_another_sites_enrollment_is_404(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        home: Site,
        program: Program,
    ) -> None:
        other = await create_site(session, oem, "home-43")
        device = await create_device(session, other, "other-1")
        enrollment = await create_enrollment(session, other, program, [device], **_agreed())
        await open_portal(client, oem, home.id)
        for method in ("GET", "POST"):
            answer = await client.request(method, f"/portal/enrollments/{enrollment.id}/unenroll")
            assert answer.status_code == 404
            assert "Not found" in answer.text


class TestEvents:
    async def test_events_show_times_and_what_the_battery_does_and_opt_out_works(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        home: Site,
        program: Program,
    ) -> None:
        device = await create_device(session, home, "pw-2")
        await create_enrollment(session, home, program, [device], **_agreed())
        event = await create_event_at(
            session, program, [device], starts_in=timedelta(hours=3), duration=timedelta(hours=2)
        )
        await open_portal(client, oem, home.id)
        page = await client.get("/portal/events")
        assert "Coming up" in page.text
        assert "Your battery discharges to power your home" in page.text
        assert " pm P" in page.text or " am P" in page.text  # Pacific time, 12-hour clock
        assert "Your battery is taking part." in page.text
        url = f"/portal/events/{event.id}/participation"
        answer = await client.post(url, data={"is_participating": "false"})
        assert answer.status_code == 303
        after = await client.get(answer.headers["location"])
        assert "Not participating" in after.text
        assert "Take part again" in after.text
        commands = await client.get("/v1/commands", headers=oem.headers)
        assert {c["status"] for c in commands.json()} == {"OPT_OUT"}

    async def test_opting_in_again_before_the_start(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        home: Site,
        program: Program,
    ) -> None:
        device = await create_device(session, home, "pw-2")
        await create_enrollment(session, home, program, [device], **_agreed())
        event = await create_event_at(
            session, program, [device], starts_in=timedelta(hours=3), duration=timedelta(hours=2)
        )
        await open_portal(client, oem, home.id)
        url = f"/portal/events/{event.id}/participation"
        await client.post(url, data={"is_participating": "false"})
        back = await client.post(url, data={"is_participating": "true"})
        assert back.status_code == 303, back.text
        page = await client.get(back.headers["location"])
        assert "Done: your battery will take part in this event again" in page.text
        assert "Opt out of this event" in page.text

    async def test_a_choice_that_is_neither_yes_nor_no_is_a_422_page(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        home: Site,
        program: Program,
    ) -> None:
        device = await create_device(session, home, "pw-2")
        await create_enrollment(session, home, program, [device], **_agreed())
        event = await create_event_at(
            session, program, [device], starts_in=timedelta(hours=3), duration=timedelta(hours=1)
        )
        await open_portal(client, oem, home.id)
        url = f"/portal/events/{event.id}/participation"
        answer = await client.post(url, data={"is_participating": "maybe"})
        assert answer.status_code == 422
        assert "Choose whether your battery takes part" in answer.text

    async def test_a_past_event_offers_no_choice(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        home: Site,
        program: Program,
    ) -> None:
        device = await create_device(session, home, "pw-2")
        await create_enrollment(session, home, program, [device], **_agreed())
        event = await create_event_at(
            session, program, [device], starts_in=-timedelta(hours=5), duration=timedelta(hours=1)
        )
        await open_portal(client, oem, home.id)
        page = await client.get("/portal/events")
        assert "Past events" in page.text
        assert "COMPLETED" in page.text
        assert "Opt out of this event" not in page.text
        refused = await client.post(
            f"/portal/events/{event.id}/participation", data={"is_participating": "false"}
        )
        assert refused.status_code == 409
        assert "nothing to opt out of" in refused.text

    async def test_another_sites_event_and_bad_input_are_4xx_pages(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        home: Site,
        program: Program,
    ) -> None:
        other = await create_site(session, oem, "home-43")
        device = await create_device(session, other, "other-1")
        await create_enrollment(session, other, program, [device], **_agreed())
        event = await create_event_at(
            session, program, [device], starts_in=timedelta(hours=3), duration=timedelta(hours=1)
        )
        await open_portal(client, oem, home.id)
        url = f"/portal/events/{event.id}/participation"
        foreign = await client.post(url, data={"is_participating": "false"})
        assert foreign.status_code == 404
        unknown = await client.post("/portal/events/zzz/participation", data={})
        assert unknown.status_code == 404
        commands = await session.get(
            Command, (await _only_command_id(session)), populate_existing=True
        )
        assert commands is not None
        assert commands.status == CommandStatus.OK


def _agreed() -> dict[str, Any]:
    return {
        "has_agreed_to_terms_and_conditions": True,
        "terms_and_conditions_version": TERMS["terms_and_conditions_version"],
        "program_specific_attributes": [{"name": "account_id", "value": "1"}],
    }


async def _only_command_id(session: AsyncSession) -> Any:
    return (await session.scalars(sa.select(Command.id))).one()
