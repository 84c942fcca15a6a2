"""The simulator against the real gridhive app, in process (httpx.ASGITransport, no sockets):
commission, enroll, a utility's event, polling, acks, telemetry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.kit.time import isoformat_z, utc_now
from gridhive.simulator.client import GridhiveClient
from gridhive.simulator.fleet import Fleet, make_specs
from gridhive.simulator.inbox import CommandInbox
from gridhive.simulator.provision import commission_fleet, enroll_fleet
from gridhive.simulator.runner import SimConfig, Simulation
from gridhive.simulator.sources import Poller
from gridhive.telemetry.schemas import TelemetryItemIn
from tests.factories import Tenant, create_program

BASE_URL = "http://testserver"


class SerialTransport(httpx.AsyncBaseTransport):
    """One request at a time, never cut short: every request to the test app shares the
    test's session, which a request cancelled half-way would leave mid-transaction."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.lock = asyncio.Lock()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await asyncio.shield(self._one(request))

    async def _one(self, request: httpx.Request) -> httpx.Response:
        async with self.lock:
            response = await self.inner.handle_async_request(request)
            await response.aread()
            return response


@pytest.fixture
def transport(app: FastAPI) -> SerialTransport:
    return SerialTransport(httpx.ASGITransport(app=app, raise_app_exceptions=False))


@pytest.fixture
async def http(transport: SerialTransport) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


@pytest.fixture
async def sim_client(transport: SerialTransport, oem: Tenant) -> AsyncIterator[GridhiveClient]:
    client = GridhiveClient(BASE_URL, oem.key, transport=transport, retries=0)
    yield client
    await client.aclose()


def noop(_: str) -> None:
    return None


async def enrolled_fleet(
    client: GridhiveClient, session: AsyncSession, utility: Tenant, count: int
) -> tuple[str, list[Any]]:
    program = await create_program(
        session, utility, auto_approve=True, terms_and_conditions_version="2026-01-01"
    )
    specs = make_specs(count, seed=3, prefix="e2e")
    commissioned = await commission_fleet(
        client, specs, state_code="CA", zip_code="94110", concurrency=2, progress=noop
    )
    assert commissioned.commissioned == count
    enrolled = await enroll_fleet(
        client, specs, program_id=str(program.id), form={}, concurrency=2, progress=noop
    )
    assert (enrolled.enrolled, enrolled.enroll_failed) == (count, 0)
    return str(program.id), specs


async def dispatch(http: httpx.AsyncClient, utility: Tenant, program_id: str) -> dict[str, Any]:
    starts_at = utc_now().replace(microsecond=0) + timedelta(hours=1)
    body = {
        "program_id": program_id,
        "target_type": "PROGRAM",
        "target_ids": [program_id],
        "actions": [
            {
                "mode": "DISCHARGE",
                "starts_at": isoformat_z(starts_at),
                "duration_s": 3600,
                "power_mode": "SETPOINT",
                "setpoint_w": 3000,
            }
        ],
    }
    response = await http.post("/v1/events", json=body, headers=utility.headers)
    assert response.status_code == 200, response.text
    event: dict[str, Any] = response.json()
    return event


async def server_commands(http: httpx.AsyncClient, oem: Tenant) -> list[dict[str, Any]]:
    response = await http.get("/v1/commands", params={"limit": 1000}, headers=oem.headers)
    assert response.status_code == 200, response.text
    commands: list[dict[str, Any]] = response.json()
    return commands


class TestPollingRoundTrip:
    async def test_polled_commands_are_acked_ok_on_the_server(
        self,
        http: httpx.AsyncClient,
        sim_client: GridhiveClient,
        session: AsyncSession,
        utility: Tenant,
        oem: Tenant,
    ) -> None:
        program_id, specs = await enrolled_fleet(sim_client, session, utility, 5)
        event = await dispatch(http, utility, program_id)
        inbox = CommandInbox(Fleet(specs), {}, start_s=utc_now().timestamp())

        assert await Poller(sim_client, inbox).poll_once() >= 5
        await inbox.drain(sim_client)

        commands = await server_commands(http, oem)
        discharges = [c for c in commands if c["battery_commands"]["mode"] == "DISCHARGE"]
        assert {c["device_id"] for c in discharges} == {s.device_id for s in specs}
        assert {c["event_id"] for c in commands} == {event["id"]}
        assert {(c["status"], c["device_status"]) for c in commands} == {("OK", "OK")}
        assert inbox.stats.acks_ok == len(commands)
        assert all(len(schedule) >= 1 for schedule in inbox.fleet.schedules)

    async def test_provisioning_again_changes_nothing(
        self, sim_client: GridhiveClient, session: AsyncSession, utility: Tenant
    ) -> None:
        program_id, specs = await enrolled_fleet(sim_client, session, utility, 3)
        again = await enroll_fleet(
            sim_client, specs, program_id=program_id, form={}, concurrency=1, progress=noop
        )
        assert again.enroll_failed == 0
        assert again.enrolled + again.already_enrolled == 3


class TestWholeRun:
    async def test_a_run_acks_obeys_and_reports_telemetry_the_server_accepts(
        self,
        http: httpx.AsyncClient,
        transport: SerialTransport,
        session: AsyncSession,
        utility: Tenant,
        oem: Tenant,
    ) -> None:
        client = GridhiveClient(BASE_URL, oem.key, transport=transport, retries=0)
        program_id, specs = await enrolled_fleet(client, session, utility, 5)
        await client.aclose()
        await dispatch(http, utility, program_id)
        config = SimConfig(
            api_key=oem.key,
            base_url=BASE_URL,
            batteries=5,
            seed=3,
            prefix="e2e",
            speed=7200,  # two simulated hours per real second
            duration_s=3 * 3600,
            mode="polling",
            poll_interval_s=0.1,
            commission=False,
            concurrency=2,
            faults={"offline": 0.2},
            summary_every_s=60,
        )
        lines: list[str] = []
        sim = Simulation(config, echo=lines.append, transport=transport)
        report = await sim.run()

        commands = report["commands"]
        offline = next(d["device_id"] for d in report["devices"] if d["fault"] == "offline")
        assert {c["device_id"] for c in commands} == {s.device_id for s in specs}
        for c in commands:
            expected = "FAILED_OFFLINE" if c["device_id"] == offline else "OK"
            assert [a["device_status"] for a in c["acks"]] == [expected]
            assert c["acks"][0]["outcome"] == "ok"
        assert report["latency_ms"]["receipt_to_ack"]["count"] == len(commands)
        telemetry = report["totals"]["telemetry"]
        assert telemetry["items_sent"] == 5 * 36  # every 5 simulated minutes for 3 hours
        assert telemetry["items_failed"] == 0, telemetry["failure_samples"]
        server = await server_commands(http, oem)
        assert {c["device_status"] for c in server if c["device_id"] != offline} == {"OK"}
        assert lines[:2] == ["delivery mode set to polling", "simulating 5 batteries at 7200x"]
        assert await discharged_during_event(http, utility, program_id, offline)


async def discharged_during_event(
    http: httpx.AsyncClient, utility: Tenant, program_id: str, offline: str
) -> bool:
    """The utility's view of the telemetry shows the batteries discharging in the event."""
    now = utc_now()
    body = {
        "program_id": program_id,
        "start_time": isoformat_z(now - timedelta(hours=1)),
        "end_time": isoformat_z(now + timedelta(days=1)),
    }
    response = await http.post("/v1/telemetry/historical", json=body, headers=utility.headers)
    assert response.status_code == 200, response.text
    points = response.json()["telemetry"]
    discharging = {
        p["device_id"]
        for p in points
        if p["last_mode"] == "DISCHARGE" and (p["battery_power_discharge_w"] or 0) > 0
    }
    online = {p["device_id"] for p in points if p["last_is_online"]}
    return offline not in online and len(discharging) >= 3


class TestWireShapes:
    def test_telemetry_items_pass_the_servers_schema(self) -> None:
        fleet = Fleet(make_specs(4, seed=1), online=[True, True, True, False])
        for minute in range(5):
            fleet.step(1_780_000_000 + 60 * minute)
        for item in fleet.telemetry(1_780_000_000, 300):
            TelemetryItemIn.model_validate(item)


class TestSettingsApply:
    async def test_the_fleet_applies_a_reserve_change_and_reports_it(
        self,
        http: httpx.AsyncClient,
        transport: SerialTransport,
        session: AsyncSession,
        utility: Tenant,
        oem: Tenant,
    ) -> None:
        client = GridhiveClient(BASE_URL, oem.key, transport=transport, retries=0)
        _, specs = await enrolled_fleet(client, session, utility, 2)
        await client.aclose()
        home = specs[1]
        asked = await http.post(
            f"/v1/site/{home.site_id}/device/{home.device_id}/settings",
            json={"backup_reserve_percentage": 35},
            headers=oem.headers,
        )
        assert asked.status_code in (200, 201), asked.text
        request = asked.json()
        config = SimConfig(
            api_key=oem.key,
            base_url=BASE_URL,
            batteries=2,
            seed=3,
            prefix="e2e",
            commission=False,
        )
        sim = Simulation(config, echo=noop, transport=transport)
        try:
            await sim.apply_settings({**request, "object_type": "settings_request"})
        finally:
            await sim.client.aclose()

        assert sim.fleet.reserve_pct[sim.fleet.index[home.device_id]] == 35
        stored = await http.get(f"/v1/settings/{request['id']}", headers=oem.headers)
        assert stored.json()["status"] == "APPLIED"
