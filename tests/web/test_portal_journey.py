"""The homeowner journey in a real browser (journeys.md §3): session link, enroll, opt out.

The device maker and the utility act over HTTP with their keys, as they would in production;
the homeowner acts only through the portal's pages. With GRIDHIVE_SCREENSHOTS=1 the pages are
also saved to docs/screenshots/portal-*.png (not part of the normal run).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridhive.kit.time import isoformat_z, utc_now
from tests.factories import Tenant, battery_fields, create_program, create_tenant
from tests.web.conftest import LiveServer

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PROGRAM = {
    "name": "Summer Peak Rewards",
    "description": "Your battery helps the grid on the hottest summer evenings.",
    "state_codes": ["CA"],
    "earnings_for_site_upfront": 100,
    "earnings_for_site_yearly": 250,
    "minimum_commitment_months": 12,
    "minimum_reserve_percentage": 20,
    "enrollment_form": [
        {
            "name": "account_id",
            "label": "Utility account number",
            "type": "string",
            "hint": "Printed at the top of your electricity bill",
        },
        {"name": "owns_home", "label": "I own this home", "type": "boolean"},
    ],
    "terms_and_conditions_version": "2026-01-01",
    "terms_and_conditions_text": (
        "1. Your battery may be discharged during up to 30 events a year.\n"
        "2. At least 20% of its charge is always kept for you.\n"
        "3. You may opt out of any event, and leave after the commitment period."
    ),
}


@dataclass(frozen=True)
class Parties:
    utility: Tenant
    oem: Tenant
    program_id: str


@pytest.fixture
async def parties(live: LiveServer) -> Parties:
    async with live.sessionmaker() as session:
        utility = await create_tenant(session, kind="utility", name="Acme Power")
        oem = await create_tenant(session, kind="oem", name="Volt Batteries")
        program = await create_program(session, utility, **PROGRAM)
        return Parties(utility, oem, str(program.id))


async def session_link(live: LiveServer, parties: Parties, **branding: str) -> str:
    """What the device maker's backend does: POST /v1/sessions, then build the portal link."""
    body = {
        "site": {"id": "home-42", "zip_code": "94110", "state_code": "CA"},
        "devices": [{k: v for k, v in battery_fields("pw-1").items() if k != "configuration"}],
    }
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        answer = await http.post("/v1/sessions", json=body, headers=parties.oem.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["has_programs"] is True
    query = httpx.QueryParams({"token": answer.json()["token"], **branding})
    return f"{live.base_url}/auth/session_token?{query}"


async def utility_call(
    live: LiveServer, parties: Parties, method: str, path: str, **kw: Any
) -> Any:
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        answer = await http.request(method, path, headers=parties.utility.headers, **kw)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def approve_enrollment(live: LiveServer, parties: Parties) -> None:
    page = await utility_call(
        live, parties, "GET", "/v1/enrollments", params={"program_id": parties.program_id}
    )
    [enrollment] = page["enrollments"]
    await utility_call(
        live, parties, "PATCH", f"/v1/enrollments/{enrollment['id']}", json={"status": "ACTIVE"}
    )


async def dispatch_event(live: LiveServer, parties: Parties) -> str:
    starts_at = (utc_now() + timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    body = {
        "program_id": parties.program_id,
        "target_type": "PROGRAM",
        "target_ids": [parties.program_id],
        "actions": [
            {
                "mode": "DISCHARGE",
                "starts_at": isoformat_z(starts_at),
                "duration_s": 7200,
                "power_mode": "SETPOINT",
                "setpoint_w": 4000,
                "setpoint_mode": "PER_DEVICE",
            }
        ],
    }
    return str((await utility_call(live, parties, "POST", "/v1/events", json=body))["id"])


async def device_commands(live: LiveServer, parties: Parties, event_id: str) -> list[Any]:
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        answer = await http.get("/v1/commands", headers=parties.oem.headers)
    assert answer.status_code == 200, answer.text
    return [c for c in answer.json() if c["event_id"] == event_id]


async def screenshot(page: Any, name: str) -> None:
    if os.environ.get("GRIDHIVE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / f"portal-{name}.png"), full_page=True)


async def test_homeowner_enrolls_sees_an_event_and_opts_out(
    live: LiveServer, parties: Parties, phone_page: Any
) -> None:
    from playwright.async_api import expect

    page = phone_page
    await page.goto(await session_link(live, parties, primaryButtonBackgroundColor="#0b5394"))
    await expect(page.get_by_role("heading", name="Programs your home can join")).to_be_visible()
    await expect(page.get_by_text("$250")).to_be_visible()
    await screenshot(page, "phone-home")

    await page.get_by_role("link", name="View and enroll").click()
    await page.get_by_label("Utility account number").fill("1234567-0")
    await page.get_by_label("I own this home").check()
    await expect(page.get_by_label("PowerCell 13")).to_be_checked()
    await page.get_by_label("I agree to the terms and conditions").check()
    await screenshot(page, "phone-program")
    await page.get_by_role("button", name="Enroll").click()

    status = page.get_by_test_id("enrollment-status")
    await expect(status).to_have_text("PENDING")
    await expect(page.get_by_text("Waiting for the utility to approve")).to_be_visible()

    await approve_enrollment(live, parties)
    await page.reload()
    await expect(status).to_have_text("ACTIVE")
    await screenshot(page, "phone-enrolled")

    event_id = await dispatch_event(live, parties)
    await page.get_by_role("link", name="Events", exact=True).click()
    event = page.locator(f'[data-event-id="{event_id}"]')
    await expect(event).to_contain_text("Your battery discharges")
    await expect(event).to_contain_text("at up to 4.0 kW")
    await expect(event.get_by_test_id("participation")).to_have_text("Your battery is taking part.")
    await screenshot(page, "phone-events")

    await event.get_by_role("button", name="Opt out of this event").click()
    await expect(page.get_by_role("status")).to_contain_text("will not take part")
    await expect(event.get_by_test_id("participation")).to_contain_text("Not participating")
    await screenshot(page, "phone-opted-out")

    commands = await device_commands(live, parties, event_id)
    assert commands, "the event gave the battery no command"
    assert {c["status"] for c in commands} == {"OPT_OUT"}


async def test_the_enroll_form_works_with_the_keyboard_alone(
    live: LiveServer, parties: Parties, page: Any
) -> None:
    from playwright.async_api import expect

    await page.goto(await session_link(live, parties))
    await screenshot(page, "desktop-home")
    await tab_to(page, page.get_by_role("link", name="View and enroll"))
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Enroll")).to_be_visible()

    # Submitting with nothing filled: the errors are announced and the input kept.
    await tab_to(page, page.get_by_role("button", name="Enroll"))
    await page.keyboard.press("Enter")
    errors = page.locator("#form-errors")
    await expect(errors).to_be_focused()
    await expect(errors).to_contain_text("Please check 2 things below.")
    await screenshot(page, "desktop-program-errors")

    order = await tab_order(page, start="#answer_account_id", steps=6)
    assert order == [
        "answer_account_id",
        "answer_owns_home",
        "device-1",
        "terms-text",
        "agree",
        "submit",
    ]
    await page.locator("#answer_account_id").focus()
    await page.keyboard.type("1234567-0")
    await tab_to(page, page.get_by_label("I agree to the terms and conditions"))
    await page.keyboard.press("Space")
    await tab_to(page, page.get_by_role("button", name="Enroll"))
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("enrollment-status")).to_have_text("PENDING")
    await screenshot(page, "desktop-enrolled")


async def tab_to(page: Any, target: Any, limit: int = 40) -> None:
    """Press Tab until `target` has the focus, as a keyboard user would."""
    handle = await target.element_handle()
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate("(el) => document.activeElement === el", handle):
            return
    raise AssertionError(f"{target} cannot be reached with Tab")


async def tab_order(page: Any, *, start: str, steps: int) -> list[str]:
    """The ids (or role) of the elements Tab visits from `start`."""
    await page.locator(start).focus()
    seen = []
    for index in range(steps):
        if index:
            await page.keyboard.press("Tab")
        seen.append(
            await page.evaluate(
                "() => { const el = document.activeElement;"
                " return el.id || el.className.split(' ')[0] || el.type; }"
            )
        )
    return seen
