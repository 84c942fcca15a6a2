"""The acknowledgement's fast lane answers exactly as the FastAPI route does.

`plain` is the same application without the lane: every answer of one is compared with the
other's, byte for byte, on the same database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands import fast_ack
from gridhive.commands.models import Command
from gridhive.config import Settings
from gridhive.sites.models import Site
from tests.factories import (
    Tenant,
    create_command,
    create_device,
    create_program,
    create_site,
    site_token,
)


@pytest.fixture
async def plain(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The application as it would be without the fast lane (same session, same overrides)."""
    without = FastAPI()
    without.router = app.router
    without.state = app.state
    without.dependency_overrides = app.dependency_overrides
    without.exception_handlers = app.exception_handlers
    without.user_middleware = list(app.user_middleware)
    transport = httpx.ASGITransport(app=without, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def home(session: AsyncSession, oem: Tenant) -> Site:
    return await create_site(session, oem, "site-1")


@pytest.fixture
async def commands(session: AsyncSession, utility: Tenant, home: Site) -> list[Command]:
    program = await create_program(session, utility)
    site = home
    made = []
    for n in range(2):
        device = await create_device(session, site, f"battery-{n}")
        made.append(await create_command(session, program, device))
    return made


def same_answer(one: httpx.Response, other: httpx.Response) -> None:
    assert (one.status_code, one.content) == (other.status_code, other.content)
    assert one.headers["content-type"] == other.headers["content-type"]
    assert len(one.headers["x-request-id"]) == len(other.headers["x-request-id"]) == 32


class TestSameAnswers:
    @pytest.mark.parametrize("path", ["/v1/command/{}", "/v1/commands/{}"])
    async def test_an_acknowledgement_and_its_repeat(
        self,
        client: httpx.AsyncClient,
        plain: httpx.AsyncClient,
        oem: Tenant,
        commands: list[Command],
        path: str,
    ) -> None:
        body = {"device_status": "FAILED", "device_status_reason": "inverter fault"}
        url = path.format(commands[0].id)
        fast = await client.patch(url, json=body, headers=oem.headers)
        assert fast.json()["device_status"] == "FAILED_FAULT"
        same_answer(fast, await plain.patch(url, json=body, headers=oem.headers))
        # And the other way round: the route changes, the lane repeats.
        url = path.format(commands[1].id)
        ok = {"device_status": "OK"}
        routed = await plain.patch(url, json=ok, headers=oem.headers)
        same_answer(routed, await client.patch(url, json=ok, headers=oem.headers))

    async def test_every_refusal(
        self,
        session: AsyncSession,
        client: httpx.AsyncClient,
        plain: httpx.AsyncClient,
        oem: Tenant,
        other_oem: Tenant,
        utility: Tenant,
        commands: list[Command],
        home: Site,
    ) -> None:
        url = f"/v1/command/{commands[0].id}"
        site_headers = await site_token(session, oem, home)
        ok = {"device_status": "OK"}
        cases: list[tuple[str, dict[str, str], object]] = [
            (url, {}, ok),  # no credential
            (url, {"Authorization": "Bearer ghk_nope_nope"}, ok),
            (url, {"Authorization": "Basic abc"}, ok),
            (url, utility.headers, ok),
            (url, site_headers, ok),  # a site token
            (url, other_oem.headers, ok),  # another tenant's command
            ("/v1/command/00000000-0000-0000-0000-000000000000", oem.headers, ok),
            ("/v1/command/not-a-uuid", oem.headers, ok),
            (url, oem.headers, {"device_status": "MAYBE"}),
            (url, oem.headers, {"device_status": "OK", "device_status_reason": "x" * 501}),
            (url, oem.headers, [1, 2]),
        ]
        for target, headers, body in cases:
            fast = await client.patch(target, json=body, headers=headers)
            assert fast.status_code >= 400, (target, headers, body)
            same_answer(fast, await plain.patch(target, json=body, headers=headers))
        for content in (b"{not json", b""):
            fast = await client.patch(url, content=content, headers=oem.headers)
            same_answer(fast, await plain.patch(url, content=content, headers=oem.headers))
        form = {**oem.headers, "Content-Type": "text/plain"}
        fast = await client.patch(url, content=b'{"device_status": "OK"}', headers=form)
        assert fast.status_code == 422
        same_answer(fast, await plain.patch(url, content=b'{"device_status": "OK"}', headers=form))
        stored = await client.get("/v1/commands", headers=oem.headers)
        assert {c["device_status"] for c in stored.json()} == {"PENDING"}  # nothing was written


class TestTheLaneIsTaken:
    async def test_a_plain_acknowledgement_does_not_reach_the_router(
        self,
        client: httpx.AsyncClient,
        oem: Tenant,
        commands: list[Command],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        handed_over: list[str] = []
        original = fast_ack._replay

        def spy(chunks: list[bytes], **kwargs: Any) -> object:
            handed_over.append(b"".join(chunks).decode())
            return original(chunks, **kwargs)

        monkeypatch.setattr(fast_ack, "_replay", spy)
        url = f"/v1/command/{commands[0].id}"
        answered = await client.patch(url, json={"device_status": "OK"}, headers=oem.headers)
        assert answered.json()["device_status"] == "OK"
        assert handed_over == []
        refused = await client.patch(url, json={"device_status": "MAYBE"}, headers=oem.headers)
        assert refused.status_code == 422
        assert handed_over == ['{"device_status":"MAYBE"}']


class TestTheLaneStandsInFrontOfEverything:
    async def test_it_answers_with_the_callers_request_id(
        self, client: httpx.AsyncClient, oem: Tenant, commands: list[Command]
    ) -> None:
        url = f"/v1/command/{commands[0].id}"
        headers = {**oem.headers, "X-Request-Id": "oem-trace-42"}
        answered = await client.patch(url, json={"device_status": "OK"}, headers=headers)
        assert answered.status_code == 200
        assert answered.headers["x-request-id"] == "oem-trace-42"

    async def test_a_body_too_large_for_an_acknowledgement_goes_to_the_route(
        self,
        client: httpx.AsyncClient,
        plain: httpx.AsyncClient,
        settings: Settings,
        oem: Tenant,
        commands: list[Command],
    ) -> None:
        url = f"/v1/command/{commands[0].id}"
        padded = {"device_status": "OK", "device_status_reason": "x" * 20_000}
        fast = await client.patch(url, json=padded, headers=oem.headers)
        assert fast.status_code == 422  # a reason over 500 characters, as the route says
        same_answer(fast, await plain.patch(url, json=padded, headers=oem.headers))
        huge = b"{" + b" " * (settings.limits.max_body_bytes + 1) + b"}"
        fast = await client.patch(url, content=huge, headers=oem.headers)
        assert fast.status_code == 413
        same_answer(fast, await plain.patch(url, content=huge, headers=oem.headers))

    async def test_a_body_sent_in_pieces_without_a_length_is_read_whole(
        self, client: httpx.AsyncClient, oem: Tenant, commands: list[Command]
    ) -> None:
        async def pieces() -> AsyncIterator[bytes]:
            yield b'{"device_status":'
            yield b'"OK"}'

        url = f"/v1/command/{commands[0].id}"
        answered = await client.patch(url, content=pieces(), headers=oem.headers)
        assert answered.status_code == 200
        assert answered.json()["device_status"] == "OK"
