"""`gridhive simulate`: a device maker's cloud with N simulated batteries, against any gridhive."""

from __future__ import annotations

import enum
import json
import re
from typing import Annotated

import typer

# The simulator's modules (uvicorn, aiomqtt, ...) load only when `simulate` runs: every other
# command starts faster without them.

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class TelemetryClock(enum.StrEnum):
    auto = "auto"
    sim = "sim"
    real = "real"


class CommandClock(enum.StrEnum):
    sim = "sim"
    server = "server"


class ModeChoice(enum.StrEnum):
    webhook = "webhook"
    polling = "polling"
    mqtt = "mqtt"


def parse_duration(text: str | None) -> float | None:
    """`90`, `90s`, `45m`, `6h`, `2d` -> simulated seconds."""
    if text is None:
        return None
    match = _DURATION.match(text)
    if match is None:
        raise typer.BadParameter(f"{text!r}: expected e.g. 3600, 90m, 6h or 2d")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def parse_form(values: list[str]) -> dict[str, str]:
    answers: dict[str, str] = {}
    for value in values:
        name, sep, answer = value.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"--form {value!r}: expected NAME=VALUE")
        answers[name.strip()] = answer
    return answers


def simulate(
    key: Annotated[
        str | None,
        typer.Option("--key", envvar="GRIDHIVE_OEM_KEY", help="The OEM's API key"),
    ] = None,
    url: Annotated[
        str, typer.Option("--url", envvar="GRIDHIVE_URL", help="gridhive's base URL")
    ] = "http://127.0.0.1:8000",
    batteries: Annotated[int, typer.Option(min=1, help="Homes, one battery each")] = 100,
    seed: Annotated[int, typer.Option(help="Same seed: same fleet, same faulty devices")] = 1,
    prefix: Annotated[str, typer.Option(help="Site and device ids start with this")] = "sim",
    speed: Annotated[
        float, typer.Option(min=0.001, help="Simulated seconds per real second")
    ] = 60.0,
    duration: Annotated[
        str | None,
        typer.Option(help="Simulated time to run (3600, 90m, 6h, 2d); default: until Ctrl-C"),
    ] = None,
    mode: Annotated[ModeChoice, typer.Option(help="How commands arrive")] = ModeChoice.polling,
    host: Annotated[str, typer.Option(help="Webhook receiver interface")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Webhook receiver port (0: any free one)")] = 8765,
    public_url: Annotated[
        str | None, typer.Option(help="The receiver's URL as gridhive reaches it")
    ] = None,
    poll_interval: Annotated[
        float, typer.Option(min=0.1, help="Real seconds between polls")
    ] = 60.0,
    poll_overlap: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds of changes each poll reads again (> the server's longest "
            "transaction, e.g. a large dispatch, plus clock skew)",
        ),
    ] = 60.0,
    mqtt_url: Annotated[str | None, typer.Option(help="mqtt://host:port")] = None,
    org_id: Annotated[
        str | None, typer.Option(help="OEM org id for the MQTT topic (default: asked)")
    ] = None,
    program_id: Annotated[str | None, typer.Option(help="Enroll every home here")] = None,
    form: Annotated[
        list[str] | None,
        typer.Option(help="Enrollment form answer NAME=VALUE ({index}, {site_id} expand)"),
    ] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            help="KIND=SHARE: offline, fault, late-ack, no-ack, duplicate-ack (of devices); "
            "webhook-5xx, webhook-timeout (of deliveries)"
        ),
    ] = None,
    late_ack: Annotated[str, typer.Option(help="Delay of a late ack (simulated)")] = "10m",
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight")] = 16,
    state_code: Annotated[str, typer.Option(help="The homes' state")] = "CA",
    zip_code: Annotated[str, typer.Option(help="The homes' zip code")] = "94110",
    timezone: Annotated[str, typer.Option(help="Local time of the load and solar shapes")] = (
        "America/Los_Angeles"
    ),
    set_delivery_mode: Annotated[
        bool, typer.Option(help="Switch the OEM's delivery mode to --mode")
    ] = True,
    commission: Annotated[bool, typer.Option(help="Commission the homes first")] = True,
    keep_endpoint: Annotated[
        bool, typer.Option(help="Leave the webhook endpoint registered at the end")
    ] = False,
    telemetry: Annotated[
        bool, typer.Option(help="Send telemetry every 5 simulated minutes")
    ] = True,
    telemetry_clock: Annotated[
        TelemetryClock,
        typer.Option(
            help="Stamp telemetry on the simulated clock (sim) or the wall clock, intervals "
            "compressed by --speed (real); auto: sim only at --speed 1, since a server refuses "
            "points more than 5 minutes ahead"
        ),
    ] = TelemetryClock.auto,
    command_clock: Annotated[
        CommandClock,
        typer.Option(
            help="Read command windows on the simulated clock (sim: an event an hour ahead "
            "comes after a minute at 60x) or on the server's clock (server: batteries act "
            "while the server's event runs, physics --speed times faster inside it, telemetry "
            "on the wall clock so the server measures the event)"
        ),
    ] = CommandClock.sim,
    summary_every: Annotated[float, typer.Option(min=0.5, help="Real seconds")] = 5.0,
    report: Annotated[str | None, typer.Option(help="Write the final report (JSON) here")] = None,
    bench_physics: Annotated[
        bool, typer.Option("--bench-physics", help="Only time the physics (no server) and exit")
    ] = False,
) -> None:
    """Run a device maker's cloud with simulated batteries against a gridhive server.

    Commissions the homes, optionally enrolls them, receives commands (webhook, polling or
    MQTT), acknowledges them with injected faults, runs the batteries and sends telemetry
    every 5 simulated minutes. Command windows are read on the simulated clock, which starts
    now and runs --speed times faster than the server's (or, with --command-clock server, on
    the server's clock).
    """
    from gridhive.simulator.faults import FaultSpecError, parse_faults
    from gridhive.simulator.runner import SimConfig, SimulatorError, measure_physics, run

    sim_seconds = parse_duration(duration)
    if bench_physics:
        result = measure_physics(batteries, seed=seed, sim_seconds=sim_seconds or 86400)
        typer.echo(json.dumps(result))
        return
    if not key:
        raise typer.BadParameter("an OEM key is needed (--key or GRIDHIVE_OEM_KEY)")
    try:
        shares = parse_faults(fault or [])
    except FaultSpecError as exc:
        raise typer.BadParameter(str(exc)) from exc
    config = SimConfig(
        api_key=key,
        base_url=url,
        batteries=batteries,
        seed=seed,
        prefix=prefix,
        speed=speed,
        duration_s=sim_seconds,
        mode=mode.value,
        host=host,
        port=port,
        public_url=public_url,
        poll_interval_s=poll_interval,
        poll_overlap_s=poll_overlap,
        mqtt_url=mqtt_url,
        org_id=org_id,
        program_id=program_id,
        form=parse_form(form or []),
        concurrency=concurrency,
        faults=shares,
        late_ack_s=parse_duration(late_ack) or 0.0,
        report_path=report,
        state_code=state_code,
        zip_code=zip_code,
        timezone=timezone,
        set_delivery_mode=set_delivery_mode,
        commission=commission,
        keep_endpoint=keep_endpoint,
        summary_every_s=summary_every,
        telemetry=telemetry,
        telemetry_clock=telemetry_clock.value,
        command_clock=command_clock.value,
    )
    from gridhive.cli.common import run_long_lived

    try:
        run_long_lived(run(config, echo=typer.echo))
    except SimulatorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:  # before the run began (once it runs, Ctrl-C ends it cleanly)
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
