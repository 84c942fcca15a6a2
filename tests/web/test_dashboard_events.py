"""Utility event pages: create from the form (the API's validation), the event page with plan,
commands, sites and chart, live refresh, and cancelling."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.kit.time import frozen_time, utc_now
from tests.factories import Tenant, create_event_at
from tests.web.dashboard_support import Fleet, event_form, seed_fleet, sign_in


@pytest.fixture
async def fleet(session: AsyncSession, utility: Tenant, oem: Tenant) -> Fleet:
    return await seed_fleet(session, utility, oem)


@pytest.fixture
async def signed_in(client: httpx.AsyncClient, fleet: Fleet) -> httpx.AsyncClient:
    await sign_in(client, fleet.utility)
    return client


async def create(client: httpx.AsyncClient, form: dict[str, Any]) -> str:
    """Post the form; the event's page URL."""
    response = await client.post("/dashboard/events/new", data=form)
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    return location.split("?", 1)[0]


def chart_data(html: str, element_id: str) -> dict[str, Any]:
    raw = html.split(f'id="{element_id}">', 1)[1].split("</script>", 1)[0]
    data: dict[str, Any] = json.loads(raw)
    return data


class TestCreateEvent:
    async def test_the_form_starts_from_the_chosen_program(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        page = await signed_in.get(f"/dashboard/events/new?program={fleet.program.id}")
        assert page.status_code == 200
        assert f'<option value="{fleet.program.id}" selected>' in page.text
        assert "Setpoint (kW)" in page.text
        assert "Total, split evenly" in page.text

    async def test_a_valid_form_dispatches_and_opens_the_event_page(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        response = await signed_in.post("/dashboard/events/new", data=event_form(fleet))
        assert response.status_code == 303
        page = await signed_in.get(response.headers["location"])
        assert "Event dispatched" in page.text
        assert "Summer Peak Rewards" in page.text
        assert '<span class="badge UPCOMING" id="event-status">UPCOMING</span>' in page.text
        assert "2 of 2 devices targeted get commands" in page.text
        assert "b-1" in page.text
        assert "b-2" in page.text
        # The API sees the same event: the form went through the same service.
        events = await signed_in.get("/v1/events", headers=fleet.utility.headers)
        [event] = events.json()
        assert event["actions"][0]["setpoint_w"] == 4000
        assert event["actions"][0]["duration_s"] == 7200

    async def test_an_empty_program_target_means_the_whole_program(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        page = await signed_in.get(await create(signed_in, event_form(fleet, target_ids="")))
        assert "2 of 2 devices targeted get commands" in page.text

    async def test_an_even_split_over_the_fleet(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        form = event_form(
            fleet, **{"actions.0.setpoint_mode": "EVEN", "actions.0.setpoint_kw": "6"}
        )
        page = await signed_in.get(await create(signed_in, form))
        assert "50.0 % of the expected total" in page.text
        assert page.text.count("3.0 kW") >= 2

    async def test_rule_errors_are_shown_by_their_fields_with_the_input_kept(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        past = (utc_now() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
        form = event_form(
            fleet,
            **{
                "actions.0.starts_at": past,
                "actions.0.backup_reserve_percentage": "150",
                "target_ids": "typo-program",
            },
        )
        page = await signed_in.post("/dashboard/events/new", data=form)
        assert page.status_code == 422
        assert 'id="actions-0-starts_at-error"' in page.text
        assert 'id="actions-0-backup_reserve_percentage-error"' in page.text
        assert f'value="{past}"' in page.text  # the operator's input is kept
        assert 'value="150"' in page.text
        assert "The event was not dispatched" in page.text

    async def test_schema_errors_use_the_apis_messages_at_the_fields(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        form = event_form(fleet, **{"actions.0.duration_min": "", "actions.0.setpoint_kw": "lots"})
        page = await signed_in.post("/dashboard/events/new", data=form)
        assert page.status_code == 422
        duration = page.text.split('id="actions-0-duration_min-error">', 1)[1]
        assert duration.startswith("Field required")
        setpoint = page.text.split('id="actions-0-setpoint_kw-error">', 1)[1]
        assert setpoint.startswith("Input should be a valid integer")
        assert 'value="lots"' in page.text

    async def test_an_unknown_target_is_named_at_the_ids(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        form = event_form(fleet, target_type="SITE", target_ids="home-1, home-404")
        page = await signed_in.post("/dashboard/events/new", data=form)
        assert page.status_code == 422
        message = page.text.split('id="target_ids-error">', 1)[1].split("</p>", 1)[0]
        assert "home-404" in message

    async def test_huge_values_are_a_clear_4xx(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        form = event_form(
            fleet, **{"actions.0.duration_min": "1e300", "actions.0.setpoint_kw": "1e300"}
        )
        page = await signed_in.post("/dashboard/events/new", data=form)
        assert 400 <= page.status_code < 500
        assert "Traceback" not in page.text

    async def test_another_utilitys_program_is_not_found(
        self, client: httpx.AsyncClient, fleet: Fleet, other_utility: Tenant
    ) -> None:
        await sign_in(client, other_utility)
        page = await client.post("/dashboard/events/new", data=event_form(fleet))
        assert page.status_code == 404
        assert "No program with id" in page.text


class TestEventPage:
    async def test_plan_commands_sites_and_chart(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        page = await signed_in.get(await create(signed_in, event_form(fleet)))
        assert "The plan" in page.text
        assert '<div class="stat" id="commands-pending">' in page.text
        assert "home-1" in page.text
        assert "home-2" in page.text
        chart = chart_data(page.text, "power-data")
        labels = [d["label"] for d in chart["datasets"]]
        assert labels == ["Requested kW", "Expected kW", "Delivered kW"]
        assert len(chart["labels"]) == 24  # 5-minute intervals of two hours
        assert chart["datasets"][0]["data"][0] == 8.0  # 4 kW on each of two batteries
        assert "chart-4.6.1.umd.min.js" in page.text

    async def test_the_live_part_refreshes_while_the_event_is_unfinished(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        url = await create(signed_in, event_form(fleet))
        live = await signed_in.get(f"{url}/live")
        assert live.status_code == 200
        assert 'hx-trigger="every 2s"' in live.text
        assert "<html" not in live.text  # a fragment for HTMX, not a page
        with frozen_time(utc_now() + timedelta(hours=6)):
            finished = await signed_in.get(f"{url}/live")
        assert "COMPLETED" in finished.text
        assert "hx-trigger" not in finished.text

    async def test_the_chart_figures_can_be_fetched_again(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        url = await create(signed_in, event_form(fleet))
        page = await signed_in.get(url)
        fresh = await signed_in.get(f"{url}/power")
        assert fresh.json() == chart_data(page.text, "power-data")

    async def test_acknowledgements_appear_in_the_live_part(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        url = await create(signed_in, event_form(fleet))
        commands = await signed_in.get("/v1/commands", headers=fleet.oem.headers)
        for command in commands.json():
            await signed_in.patch(
                f"/v1/command/{command['id']}",
                json={"device_status": "OK"},
                headers=fleet.oem.headers,
            )
        live = await signed_in.get(f"{url}/live")
        acknowledged = live.text.split('id="commands-acknowledged">', 1)[1]
        assert acknowledged.startswith(str(len(commands.json())))

    async def test_another_utilitys_event_is_not_found(
        self,
        client: httpx.AsyncClient,
        signed_in: httpx.AsyncClient,
        fleet: Fleet,
        other_utility: Tenant,
    ) -> None:
        url = await create(signed_in, event_form(fleet))
        client.cookies.clear()
        await sign_in(client, other_utility)
        for path in (url, f"{url}/live", f"{url}/cancel"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert "No event with id" in response.text
        assert (await client.post(f"{url}/cancel")).status_code == 404

    async def test_an_unknown_or_malformed_id_is_a_clear_page(
        self, signed_in: httpx.AsyncClient
    ) -> None:
        unknown = await signed_in.get(f"/dashboard/events/{uuid.uuid4()}")
        assert unknown.status_code == 404
        malformed = await signed_in.get("/dashboard/events/123'--")
        assert malformed.status_code == 422
        assert malformed.headers["content-type"].startswith("text/html")


class TestFinishedEvent:
    async def test_a_past_event_shows_its_figures_without_live_refresh_or_cancel(
        self, signed_in: httpx.AsyncClient, session: AsyncSession, fleet: Fleet
    ) -> None:
        event = await create_event_at(
            session,
            fleet.program,
            fleet.devices,
            starts_in=-timedelta(hours=3),
            duration=timedelta(hours=1),
        )
        page = await signed_in.get(f"/dashboard/events/{event.id}")
        assert page.status_code == 200
        assert '<span class="badge COMPLETED" id="event-status">COMPLETED</span>' in page.text
        assert "hx-trigger" not in page.text
        assert "Cancel event" not in page.text
        assert len(chart_data(page.text, "power-data")["labels"]) == 12


class TestCancel:
    async def test_cancel_asks_first_then_shows_canceled(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        url = await create(signed_in, event_form(fleet))
        confirm = await signed_in.get(f"{url}/cancel")
        assert "Cancel this event?" in confirm.text
        done = await signed_in.post(f"{url}/cancel")
        assert done.status_code == 303
        page = await signed_in.get(done.headers["location"])
        assert '<span class="badge CANCELED" id="event-status">CANCELED</span>' in page.text
        assert "Event canceled" in page.text
        assert "Cancel event" not in page.text
        commands = await signed_in.get("/v1/commands", headers=fleet.oem.headers)
        assert {c["status"] for c in commands.json()} == {"CANCELED"}

    async def test_cancelling_a_finished_event_is_a_409_page(
        self, signed_in: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        url = await create(signed_in, event_form(fleet))
        await signed_in.post(f"{url}/cancel")
        again = await signed_in.post(f"{url}/cancel")
        assert again.status_code == 409
        assert "already CANCELED" in again.text


class TestEventList:
    async def test_filter_by_status(self, signed_in: httpx.AsyncClient, fleet: Fleet) -> None:
        url = await create(signed_in, event_form(fleet))
        upcoming = await signed_in.get("/dashboard/events?status=UPCOMING")
        assert url in upcoming.text
        assert "Summer Peak Rewards" in upcoming.text
        canceled = await signed_in.get("/dashboard/events?status=CANCELED")
        assert url not in canceled.text
        bad = await signed_in.get("/dashboard/events?status=LATER")
        assert bad.status_code == 422
