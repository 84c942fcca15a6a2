"""Signing in and out of the dashboard, and who may see which page."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.auth import service as auth_service
from gridhive.kit.time import frozen_time, utc_now
from gridhive.web.session import DASHBOARD_COOKIE
from tests.factories import Tenant
from tests.web.dashboard_support import sign_in


class TestSignIn:
    async def test_a_utility_key_opens_the_dashboard_named_after_the_utility(
        self, client: httpx.AsyncClient, utility: Tenant
    ) -> None:
        await sign_in(client, utility)
        cookie = client.cookies.get(DASHBOARD_COOKIE)
        assert cookie
        assert not cookie.startswith("ghk_")
        page = await client.get("/dashboard", follow_redirects=True)
        assert page.status_code == 200
        assert str(page.url).endswith("/dashboard/events")
        assert "Acme Power" in page.text
        assert "Utility" in page.text

    async def test_a_device_maker_lands_on_its_commands(
        self, client: httpx.AsyncClient, oem: Tenant
    ) -> None:
        await sign_in(client, oem)
        page = await client.get("/dashboard", follow_redirects=True)
        assert str(page.url).endswith("/dashboard/commands")
        assert "Volt Batteries" in page.text
        assert "Device maker" in page.text

    async def test_a_wrong_key_shows_the_form_again_with_the_reason(
        self, client: httpx.AsyncClient, utility: Tenant
    ) -> None:
        wrong = utility.key[:-4] + "abcd"
        response = await client.post("/dashboard/sign-in", data={"api_key": wrong})
        assert response.status_code == 401
        assert "not valid or has been revoked" in response.text
        assert 'name="api_key"' in response.text
        assert wrong not in response.text  # a typed key is never echoed back
        assert DASHBOARD_COOKIE not in client.cookies

    async def test_an_empty_or_huge_key_is_refused_with_the_form(
        self, client: httpx.AsyncClient
    ) -> None:
        for key in ("", "ghk_" + "x" * 100_000):
            response = await client.post("/dashboard/sign-in", data={"api_key": key})
            assert response.status_code == 401
            assert "not valid" in response.text

    async def test_a_link_to_a_page_opens_that_page_after_signing_in(
        self, client: httpx.AsyncClient, utility: Tenant
    ) -> None:
        form = await client.get("/dashboard/sign-in?next=/dashboard/fleet")
        assert 'name="next" value="/dashboard/fleet"' in form.text
        answer = await client.post(
            "/dashboard/sign-in", data={"api_key": utility.key, "next": "/dashboard/fleet"}
        )
        assert answer.headers["location"] == "/dashboard/fleet"

    async def test_a_next_link_never_leads_off_the_dashboard(
        self, client: httpx.AsyncClient, utility: Tenant
    ) -> None:
        for target in ("https://evil.example", "//evil.example", "/dashboard/..//evil", "/v1/x"):
            client.cookies.clear()
            answer = await client.post(
                "/dashboard/sign-in", data={"api_key": utility.key, "next": target}
            )
            assert answer.headers["location"] == "/dashboard", target

    async def test_an_operator_key_does_not_open_the_dashboard(
        self, client: httpx.AsyncClient, admin: Tenant
    ) -> None:
        response = await client.post("/dashboard/sign-in", data={"api_key": admin.key})
        assert response.status_code == 401
        assert "for utilities and device makers" in response.text


class TestSignedOut:
    async def test_a_page_without_a_session_sends_the_browser_to_sign_in(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/dashboard/events")
        assert response.status_code == 303
        assert response.headers["location"] == "/dashboard/sign-in?next=%2Fdashboard%2Fevents"

    async def test_signing_in_returns_to_the_page_that_was_asked_for(
        self, client: httpx.AsyncClient, utility: Tenant
    ) -> None:
        first = await client.get("/dashboard/fleet")
        form = await client.get(first.headers["location"])
        assert 'value="/dashboard/fleet"' in form.text
        signed_in = await client.post(
            "/dashboard/sign-in", data={"api_key": utility.key, "next": "/dashboard/fleet"}
        )
        assert signed_in.headers["location"] == "/dashboard/fleet"

    async def test_an_expired_session_sends_the_browser_to_sign_in(
        self, client: httpx.AsyncClient, utility: Tenant
    ) -> None:
        await sign_in(client, utility)
        with frozen_time(utc_now() + timedelta(hours=13)):
            response = await client.get("/dashboard/events")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/dashboard/sign-in?next=")

    async def test_htmx_refreshes_of_an_ended_session_ask_for_a_full_reload(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/dashboard/events", headers={"HX-Request": "true"})
        assert response.headers["HX-Redirect"] == "/dashboard/sign-in"

    async def test_signing_out_ends_the_session_on_the_server(
        self, client: httpx.AsyncClient, utility: Tenant
    ) -> None:
        await sign_in(client, utility)
        stolen = client.cookies[DASHBOARD_COOKIE]
        response = await client.post("/dashboard/sign-out")
        assert response.status_code == 303
        assert DASHBOARD_COOKIE not in client.cookies
        client.cookies.set(DASHBOARD_COOKIE, stolen)
        replay = await client.get("/dashboard/events")
        assert replay.headers["location"].startswith("/dashboard/sign-in?next=")
        client.cookies.clear()
        signed_out = await client.get(response.headers["location"])
        assert "You are signed out" in signed_out.text

    async def test_revoking_the_key_ends_its_sessions(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        await sign_in(client, oem)
        keys = await client.get("/dashboard/keys")
        assert "(this session)" in keys.text
        [key] = await auth_service.search_api_keys(session, org_id=oem.org.id)
        revoked = await client.post(f"/dashboard/keys/{key.id}/revoke")
        assert revoked.status_code == 303
        after = await client.get("/dashboard/keys")
        assert after.headers["location"].startswith("/dashboard/sign-in?next=")


class TestRoles:
    async def test_a_utility_cannot_open_device_maker_pages(
        self, client: httpx.AsyncClient, utility: Tenant
    ) -> None:
        await sign_in(client, utility)
        for url in ("/dashboard/commands", "/dashboard/webhooks", "/dashboard/keys"):
            response = await client.get(url)
            assert response.status_code == 403, url
            assert "for device makers" in response.text
            assert "Traceback" not in response.text

    async def test_a_device_maker_cannot_open_utility_pages(
        self, client: httpx.AsyncClient, oem: Tenant
    ) -> None:
        await sign_in(client, oem)
        for url in ("/dashboard/events", "/dashboard/programs", "/dashboard/fleet"):
            response = await client.get(url)
            assert response.status_code == 403, url
            assert "for utilities" in response.text
        post = await client.post("/dashboard/events/new", data={"program_id": "x"})
        assert post.status_code == 403
