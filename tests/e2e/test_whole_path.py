"""One run of the whole path across real processes, then what each party saw.

Three device makers (webhook, MQTT, polling) each run a simulated fleet enrolled in one
program; 10% of the webhook fleet is offline. The utility dispatches an event; a homeowner of
each fleet opts out while it runs; the event ends and is measured. A second event is canceled
while it runs. Each test below checks one promise against what was recorded.

The server keeps real time, so the events are short and near (seconds); the fleets run their
physics 60x faster inside them and stamp telemetry on the wall clock (`--command-clock
server`), so the server measures what the batteries did.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gridhive.simulator.stack import (
    FleetConfig,
    Proc,
    Stack,
    StackConfig,
    create_org,
    read_report,
    start_simulator,
)
from gridhive.simulator.utility import (
    UtilityClient,
    discharge_actions,
    opt_out,
    parse_time,
    poll,
)
from tests.e2e.conftest import MQTT_URL, broker_reachable, e2e_database_url, missing_service

pytestmark = pytest.mark.e2e

SPEED = 60.0
SETPOINT_W = 3000
FLEETS = {  # mode -> (prefix, batteries, faults)
    "webhook": ("wh", 20, {"offline": 0.1}),
    "mqtt": ("mq", 10, {}),
    "polling": ("po", 10, {}),
}
ACK_TIMEOUT_S = 60.0
EVENT_LEAD_S = 15  # under a minute: no pre-charge, one command per battery
EVENT_S = 30
OFFLINE_NOTE = "offline at planning time"


@dataclass
class Observed:
    """What the utility, the homeowners and the device makers saw during the run."""

    modes: list[str]
    event: dict[str, Any] = field(default_factory=dict)
    statuses_seen: list[str] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)
    sites: list[dict[str, Any]] = field(default_factory=list)
    performance: dict[str, Any] = field(default_factory=dict)
    telemetry: list[dict[str, Any]] = field(default_factory=list)
    opted_out: dict[str, str] = field(default_factory=dict)  # mode -> site id
    canceled_event: dict[str, Any] = field(default_factory=dict)
    canceled_plan: dict[str, Any] = field(default_factory=dict)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # mode -> report


def fleet_of(device_or_site_id: str, modes: list[str]) -> str:
    return next(m for m in modes if device_or_site_id.startswith(FLEETS[m][0] + "-"))


def commands_of(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for device in plan["devices"] for c in device["commands"]]


def site_of(device_id: str) -> str:
    return device_id.replace("-battery-", "-site-")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    workdir: Path = tmp_path_factory.mktemp("e2e")
    no_broker = broker_reachable()
    modes = [m for m in FLEETS if m != "mqtt" or no_broker is None]
    config = StackConfig(
        database_url=e2e_database_url(workdir),
        workdir=workdir,
        separate_worker=True,
        mqtt_url=None if no_broker else MQTT_URL,
    )
    stack = Stack(config)
    try:
        stack.start()
        yield Scenario(stack, modes).play()
    finally:
        stack.stop()


class Scenario:
    def __init__(self, stack: Stack, modes: list[str]) -> None:
        self.stack = stack
        self.seen = Observed(modes=modes)
        self.tenants = stack.create_tenants()
        self.utility = UtilityClient(stack.base_url, self.tenants.utility_key)
        self.oem_keys: dict[str, str] = {}
        self.simulators: dict[str, Proc] = {}

    @property
    def batteries(self) -> int:
        return sum(FLEETS[m][1] for m in self.seen.modes)

    def play(self) -> Observed:
        try:
            self.start_fleets()
            self.wait_for_telemetry(datetime.now(UTC))  # so the plan knows who is offline
            self.dispatch_and_opt_out()
            self.dispatch_and_cancel()
            self.stop_fleets()
        finally:
            self.utility.close()
        return self.seen

    def start_fleets(self) -> None:
        with self.stack.admin() as admin:
            for mode in self.seen.modes:
                prefix, count, faults = FLEETS[mode]
                oem_id, key = create_org(admin, "oem", f"{mode} batteries")
                self.oem_keys[mode] = key
                tenants = dataclasses.replace(self.tenants, oem_id=oem_id, oem_key=key)
                fleet = FleetConfig(
                    batteries=count, mode=mode, speed=SPEED, faults=faults, prefix=prefix
                )
                self.simulators[mode] = start_simulator(
                    self.stack, tenants, fleet, name=mode, ready_timeout_s=None
                )
        for proc in self.simulators.values():
            proc.wait_for_output("simulating ", timeout_s=120)

    def wait_for_telemetry(self, moment: datetime) -> None:
        self.utility.wait_for_telemetry_until(
            self.tenants.program_id, moment, self.batteries, timeout_s=60
        )

    def dispatch(self, lead_s: int, duration_s: int) -> dict[str, Any]:
        actions = discharge_actions(lead_s=lead_s, duration_s=duration_s, setpoint_w=SETPOINT_W)
        event = self.utility.dispatch(self.tenants.program_id, actions)
        self.utility.wait_for_acks(event["id"], self.batteries, timeout_s=ACK_TIMEOUT_S)
        return event

    def dispatch_and_opt_out(self) -> None:
        event = self.seen.event = self.dispatch(EVENT_LEAD_S, EVENT_S)
        self.seen.statuses_seen.append(self.utility.event(event["id"])["status"])
        self.utility.wait_for_status(event["id"], "ACTIVE", timeout_s=EVENT_LEAD_S + 30)
        self.seen.statuses_seen.append("ACTIVE")
        self.opt_out_one_home_per_fleet(event["id"])
        self.utility.wait_for_status(event["id"], "COMPLETED", timeout_s=EVENT_S + 30)
        self.seen.statuses_seen.append("COMPLETED")
        self.wait_for_telemetry(parse_time(event["ends_at"]))
        self.seen.plan = self.utility.plan(event["id"])
        self.seen.sites = self.utility.sites(event["id"])
        self.seen.performance = self.utility.performance(event["id"])
        self.seen.telemetry = self.utility.historical_telemetry(
            self.tenants.program_id,
            parse_time(event["starts_at"]),
            parse_time(event["ends_at"]),
        )

    def opt_out_one_home_per_fleet(self, event_id: str) -> None:
        acks = self.utility.acks(event_id)
        for mode in self.seen.modes:
            prefix = FLEETS[mode][0]
            device = next(
                f"{prefix}-battery-{i:05d}"
                for i in range(FLEETS[mode][1])
                if f"{prefix}-battery-{i:05d}" not in acks.failed_devices
            )
            opt_out(self.stack.base_url, self.oem_keys[mode], site_of(device), event_id)
            self.seen.opted_out[mode] = site_of(device)
        # Each opt-out is a new version of the command, which the device maker acks again.
        poll(
            lambda: self.utility.acks(event_id),
            lambda acks: acks.answered == acks.commands and "OPT_OUT" in acks.by_status,
            timeout_s=ACK_TIMEOUT_S,
            what="acks of the opted-out commands",
        )

    def dispatch_and_cancel(self) -> None:
        event = self.dispatch(5, 120)
        self.utility.wait_for_status(event["id"], "ACTIVE", timeout_s=30)
        self.utility.cancel(event["id"])
        self.seen.canceled_plan = poll(
            lambda: self.utility.plan(event["id"]),
            lambda plan: all(
                c["status"] == "CANCELED" and c["device_status"] != "PENDING"
                for c in commands_of(plan)
            ),
            timeout_s=ACK_TIMEOUT_S,
            what="acks of the canceled commands",
        )
        self.seen.canceled_event = self.utility.event(event["id"])

    def stop_fleets(self) -> None:
        for mode, proc in self.simulators.items():
            assert proc.stop() == 0, proc.tail()
            self.seen.reports[mode] = read_report(self.stack, mode)


def require_mqtt(run: Observed) -> None:
    if "mqtt" not in run.modes:
        missing_service(broker_reachable() or "MQTT fleet did not run")


# What everyone saw -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(FLEETS))
def test_each_fleet_receives_and_acknowledges_its_commands(run: Observed, mode: str) -> None:
    if mode == "mqtt":
        require_mqtt(run)
    prefix, count, _ = FLEETS[mode]
    report = run.reports[mode]
    event_commands = [c for c in report["commands"] if c["event_id"] == run.event["id"]]
    assert sorted(c["device_id"] for c in event_commands) == [
        f"{prefix}-battery-{i:05d}" for i in range(count)
    ]
    assert {c["via"] for c in event_commands} == {mode}
    assert {c["mode"] for c in event_commands} == {"DISCHARGE"}
    assert all(a["outcome"] == "ok" for c in event_commands for a in c["acks"])
    server = [c for c in commands_of(run.plan) if c["device_id"].startswith(prefix + "-")]
    assert len(server) == count
    assert {c["device_status"] for c in server} <= {"OK", "FAILED_OFFLINE"}


def test_the_event_runs_on_the_servers_clock(run: Observed) -> None:
    assert run.statuses_seen == ["UPCOMING", "ACTIVE", "COMPLETED"]
    assert run.plan["status"] == "COMPLETED"


def test_telemetry_of_the_event_gives_performance_figures(run: Observed) -> None:
    performance = run.performance
    requested_kw = SETPOINT_W * sum(FLEETS[m][1] for m in run.modes) / 1000
    [slot] = performance["intervals"]  # a 30-second event: one 5-minute slot
    assert slot["requested_kw"] == requested_kw
    assert slot["delivered_kw"] is not None
    assert slot["delivered_kw"] > 0
    totals = performance["totals"]
    assert totals["delivered_kwh"] > 0
    offline = failed_offline(run)
    participating = len(commands_of(run.plan)) - len(run.opted_out)
    # Offline devices send no measurements, so only they leave gaps.
    assert totals["data_coverage"] == round((participating - len(offline)) / participating, 4)
    discharging = {p["device_id"] for p in run.telemetry if p["last_mode"] == "DISCHARGE"}
    opted_out = {site.replace("-site-", "-battery-") for site in run.opted_out.values()}
    online = {c["device_id"] for c in commands_of(run.plan)} - offline
    assert discharging - opted_out == online - opted_out


def failed_offline(run: Observed) -> set[str]:
    return {c["device_id"] for c in commands_of(run.plan) if c["device_status"] == "FAILED_OFFLINE"}


def test_the_offline_tenth_fails_in_the_plan_the_acks_and_the_performance(
    run: Observed,
) -> None:
    report = run.reports["webhook"]
    simulated = {d["device_id"] for d in report["devices"] if d["fault"] == "offline"}
    assert len(simulated) == 2  # 10% of 20
    assert failed_offline(run) == simulated
    noted = {
        device["device_id"]
        for device in run.plan["devices"]
        for c in device["commands"]
        if OFFLINE_NOTE in c["explanation"]["notes"]
    }
    assert noted == simulated
    unmeasured = {s["site_id"] for s in run.sites if s["performance_actual_energy_wh"] is None}
    assert unmeasured == {site_of(d) for d in simulated}


def test_a_homeowner_opting_out_mid_event_stops_that_battery(run: Observed) -> None:
    opted_out = set(run.opted_out.values())
    assert len(opted_out) == len(run.modes)
    sites = {s["site_id"]: s for s in run.sites}
    assert {s for s, site in sites.items() if not site["is_participating"]} == opted_out
    for command in commands_of(run.plan):
        if site_of(command["device_id"]) in opted_out:
            assert (command["status"], command["device_status"]) == ("OPT_OUT", "OK")
    last = last_interval_of_event(run)
    for site in opted_out:
        assert last[site.replace("-site-", "-battery-")] != "DISCHARGE"
    for mode, site in run.opted_out.items():
        device = site.replace("-site-", "-battery-")
        [record] = [
            c
            for c in run.reports[mode]["commands"]
            if c["device_id"] == device and c["event_id"] == run.event["id"]
        ]
        assert [a["for_status"] for a in record["acks"]] == ["OK", "OPT_OUT"]


def last_interval_of_event(run: Observed) -> dict[str, str]:
    """Device id -> the mode of its last telemetry interval inside the event."""
    ends_at = parse_time(run.event["ends_at"])
    last: dict[str, tuple[datetime, str]] = {}
    for point in run.telemetry:
        start = parse_time(point["start_time"])
        if start + timedelta(seconds=point["duration_s"]) <= ends_at:
            if point["device_id"] not in last or start > last[point["device_id"]][0]:
                last[point["device_id"]] = (start, point["last_mode"])
    return {device: mode for device, (_, mode) in last.items()}


def test_a_canceled_event_reaches_every_device_maker(run: Observed) -> None:
    assert run.canceled_event["status"] == "CANCELED"
    commands = commands_of(run.canceled_plan)
    assert len(commands) == sum(FLEETS[m][1] for m in run.modes)
    offline = failed_offline(run)
    for command in commands:
        expected = "FAILED_OFFLINE" if command["device_id"] in offline else "OK"
        assert (command["status"], command["device_status"]) == ("CANCELED", expected)
    for mode in run.modes:
        canceled = [
            c for c in run.reports[mode]["commands"] if c["event_id"] == run.canceled_event["id"]
        ]
        assert canceled
        assert all(c["status"] == "CANCELED" for c in canceled)
        assert all(c["acks"][-1]["for_status"] == "CANCELED" for c in canceled)
