"""`gridhive demo`: gridhive, a simulated fleet and one event on a temporary database, then
what happened in plain words.

The server runs on the real clock (Flip requires an event to start in the future and a
pre-charge needs a minute at least), so the event is short and near: a pre-charge from now,
then a discharge. The simulator reads the command windows on the server's clock and runs its
physics and telemetry `--speed` times faster inside them, so the server can measure the event.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from gridhive.simulator.faults import FaultSpecError, parse_faults
from gridhive.simulator.stack import (
    DEMO_PROGRAM,
    FleetConfig,
    Proc,
    Stack,
    StackConfig,
    StackError,
    Tenants,
    read_report,
    start_simulator,
)
from gridhive.simulator.utility import (
    Acks,
    UtilityApiError,
    UtilityClient,
    discharge_actions,
    parse_time,
)

Echo = Callable[[str], None]
WATCH_S = 1.0  # between two looks at the event while it runs
SETTLE_TIMEOUT_S = 60.0  # for acks and the last telemetry after the event


@dataclass(frozen=True)
class DemoOptions:
    batteries: int
    speed: float
    lead_s: int
    duration_s: int
    setpoint_w: int
    faults: dict[str, float]
    keep_running: bool
    port: int


def demo(
    batteries: Annotated[int, typer.Option(min=1, max=2000, help="Simulated homes")] = 20,
    speed: Annotated[
        float, typer.Option(min=1, help="Simulated seconds per real second in the fleet")
    ] = 60.0,
    lead: Annotated[
        int,
        typer.Option(min=65, help="Seconds from dispatch to the discharge (the pre-charge)"),
    ] = 70,
    duration: Annotated[int, typer.Option(min=10, help="Seconds of discharge")] = 40,
    setpoint: Annotated[int, typer.Option(min=1, help="Watts asked of each battery")] = 3000,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            help="KIND=SHARE of faulty devices, as for `gridhive simulate` "
            "(default: offline=0.05 and fault=0.05, one of each in 20)"
        ),
    ] = None,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="Leave gridhive up afterwards (Ctrl-C ends)")
    ] = False,
    port: Annotated[int, typer.Option(help="gridhive's port (0: any free one)")] = 0,
) -> None:
    """Start gridhive on a temporary database with a simulated fleet, dispatch a discharge
    event with a pre-charge, and tell what happened. Takes about two minutes."""
    try:
        shares = parse_faults(fault or ["offline=0.05", "fault=0.05"])
    except FaultSpecError as exc:
        raise typer.BadParameter(str(exc)) from exc
    options = DemoOptions(
        batteries=batteries,
        speed=speed,
        lead_s=lead,
        duration_s=duration,
        setpoint_w=setpoint,
        faults=shares,
        keep_running=keep_running,
        port=port,
    )
    try:
        run_demo(options, typer.echo)
    except (StackError, UtilityApiError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        typer.echo("stopped; temporary files removed", err=True)
        raise typer.Exit(130) from None


def run_demo(options: DemoOptions, echo: Echo) -> None:
    with tempfile.TemporaryDirectory(prefix="gridhive-demo-") as workdir:
        database = Path(workdir) / "gridhive.db"
        stack = Stack(
            StackConfig(
                database_url=f"sqlite+aiosqlite:///{database}",
                workdir=Path(workdir),
                port=options.port,
            )
        )
        try:
            _run(stack, options, echo)
        finally:
            stack.stop()


def _run(stack: Stack, options: DemoOptions, echo: Echo) -> None:
    echo("gridhive demo: a server, a device maker's cloud and an event, on a temporary database")
    stack.start()
    echo(f"  gridhive is up at {stack.base_url} (API reference: {stack.base_url}/docs)")
    tenants = stack.create_tenants()
    echo(
        f'  utility "Acme Power" and device maker "Volt Batteries" created, with program '
        f'"{DEMO_PROGRAM["name"]}"'
    )
    fleet = FleetConfig(batteries=options.batteries, speed=options.speed, faults=options.faults)
    echo(f"  commissioning and enrolling {options.batteries} simulated home batteries ...")
    simulator = start_simulator(stack, tenants, fleet)
    echo(
        f"  the fleet receives commands by webhook; its batteries run {options.speed:g}x "
        "faster than real time"
    )
    utility = UtilityClient(stack.base_url, tenants.utility_key)
    try:
        event_id = _dispatch(utility, tenants, options, echo)
        _watch(utility, event_id, echo)
        _settle(utility, tenants, event_id, options.batteries)
        report = _stop_simulator(stack, simulator)
        _tell(utility, event_id, report, echo)
        echo(f"\nThe event's page: {stack.base_url}/dashboard/events/{event_id}")
        if options.keep_running:
            _keep_running(stack, tenants, echo)
    finally:
        utility.close()


def _dispatch(utility: UtilityClient, tenants: Tenants, options: DemoOptions, echo: Echo) -> str:
    actions = discharge_actions(
        lead_s=options.lead_s, duration_s=options.duration_s, setpoint_w=options.setpoint_w
    )
    event = utility.dispatch(tenants.program_id, actions)
    echo(
        f"\nThe utility dispatches an event: discharge {options.setpoint_w:,} W per battery for "
        f"{options.duration_s} s, starting {options.lead_s} s from now "
        f"({event['starts_at']}); batteries pre-charge from the grid until then."
    )
    for line in utility.plan(event["id"]).get("summary", []):
        echo(f"  plan: {line}")
    return str(event["id"])


def _watch(utility: UtilityClient, event_id: str, echo: Echo) -> None:
    """Tell what changes (acknowledgements, the event's status) until the event is over."""
    event = utility.event(event_id)
    ends_at = parse_time(event["ends_at"])
    said: tuple[str, int] | None = None
    deadline = time.monotonic() + (ends_at.timestamp() - time.time()) + SETTLE_TIMEOUT_S
    while True:
        status, acks = utility.event(event_id)["status"], utility.acks(event_id)
        if (status, acks.answered) != said:
            echo(f"  {time.strftime('%H:%M:%S')}  event {status}, {_acked(acks)}")
            said = (status, acks.answered)
        if status in ("COMPLETED", "CANCELED"):
            return
        if time.monotonic() > deadline:
            raise StackError(f"event {event_id} still {status} well after its end")
        time.sleep(WATCH_S)


def _acked(acks: Acks) -> str:
    ok = acks.by_device_status.get("OK", 0)
    failed = acks.answered - ok
    return f"{acks.answered} of {acks.commands} commands acknowledged ({ok} OK, {failed} failed)"


def _settle(utility: UtilityClient, tenants: Tenants, event_id: str, batteries: int) -> None:
    """Wait for the telemetry covering the event's end from every device that is online."""
    event = utility.event(event_id)
    failed = utility.acks(event_id).failed_devices.values()
    offline = sum(1 for why in failed if why.startswith("FAILED_OFFLINE"))
    utility.wait_for_telemetry_until(
        tenants.program_id,
        parse_time(event["ends_at"]),
        batteries - offline,
        timeout_s=SETTLE_TIMEOUT_S,
    )


def _stop_simulator(stack: Stack, simulator: Proc) -> dict[str, Any]:
    simulator.stop()
    stack.procs.remove(simulator)
    return read_report(stack)


def _tell(utility: UtilityClient, event_id: str, report: dict[str, Any], echo: Echo) -> None:
    acks = utility.acks(event_id)
    totals = report["totals"]
    webhooks = totals.get("webhooks") or {}
    echo("\nWhat happened")
    echo(
        f"  delivered: {totals['commands']['received']} commands reached the device maker's "
        f"cloud by webhook ({webhooks.get('verified', 0)} signed deliveries verified)"
    )
    echo(f"  acknowledged: {_acked(acks)}")
    for device_id, why in sorted(acks.failed_devices.items()):
        echo(f"    {device_id}: {why}")
    _tell_performance(utility.performance(event_id), echo)
    sites = utility.sites(event_id)
    delivering = [s for s in sites if (s.get("performance_actual_power_w") or 0) > 0]
    echo(f"  sites: {len(sites)} in the event, {len(delivering)} measured discharging")
    echo(f"  telemetry: {totals['telemetry']['items_sent']:,} intervals sent by the fleet")


def _tell_performance(performance: dict[str, Any], echo: Echo) -> None:
    totals = performance["totals"]
    for slot in performance["intervals"]:
        delivered = slot["delivered_kw"]
        echo(
            f"  power {slot['starts_at'][11:19]}-{slot['ends_at'][11:19]}: requested "
            f"{_kw(slot['requested_kw'])}, expected {_kw(slot['expected_kw'])}, delivered "
            f"{_kw(delivered)} (net of baseline: {performance['baseline']['method']})"
        )
    echo(
        f"  energy: expected {totals['expected_kwh']} kWh, delivered "
        f"{totals['delivered_kwh']} kWh; {totals['devices_responding']} of "
        f"{totals['devices']} devices responded"
    )


def _kw(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} kW"


def _keep_running(stack: Stack, tenants: Tenants, echo: Echo) -> None:
    echo("\ngridhive keeps running (Ctrl-C stops it and removes the temporary files):")
    echo(f"  utility key: {tenants.utility_key}")
    echo(f"  OEM key:     {tenants.oem_key}")
    while True:
        stack.check_alive()
        time.sleep(WATCH_S)
