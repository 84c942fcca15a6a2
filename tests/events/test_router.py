"""Events through the Utility and Mobile App APIs, on a real database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands.models import Command
from gridhive.events.models import CommandExplanation, Event
from gridhive.kit.time import frozen_time, isoformat_z, utc_now
from gridhive.programs.models import Group, Program, SiteGroup
from gridhive.sites.models import Site
from gridhive.webhooks.models import OutboundMessage
from gridhive.webhooks.repository import payload_of
from tests.factories import (
    Tenant,
    create_device,
    create_enrollment,
    create_program,
    create_site,
    create_tenant,
    site_token,
)


@dataclass
class Fleet:
    program: Program
    utility: Tenant
    oem: Tenant


@pytest.fixture
async def fleet(session: AsyncSession, utility: Tenant, oem: Tenant) -> Fleet:
    """Two enrolled homes: home-1 with two batteries, home-2 with one."""
    program = await create_program(session, utility, auto_approve=True)
    for site_id, devices in (("home-1", ["b-1", "b-2"]), ("home-2", ["b-3"])):
        site = await create_site(session, oem, site_id)
        batteries = [await create_device(session, site, d) for d in devices]
        await create_enrollment(session, site, program, batteries)
    return Fleet(program=program, utility=utility, oem=oem)


def discharge(
    fleet: Fleet,
    *,
    in_hours: float = 2,
    target_type: str = "PROGRAM",
    target_ids: list[str] | None = None,
    **action: Any,
) -> dict[str, Any]:
    starts_at = utc_now() + timedelta(hours=in_hours)
    return {
        "program_id": str(fleet.program.id),
        "target_type": target_type,
        "target_ids": target_ids if target_ids is not None else [str(fleet.program.id)],
        "actions": [
            {
                "mode": "DISCHARGE",
                "starts_at": isoformat_z(starts_at),
                "duration_s": 7200,
                "power_mode": "SETPOINT",
                "setpoint_w": 3000,
                **action,
            }
        ],
    }


async def dispatch(client: httpx.AsyncClient, fleet: Fleet, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/events", json=body, headers=fleet.utility.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def commands_of(
    client: httpx.AsyncClient, fleet: Fleet, event_id: str
) -> list[dict[str, Any]]:
    response = await client.get("/v1/commands?limit=1000", headers=fleet.oem.headers)
    return [c for c in response.json() if c["event_id"] == event_id]


class TestDispatch:
    async def test_seed_request_creates_an_event_of_the_seed_shape(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        event = await dispatch(client, fleet, discharge(fleet))
        assert set(event) >= {
            "actions",
            "created_at",
            "duration_s",
            "ends_at",
            "id",
            "program_id",
            "starts_at",
            "target_ids",
            "target_type",
            "updated_at",
        }
        assert event["status"] == "UPCOMING"
        assert event["duration_s"] == 7200
        assert set(event["actions"][0]) == {
            "backup_reserve_percentage",
            "duration_s",
            "enable_grid_import",
            "mode",
            "power_mode",
            "setpoint_mode",
            "setpoint_w",
            "starts_at",
        }

    async def test_every_enrolled_battery_gets_a_pending_command_and_a_precharge(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        event = await dispatch(client, fleet, discharge(fleet))
        commands = await commands_of(client, fleet, event["id"])
        main = [c for c in commands if not c["is_preparatory_action"]]
        prep = [c for c in commands if c["is_preparatory_action"]]
        assert sorted(c["device_id"] for c in main) == ["b-1", "b-2", "b-3"]
        assert {c["battery_commands"]["setpoint_w"] for c in main} == {3000}
        assert {c["device_status"] for c in commands} == {"PENDING"}
        assert sorted(c["device_id"] for c in prep) == ["b-1", "b-2", "b-3"]
        assert all(c["ends_at"] == main[0]["starts_at"] for c in prep)
        assert all(c["battery_commands"]["enable_grid_import"] is True for c in prep)
        types = (await session.scalars(sa.select(OutboundMessage.event_type))).all()
        assert types.count("command.created") == 6
        assert types.count("event.created") == 3  # the utility and two sites

    async def test_each_oem_message_carries_the_wire_form_it_announces(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        # Commands and site events are stored through shared templates: each message must
        # still read as its own command and its own site's event, exactly as the API shows them.
        event = await dispatch(client, fleet, discharge(fleet))
        polled = {c["id"]: c for c in await commands_of(client, fleet, event["id"])}
        messages = (
            await session.scalars(
                sa.select(OutboundMessage).where(OutboundMessage.org_id == fleet.oem.org.id)
            )
        ).all()
        created = {m.command_id: m for m in messages if m.event_type == "command.created"}
        assert {str(command_id) for command_id in created} == set(polled)
        for command_id, message in created.items():
            payload = await payload_of(session, message)
            assert payload == {**polled[str(command_id)], "object_type": "command"}
        site_messages = [m for m in messages if m.event_type == "event.created"]
        assert sorted(m.subject_id for m in site_messages) == ["home-1", "home-2"]
        for message in site_messages:
            site = await create_site(session, fleet.oem, message.subject_id)  # the same site
            shown = await client.get(
                f"/v1/site/{message.subject_id}/event/{event['id']}",
                headers=await site_token(session, fleet.oem, site),
            )
            payload = await payload_of(session, message)
            assert payload == {**shown.json(), "object_type": "event"}

    async def test_even_split_over_the_target(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        body = discharge(fleet, setpoint_w=6000, setpoint_mode="EVEN")
        event = await dispatch(client, fleet, body)
        main = [
            c
            for c in await commands_of(client, fleet, event["id"])
            if not c["is_preparatory_action"]
        ]
        assert sum(c["battery_commands"]["setpoint_w"] for c in main) == 6000

    @pytest.mark.parametrize(
        ("target_type", "target_ids", "expected"),
        [("SITE", ["home-2"], ["b-3"]), ("DEVICE", ["b-1", "b-3"], ["b-1", "b-3"])],
    )
    async def test_site_and_device_targets(
        self,
        client: httpx.AsyncClient,
        fleet: Fleet,
        target_type: str,
        target_ids: list[str],
        expected: list[str],
    ) -> None:
        event = await dispatch(
            client, fleet, discharge(fleet, target_type=target_type, target_ids=target_ids)
        )
        main = [
            c
            for c in await commands_of(client, fleet, event["id"])
            if not c["is_preparatory_action"]
        ]
        assert sorted(c["device_id"] for c in main) == expected

    async def test_group_target(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        group = Group(program_id=fleet.program.id, id="LZ_HOUSTON", name="Houston")
        session.add(group)
        await session.flush()
        home = (await client.get("/v1/site/home-1", headers=fleet.oem.headers)).json()

        site = await session.scalar(sa.select(Site).where(Site.id == home["id"]))
        assert site is not None
        session.add(SiteGroup(group_pk=group.pk, site_pk=site.pk))
        await session.commit()
        event = await dispatch(
            client, fleet, discharge(fleet, target_type="GROUP", target_ids=["LZ_HOUSTON"])
        )
        main = [
            c
            for c in await commands_of(client, fleet, event["id"])
            if not c["is_preparatory_action"]
        ]
        assert sorted(c["device_id"] for c in main) == ["b-1", "b-2"]

    @pytest.mark.parametrize(
        ("target_type", "target_ids", "named"),
        [
            ("SITE", ["home-9"], "home-9"),
            ("DEVICE", ["b-1", "nope"], "nope"),
            ("GROUP", ["zone-x"], "zone-x"),
            ("PROGRAM", ["another"], "another"),
        ],
    )
    async def test_unknown_targets_are_named(
        self,
        client: httpx.AsyncClient,
        fleet: Fleet,
        target_type: str,
        target_ids: list[str],
        named: str,
    ) -> None:
        response = await client.post(
            "/v1/events",
            json=discharge(fleet, target_type=target_type, target_ids=target_ids),
            headers=fleet.utility.headers,
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == "target_ids"
        assert named in response.json()["errors"][0]["message"]

    async def test_a_site_id_shared_by_two_oems_is_409(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        other = await create_tenant(session, kind="oem", name="Other")
        site = await create_site(session, other, "home-1")
        await create_enrollment(
            session, site, fleet.program, [await create_device(session, site, "x-1")]
        )
        response = await client.post(
            "/v1/events",
            json=discharge(fleet, target_type="SITE", target_ids=["home-1"]),
            headers=fleet.utility.headers,
        )
        assert response.status_code == 409
        assert "home-1" in response.json()["message"]

    @pytest.mark.parametrize(
        ("action", "path"),
        [
            ({"duration_s": 0}, "actions.0.duration_s"),
            ({"setpoint_w": None}, "actions.0.setpoint_w"),
            ({"backup_reserve_percentage": 5}, "actions.0.backup_reserve_percentage"),
        ],
    )
    async def test_broken_rules_are_422_naming_the_field_and_store_nothing(
        self,
        client: httpx.AsyncClient,
        fleet: Fleet,
        session: AsyncSession,
        action: dict[str, Any],
        path: str,
    ) -> None:
        response = await client.post(
            "/v1/events", json=discharge(fleet, **action), headers=fleet.utility.headers
        )
        assert response.status_code == 422
        assert path in [e["path"] for e in response.json()["errors"]]
        assert await session.scalar(sa.select(sa.func.count()).select_from(Event)) == 0

    @pytest.mark.parametrize(
        ("action", "path"),
        [
            ({"duration_s": 10**20}, "actions.0.duration_s"),
            ({"starts_at": "9999-12-31T23:00:00Z"}, "actions.0.starts_at"),
        ],
    )
    async def test_times_that_cannot_be_computed_are_422_not_500(
        self, client: httpx.AsyncClient, fleet: Fleet, action: dict[str, Any], path: str
    ) -> None:
        response = await client.post(
            "/v1/events", json=discharge(fleet, **action), headers=fleet.utility.headers
        )
        assert response.status_code == 422, response.text
        assert path in [e["path"] for e in response.json()["errors"]]

    async def test_past_start_is_422(self, client: httpx.AsyncClient, fleet: Fleet) -> None:
        response = await client.post(
            "/v1/events", json=discharge(fleet, in_hours=-1), headers=fleet.utility.headers
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == "actions.0.starts_at"

    async def test_a_failure_half_way_leaves_nothing(
        self,
        client: httpx.AsyncClient,
        fleet: Fleet,
        session: AsyncSession,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        from gridhive.events import service

        async def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("disk full")

        monkeypatch.setattr(service.webhook_service, "emit_batch", broken)
        response = await client.post(
            "/v1/events", json=discharge(fleet), headers=fleet.utility.headers
        )
        assert response.status_code == 500
        for model in (Event, Command):
            assert await session.scalar(sa.select(sa.func.count()).select_from(model)) == 0

    async def test_idempotency_key_returns_the_same_event(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        body = discharge(fleet)
        headers = {**fleet.utility.headers, "Idempotency-Key": "evt-1"}
        first = await client.post("/v1/events", json=body, headers=headers)
        again = await client.post("/v1/events", json=body, headers=headers)
        assert again.json()["id"] == first.json()["id"]
        listed = await client.get("/v1/events", headers=fleet.utility.headers)
        assert len(listed.json()) == 1


class TestPlanAndSites:
    async def test_plan_explains_each_command(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        event = await dispatch(client, fleet, discharge(fleet, setpoint_w=10000))
        plan = (
            await client.get(f"/v1/events/{event['id']}/plan", headers=fleet.utility.headers)
        ).json()
        assert plan["devices_targeted"] == 3
        # PER_DEVICE: 10 kW asked of each of 3 batteries rated 5 kW.
        assert plan["actions"][0]["requested_w"] == 30000
        assert plan["actions"][0]["expected_w"] == 15000
        assert plan["summary"]
        [device] = [d for d in plan["devices"] if d["device_id"] == "b-1"]
        assert len(device["commands"]) == 2
        assert all(c["explanation"] for c in device["commands"])

    async def test_alike_commands_show_the_reasons_stored_once_for_them(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        # Three alike batteries: one pre-charge and one discharge explanation, stored once each
        # and shown in full on every command (each with its own share, kind and action).
        event = await dispatch(client, fleet, discharge(fleet))
        plan = (
            await client.get(f"/v1/events/{event['id']}/plan", headers=fleet.utility.headers)
        ).json()
        commands = [c for d in plan["devices"] for c in d["commands"]]
        assert len(commands) == 6
        for command in commands:
            explanation = command["explanation"]
            preparatory = command["is_preparatory_action"]
            assert (explanation["kind"] == "action") is not preparatory
            if not preparatory:
                assert explanation["share_w"] == command["battery_commands"]["setpoint_w"]
        stored = await session.scalar(
            sa.select(sa.func.count())
            .select_from(CommandExplanation)
            .where(CommandExplanation.event_id == uuid.UUID(event["id"]))
        )
        assert stored == 2

    async def test_sites_show_expected_figures(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        event = await dispatch(client, fleet, discharge(fleet))
        sites = (
            await client.get(f"/v1/events/{event['id']}/sites", headers=fleet.utility.headers)
        ).json()
        by_site = {s["site_id"]: s for s in sites}
        # home-1: two batteries at 3 kW for 2 h.
        assert by_site["home-1"]["performance_expected_energy_wh"] == 12000
        assert by_site["home-1"]["performance_expected_power_w"] == 6000
        assert by_site["home-2"]["performance_expected_power_w"] == 3000
        assert by_site["home-1"]["is_participating"] is True


class TestCancel:
    async def test_cancel_before_start(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        event = await dispatch(client, fleet, discharge(fleet))
        response = await client.delete(f"/v1/events/{event['id']}", headers=fleet.utility.headers)
        assert response.status_code == 204
        commands = await commands_of(client, fleet, event["id"])
        assert {(c["status"], c["device_status"]) for c in commands} == {("CANCELED", "PENDING")}
        read = await client.get(f"/v1/events/{event['id']}", headers=fleet.utility.headers)
        assert read.json()["status"] == "CANCELED"
        types = (await session.scalars(sa.select(OutboundMessage.event_type))).all()
        assert types.count("event.canceled") == 3
        assert types.count("command.canceled") == 6
        again = await client.delete(f"/v1/events/{event['id']}", headers=fleet.utility.headers)
        assert again.status_code == 409

    async def test_cancel_during_changes_only_unfinished_commands(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        event = await dispatch(client, fleet, discharge(fleet))
        with frozen_time(utc_now() + timedelta(hours=2, minutes=30)):
            response = await client.delete(
                f"/v1/events/{event['id']}", headers=fleet.utility.headers
            )
        assert response.status_code == 204
        commands = await commands_of(client, fleet, event["id"])
        assert {c["status"] for c in commands if c["is_preparatory_action"]} == {"OK"}
        assert {c["status"] for c in commands if not c["is_preparatory_action"]} == {"CANCELED"}

    async def test_cancel_after_completion_is_409(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        event = await dispatch(client, fleet, discharge(fleet))
        with frozen_time(utc_now() + timedelta(hours=5)):
            response = await client.delete(
                f"/v1/events/{event['id']}", headers=fleet.utility.headers
            )
            assert response.status_code == 409
            read = await client.get(f"/v1/events/{event['id']}", headers=fleet.utility.headers)
            assert read.json()["status"] == "COMPLETED"


class TestParticipation:
    async def test_opt_out_before_start_then_back_in(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        event = await dispatch(client, fleet, discharge(fleet))
        site = await create_site(session, fleet.oem, "home-1")
        headers = await site_token(session, fleet.oem, site)
        path = f"/v1/site/home-1/event/{event['id']}"
        out = await client.patch(path, json={"is_participating": False}, headers=headers)
        assert out.status_code == 200
        assert out.json()["is_participating"] is False
        commands = await commands_of(client, fleet, event["id"])
        home1 = [c for c in commands if c["device_id"] in ("b-1", "b-2")]
        assert {(c["status"], c["device_status"]) for c in home1} == {("OPT_OUT", "PENDING")}
        assert {c["status"] for c in commands if c["device_id"] == "b-3"} == {"OK"}
        sites = (
            await client.get(f"/v1/events/{event['id']}/sites", headers=fleet.utility.headers)
        ).json()
        assert {s["site_id"]: s["is_participating"] for s in sites} == {
            "home-1": False,
            "home-2": True,
        }
        back = await client.patch(path, json={"is_participating": True}, headers=headers)
        assert back.status_code == 200
        commands = await commands_of(client, fleet, event["id"])
        assert {c["status"] for c in commands} == {"OK"}

    async def test_opt_out_during_allowed_opt_in_during_refused(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        event = await dispatch(client, fleet, discharge(fleet))
        path = f"/v1/site/home-1/event/{event['id']}"
        with frozen_time(utc_now() + timedelta(hours=2, minutes=30)):
            out = await client.patch(
                path, json={"is_participating": False}, headers=fleet.oem.headers
            )
            assert out.status_code == 200
            assert out.json()["status"] == "ACTIVE"
            back = await client.patch(
                path, json={"is_participating": True}, headers=fleet.oem.headers
            )
            assert back.status_code == 409

    async def test_opt_out_after_the_end_is_409(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        event = await dispatch(client, fleet, discharge(fleet))
        with frozen_time(utc_now() + timedelta(hours=5)):
            response = await client.patch(
                f"/v1/site/home-1/event/{event['id']}",
                json={"is_participating": False},
                headers=fleet.oem.headers,
            )
        assert response.status_code == 409


class TestSupersession:
    async def test_a_newer_overlapping_event_cancels_the_older_commands(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        first = await dispatch(
            client, fleet, discharge(fleet, target_type="DEVICE", target_ids=["b-1"])
        )
        second = await dispatch(
            client, fleet, discharge(fleet, target_type="DEVICE", target_ids=["b-1"], in_hours=2.5)
        )
        old = await commands_of(client, fleet, first["id"])
        assert {c["status"] for c in old if not c["is_preparatory_action"]} == {"CANCELED"}
        plan = (
            await client.get(f"/v1/events/{second['id']}/plan", headers=fleet.utility.headers)
        ).json()
        assert plan["superseded"]
        [old_main] = [c for c in old if not c["is_preparatory_action"]]
        [device] = plan["devices"]
        [main] = [c for c in device["commands"] if not c["is_preparatory_action"]]
        # Its own reason beside the ones it shares with its kind.
        assert main["explanation"]["supersedes"] == [old_main["id"]]
        assert main["explanation"]["kind"] == "action"


class TestSiteEvents:
    async def test_site_sees_its_events_newest_first_with_schedule(
        self, client: httpx.AsyncClient, fleet: Fleet
    ) -> None:
        early = await dispatch(client, fleet, discharge(fleet, in_hours=2))
        late = await dispatch(client, fleet, discharge(fleet, in_hours=30))
        listed = (await client.get("/v1/site/home-2/events", headers=fleet.oem.headers)).json()
        assert [e["id"] for e in listed] == [late["id"], early["id"]]
        assert set(listed[0]) == {
            "id",
            "program_id",
            "site_id",
            "starts_at",
            "ends_at",
            "duration_s",
            "schedule",
            "status",
            "is_participating",
            "created_at",
            "updated_at",
        }
        [item] = listed[0]["schedule"]
        assert set(item) == {"id", "program_id", "site_id", "starts_at", "ends_at", "duration_s"}
        with frozen_time(utc_now() + timedelta(hours=3)):
            active = await client.get(
                "/v1/site/home-2/events?status=ACTIVE", headers=fleet.oem.headers
            )
            both = await client.get(
                "/v1/site/home-2/events?status=ACTIVE&status=UPCOMING", headers=fleet.oem.headers
            )
        assert [e["id"] for e in active.json()] == [early["id"]]
        assert len(both.json()) == 2


class TestIsolation:
    @pytest.mark.parametrize(
        ("method", "suffix"),
        [("GET", ""), ("DELETE", ""), ("GET", "/sites"), ("GET", "/plan")],
    )
    async def test_another_utility_gets_404(
        self,
        client: httpx.AsyncClient,
        fleet: Fleet,
        other_utility: Tenant,
        method: str,
        suffix: str,
    ) -> None:
        event = await dispatch(client, fleet, discharge(fleet))
        response = await client.request(
            method, f"/v1/events/{event['id']}{suffix}", headers=other_utility.headers
        )
        assert response.status_code == 404
        listed = await client.get("/v1/events", headers=other_utility.headers)
        assert listed.json() == []

    async def test_another_utilitys_program_is_404(
        self, client: httpx.AsyncClient, fleet: Fleet, other_utility: Tenant
    ) -> None:
        response = await client.post(
            "/v1/events", json=discharge(fleet), headers=other_utility.headers
        )
        assert response.status_code == 404

    async def test_oem_keys_cannot_dispatch(self, client: httpx.AsyncClient, fleet: Fleet) -> None:
        response = await client.post("/v1/events", json=discharge(fleet), headers=fleet.oem.headers)
        assert response.status_code == 403

    @pytest.mark.parametrize("method", ["GET", "PATCH"])
    async def test_site_event_isolation(
        self,
        client: httpx.AsyncClient,
        fleet: Fleet,
        session: AsyncSession,
        other_oem: Tenant,
        method: str,
    ) -> None:
        event = await dispatch(client, fleet, discharge(fleet))
        path = f"/v1/site/home-1/event/{event['id']}"
        body = {"is_participating": False}
        foreign = await client.request(method, path, json=body, headers=other_oem.headers)
        assert foreign.status_code == 404
        home2 = await create_site(session, fleet.oem, "home-2")
        wrong_site = await client.request(
            method, path, json=body, headers=await site_token(session, fleet.oem, home2)
        )
        assert wrong_site.status_code == 403
