"""Which commands get acked, with what, and what the batteries then do."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gridhive.kit.time import isoformat_z
from gridhive.simulator.client import GridhiveClient
from gridhive.simulator.fleet import Fleet, make_specs
from gridhive.simulator.inbox import CommandInbox
from gridhive.simulator.runner import SimClock, SimConfig
from tests.simulator.conftest import FakeServer

NOW = datetime.now(UTC).replace(microsecond=0)
SPECS = make_specs(6, seed=1, prefix="t")


def command(
    device: int = 0,
    *,
    command_id: str = "c-1",
    status: str = "OK",
    device_status: str = "PENDING",
    updated: int = 0,
    setpoint_w: int = 3000,
    starts_in_s: int = 3600,
) -> dict[str, Any]:
    starts_at = NOW + timedelta(seconds=starts_in_s)
    return {
        "id": command_id,
        "event_id": "e-1",
        "device_id": SPECS[device].device_id,
        "starts_at": isoformat_z(starts_at),
        "ends_at": isoformat_z(starts_at + timedelta(hours=2)),
        "duration_s": 7200,
        "is_preparatory_action": False,
        "battery_commands": {
            "mode": "DISCHARGE",
            "power_mode": "SETPOINT",
            "setpoint_w": setpoint_w,
            "enable_grid_import": None,
            "backup_reserve_percentage": 20,
        },
        "status": status,
        "device_status": device_status,
        "device_status_reason": None,
        "created_at": isoformat_z(NOW),
        "updated_at": isoformat_z(NOW + timedelta(seconds=updated)),
    }


def make_inbox(faults: dict[str, str] | None = None, late_s: float = 0.0) -> CommandInbox:
    faults = faults or {}
    fleet = Fleet(
        SPECS,
        online=[faults.get(s.device_id) != "offline" for s in SPECS],
        obeys=[faults.get(s.device_id) not in ("offline", "fault") for s in SPECS],
    )
    return CommandInbox(fleet, faults, start_s=time.time(), late_ack_real_s=late_s)


def device(i: int) -> str:
    return SPECS[i].device_id


class TestAcks:
    async def test_a_new_command_is_scheduled_and_acked_ok(
        self, fake_client: GridhiveClient, fake_server: FakeServer
    ) -> None:
        inbox = make_inbox()
        inbox.receive(command(), via="webhook")
        await inbox.drain(fake_client)
        assert fake_server.acks == [
            ("c-1", {"device_status": "OK", "device_status_reason": "Command scheduled"})
        ]
        assert [c.command_id for c in inbox.fleet.schedules[0]] == ["c-1"]
        assert inbox.stats.acks_ok == 1
        assert len(inbox.latencies_ms) == 1

    async def test_the_same_version_again_is_not_acked_again(
        self, fake_client: GridhiveClient, fake_server: FakeServer
    ) -> None:
        inbox = make_inbox()
        inbox.receive(command(), via="webhook")
        await inbox.drain(fake_client)
        # command.started, and our own ack seen by a poll, carry the same version
        inbox.receive(command(updated=5, device_status="OK"), via="webhook")
        inbox.receive(command(updated=6, device_status="OK"), via="polling")
        await inbox.drain(fake_client)
        assert len(fake_server.acks) == 1

    async def test_a_version_the_server_shows_as_answered_is_not_acked_again(
        self, fake_client: GridhiveClient, fake_server: FakeServer
    ) -> None:
        inbox = make_inbox()  # a restarted cloud reads commands it acked before
        inbox.receive(command(device_status="OK"), via="polling")
        await inbox.drain(fake_client)
        assert fake_server.acks == []
        assert inbox.stats.already_acked == 1
        assert [c.command_id for c in inbox.fleet.schedules[0]] == ["c-1"]

    async def test_a_cancellation_unschedules_and_is_acked_again(
        self, fake_client: GridhiveClient, fake_server: FakeServer
    ) -> None:
        inbox = make_inbox()
        inbox.receive(command(), via="webhook")
        inbox.receive(command(status="CANCELED", updated=10), via="webhook")
        await inbox.drain(fake_client)
        assert inbox.fleet.schedules[0] == []
        # the first ack was superseded before it went out; the cancellation's ack did go
        assert fake_server.acks == [
            ("c-1", {"device_status": "OK", "device_status_reason": "Schedule removed"})
        ]
        assert inbox.stats.superseded == 1
        assert inbox.records["c-1"].versions == 2

    async def test_the_report_shows_the_latest_version_and_every_ack(
        self, fake_client: GridhiveClient, fake_server: FakeServer
    ) -> None:
        inbox = make_inbox()
        inbox.receive(command(), via="webhook")
        await inbox.drain(fake_client)
        inbox.receive(command(setpoint_w=2500, starts_in_s=7200, updated=10), via="polling")
        await inbox.drain(fake_client)
        report = inbox.records["c-1"].report()
        later = command(starts_in_s=7200)
        assert {k: report[k] for k in ("id", "device_id", "event_id", "status")} == {
            "id": "c-1",
            "device_id": device(0),
            "event_id": "e-1",
            "status": "OK",
        }
        assert (report["setpoint_w"], report["starts_at"], report["ends_at"]) == (
            2500,
            later["starts_at"],
            later["ends_at"],
        )
        assert (report["mode"], report["power_mode"]) == ("DISCHARGE", "SETPOINT")
        assert report["is_preparatory_action"] is False
        assert (report["via"], report["versions"]) == ("webhook", 2)
        assert [(a["for_status"], a["device_status"], a["outcome"]) for a in report["acks"]] == [
            ("OK", "OK", "ok"),
            ("OK", "OK", "ok"),
        ]

    async def test_an_older_version_arriving_late_is_ignored(
        self, fake_client: GridhiveClient, fake_server: FakeServer
    ) -> None:
        inbox = make_inbox()
        inbox.receive(command(status="OPT_OUT", updated=10), via="webhook")
        inbox.receive(command(updated=0), via="webhook")
        assert inbox.stats.stale == 1
        assert inbox.fleet.schedules[0] == []

    async def test_other_devices_and_commands_over_before_the_start_are_ignored(
        self, fake_client: GridhiveClient
    ) -> None:
        inbox = make_inbox()
        inbox.receive({**command(), "device_id": "someone-else"}, via="polling")
        inbox.receive(command(starts_in_s=-4 * 3600), via="polling")
        assert inbox.stats.ignored == 2
        assert inbox.records == {}

    async def test_a_still_pending_version_whose_ack_failed_is_retried_on_redelivery(
        self, fake_client: GridhiveClient, fake_server: FakeServer
    ) -> None:
        inbox = make_inbox()
        fake_server.ack_status = 500
        inbox.receive(command(), via="webhook")
        await inbox.drain(fake_client)
        assert inbox.stats.ack_errors == 1
        fake_server.ack_status = 200
        inbox.receive(command(), via="webhook")  # gridhive re-sends after the ack deadline
        await inbox.drain(fake_client)
        assert inbox.stats.acks_ok == 1
        assert [a.outcome for a in inbox.records["c-1"].acks][-1] == "ok"


class TestFaults:
    @pytest.mark.parametrize(
        ("fault", "answer"),
        [("offline", "FAILED_OFFLINE"), ("fault", "FAILED_FAULT")],
    )
    async def test_offline_and_faulty_devices_ack_a_failure_and_do_not_obey(
        self, fake_client: GridhiveClient, fake_server: FakeServer, fault: str, answer: str
    ) -> None:
        inbox = make_inbox({device(0): fault})
        inbox.receive(command(), via="webhook")
        await inbox.drain(fake_client)
        assert fake_server.acks[0][1]["device_status"] == answer
        assert inbox.fleet.schedules[0] == []
        assert inbox.stats.acks_failed == 1

    async def test_a_no_ack_device_never_answers(
        self, fake_client: GridhiveClient, fake_server: FakeServer
    ) -> None:
        inbox = make_inbox({device(0): "no-ack"})
        inbox.receive(command(), via="webhook")
        inbox.receive(command(updated=1), via="polling")  # still PENDING on the server
        await inbox.drain(fake_client)
        assert fake_server.acks == []
        assert inbox.stats.withheld == 1
        assert [c.command_id for c in inbox.fleet.schedules[0]] == ["c-1"]

    async def test_a_duplicate_ack_device_answers_twice(
        self, fake_client: GridhiveClient, fake_server: FakeServer
    ) -> None:
        inbox = make_inbox({device(0): "duplicate-ack"})
        inbox.receive(command(), via="webhook")
        await inbox.drain(fake_client)
        assert [a[0] for a in fake_server.acks] == ["c-1", "c-1"]
        assert (inbox.stats.acks_ok, inbox.stats.duplicate_acks) == (1, 1)

    async def test_a_late_ack_device_answers_after_the_delay(
        self, fake_client: GridhiveClient, fake_server: FakeServer
    ) -> None:
        inbox = make_inbox({device(0): "late-ack"}, late_s=0.05)
        inbox.receive(command(), via="webhook")
        await inbox.drain(fake_client)
        assert fake_server.acks == []
        await inbox.queue.get()  # arrives once the delay is over
        assert inbox.stats.late == 1


class TestCommandClock:
    """`--command-clock server`: windows keep the server's times, stretched onto the faster
    simulated clock, so the battery acts exactly while the server's event runs."""

    def test_windows_on_the_server_clock_are_stretched_by_the_speed(self) -> None:
        clock = SimClock(speed=60)
        inbox = make_inbox()
        inbox.window_to_sim = clock.from_wall
        inbox.receive(command(starts_in_s=30), via="webhook")
        [scheduled] = inbox.fleet.schedules[0]
        starts_wall = (NOW + timedelta(seconds=30)).timestamp()
        assert scheduled.starts_at_s == pytest.approx(
            clock.start_s + (starts_wall - clock.start_s) * 60
        )
        assert scheduled.ends_at_s - scheduled.starts_at_s == pytest.approx(7200 * 60)

    def test_windows_on_the_simulated_clock_are_taken_as_they_are(self) -> None:
        inbox = make_inbox()
        inbox.receive(command(starts_in_s=30), via="webhook")
        [scheduled] = inbox.fleet.schedules[0]
        assert scheduled.starts_at_s == (NOW + timedelta(seconds=30)).timestamp()

    def test_the_server_clock_stamps_telemetry_on_the_wall_clock_at_any_speed(self) -> None:
        server = SimConfig(api_key="k", speed=1, command_clock="server")
        assert not server.telemetry_on_sim_clock
        assert SimConfig(api_key="k", speed=1).telemetry_on_sim_clock
        assert not SimConfig(api_key="k", speed=60).telemetry_on_sim_clock
