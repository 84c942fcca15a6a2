"""The whole path, timed: from `POST /v1/events` to the last command acknowledged by the
device maker, with gridhive's API, its delivery worker and a simulated fleet in separate
processes on this machine.

For each database and size N: a fresh migrated database with N homes of one battery each
enrolled in an auto-approving program (bulk-inserted with the simulator's own ids and ratings:
commissioning through the API runs at a few hundred homes a second, see the setup figures);
then `gridhive serve --no-workers`, `gridhive worker` and `gridhive simulate --mode webhook
--no-commission` start, and two events are dispatched one after the other:

- `standby`: one STANDBY command per battery (10 hours ahead);
- `discharge`: a DISCHARGE 3 hours ahead with a pre-charge before it (two per battery).

Each is timed from just before its POST to the largest `acknowledged_at` of its commands
(polled in the database: the figure is the server's own clock, not the poll's). Printed beside
them: commands/s, CPU seconds and peak RSS of each process during that event, and a baseline
measured in the same run: plain HTTP round trips to a trivial uvicorn app in another process,
by client (aiohttp, what the worker and the simulator use, and httpx's own pool) and requests
in flight, with each side's CPU per round trip (a webhook and its ack are two round trips).

    .venv/bin/python bench/whole_path.py --sizes 1000,10000 --databases sqlite,postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import http_client
from bench._common import fresh_engine, remove_sqlite_database, server_version, sqlite_url
from gridhive.auth import service as auth_service
from gridhive.auth.models import OrgKind
from gridhive.commands.models import Command
from gridhive.db.session import make_sessionmaker
from gridhive.devices.models import Device
from gridhive.enrollments.models import Enrollment, EnrollmentDevice
from gridhive.programs import service as program_service
from gridhive.programs.schemas import ProgramCreate
from gridhive.simulator.fleet import BatterySpec, battery_spec
from gridhive.simulator.stack import (
    FleetConfig,
    Stack,
    StackConfig,
    Tenants,
    start_simulator,
)
from gridhive.sites.models import Site

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/gridhive_bench"
SEED_CHUNK = 10_000
SEEDED: tuple[type[Any], ...] = (Site, Device, Enrollment, EnrollmentDevice)  # _home's order
PREFIX = "sim"
CONCURRENCY = 16  # the simulator's acks in flight (its default); --concurrency changes it
POLL_S = 0.5
EVENTS = {  # name -> (mode, hours ahead, commands per battery)
    "standby": ("STANDBY", 10, 1),
    "discharge": ("DISCHARGE", 3, 2),
}


@dataclass
class EventRun:
    database: str
    batteries: int
    event: str
    commands: int
    acknowledged: int  # fewer than `commands` when the run hit --max-wait-s
    post_s: float
    last_ack_s: float
    commands_per_s: float
    cpu_s: dict[str, float]
    peak_rss_mb: dict[str, float]
    load_before: str


@dataclass
class SizeRun:
    database: str
    batteries: int
    seed_s: float
    start_s: float
    events: list[EventRun] = field(default_factory=list)


# Seeding -------------------------------------------------------------------------------------


async def seed(engine: AsyncEngine, batteries: int) -> Tenants:
    """A utility, an OEM, an auto-approving program and N enrolled simulator homes."""
    async with make_sessionmaker(engine)() as session:
        utility = await auth_service.create_organization(
            session, kind=OrgKind.UTILITY, name="Bench Power"
        )
        _, utility_key = await auth_service.create_api_key(session, org_id=utility.id)
        oem = await auth_service.create_organization(session, kind=OrgKind.OEM, name="Sim")
        _, oem_key = await auth_service.create_api_key(session, org_id=oem.id)
        program = await program_service.create_program(
            session,
            utility_id=utility.id,
            data=ProgramCreate.model_validate({"name": "Bench", "auto_approve": True}),
        )
        await session.commit()
        await _seed_homes(session, batteries, oem.id, program.id)
    return Tenants(str(utility.id), utility_key, str(oem.id), oem_key, str(program.id))


async def _seed_homes(
    session: AsyncSession, batteries: int, oem_id: uuid.UUID, program_id: uuid.UUID
) -> None:
    now = datetime.now(UTC)
    for start in range(0, batteries, SEED_CHUNK):
        stop = min(batteries, start + SEED_CHUNK)
        rows = [
            _home(battery_spec(i, seed=1, prefix=PREFIX), oem_id, program_id, now)
            for i in range(start, stop)
        ]
        for index, model in enumerate(SEEDED):
            await session.execute(sa.insert(model), [row[index] for row in rows])
    await session.commit()
    if session.get_bind().dialect.name == "postgresql":
        # What autovacuum does soon after a bulk load. Only the seeded tables: statistics
        # saying the outbox is empty would mislead the planner once a dispatch fills it.
        tables = ", ".join(str(model.__tablename__) for model in SEEDED)
        await session.execute(sa.text(f"ANALYZE {tables}"))
        await session.commit()


def _home(
    spec: BatterySpec, oem_id: uuid.UUID, program_id: uuid.UUID, now: datetime
) -> tuple[dict[str, Any], ...]:
    site_pk, device_pk, enrollment_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    stamps = {"created_at": now, "updated_at": now}
    site = {"pk": site_pk, "tenant_id": oem_id, "id": spec.site_id, **stamps}
    device = {
        "pk": device_pk,
        "tenant_id": oem_id,
        "site_pk": site_pk,
        "id": spec.device_id,
        "type": "BATTERY",
        "manufacturer_name": "gridhive simulator",
        "product_name": "SimCell",
        "serial_number": f"SIM-{spec.device_id}",
        "battery_capacity_wh": spec.capacity_wh,
        "battery_power_input_w": spec.power_w,
        "battery_power_output_w": spec.power_w,
        "extra_attributes": {},
        "reserve_percentage": spec.reserve_pct,
        **stamps,
    }
    enrollment = {
        "id": enrollment_id,
        "tenant_id": oem_id,
        "site_pk": site_pk,
        "program_id": program_id,
        "enroll_method": "USER_ACTION",
        "status": "ACTIVE",
        "enrolled_at": now,
        "program_specific_attributes": [],
        **stamps,
    }
    member = {"enrollment_id": enrollment_id, "device_pk": device_pk, "device_id": spec.device_id}
    return site, device, enrollment, member


# Processes -----------------------------------------------------------------------------------


def say(figures: dict[str, Any]) -> None:
    """One line of JSON per result as it comes (a long run shows its progress)."""
    sys.stdout.write(json.dumps(figures) + "\n")
    sys.stdout.flush()


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def _proc_file(pid: int, name: str) -> str:
    return Path(f"/proc/{pid}/{name}").read_text()


def reset_peak_rss(pids: dict[str, int]) -> None:
    for pid in pids.values():
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def peak_rss_mb(pids: dict[str, int]) -> dict[str, float]:
    peaks = {}
    for name, pid in pids.items():
        line = next(x for x in _proc_file(pid, "status").splitlines() if x.startswith("VmHWM"))
        peaks[name] = round(int(line.split()[1]) / 1024, 1)
    return peaks


def cpu_s(pids: dict[str, int]) -> dict[str, float]:
    tick = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for name, pid in pids.items():
        fields = _proc_file(pid, "stat").rsplit(")", 1)[1].split()
        seconds[name] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return seconds


# One event -----------------------------------------------------------------------------------


async def time_event(
    engine: AsyncEngine, stack: Stack, tenants: Tenants, name: str, max_wait_s: float
) -> tuple[int, int, float, float]:
    """(commands, acknowledged, seconds of the POST, seconds to the last ack): all of them
    acknowledged, or those acknowledged when `max_wait_s` ran out."""
    mode, hours, _ = EVENTS[name]
    starts_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=hours)
    action: dict[str, Any] = {
        "mode": mode,
        "starts_at": starts_at.isoformat().replace("+00:00", "Z"),
        "duration_s": 3600,
    }
    if mode == "DISCHARGE":
        action.update(power_mode="SETPOINT", setpoint_w=3000)
    body = {
        "program_id": tenants.program_id,
        "target_type": "PROGRAM",
        "target_ids": [tenants.program_id],
        "actions": [action],
    }
    headers = {"Authorization": f"Bearer {tenants.utility_key}"}
    began_wall, began = datetime.now(UTC), time.perf_counter()
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=600) as http:
        response = await http.post("/v1/events", json=body, headers=headers)
    post_s = time.perf_counter() - began
    response.raise_for_status()
    event_id = uuid.UUID(response.json()["id"])
    deadline = time.monotonic() + max_wait_s
    commands, acked, last_ack = await _wait_for_acks(engine, event_id, stack, deadline)
    return commands, acked, post_s, (last_ack - began_wall).total_seconds()


async def _wait_for_acks(
    engine: AsyncEngine, event_id: uuid.UUID, stack: Stack, deadline: float
) -> tuple[int, int, datetime]:
    of_event = Command.event_id == event_id
    count_all = sa.select(sa.func.count()).where(of_event)
    count_acked = count_all.where(Command.acknowledged_at.is_not(None))
    last_ack = sa.select(sa.func.max(Command.acknowledged_at)).where(of_event)
    async with engine.connect() as connection:
        total = int(await connection.scalar(count_all) or 0)
        while (acked := int(await connection.scalar(count_acked) or 0)) < total:
            stack.check_alive()
            if time.monotonic() > deadline:
                break
            await connection.rollback()  # a fresh snapshot for the next count
            await asyncio.sleep(POLL_S)
        last = await connection.scalar(last_ack)
    if last is None:  # nothing acknowledged before the deadline
        return total, acked, datetime.now(UTC)
    return total, acked, last if last.tzinfo else last.replace(tzinfo=UTC)


# One size ------------------------------------------------------------------------------------


async def run_size(
    database: str, url: str, batteries: int, events: Sequence[str], max_wait_s: float
) -> SizeRun:
    workdir = Path(tempfile.mkdtemp(prefix="gridhive-whole-path-"))
    began = time.perf_counter()
    engine = await fresh_engine(url)
    tenants = await seed(engine, batteries)
    seeded = time.perf_counter()
    stack = Stack(StackConfig(database_url=url, workdir=workdir, separate_worker=True))
    result = SizeRun(database, batteries, round(seeded - began, 1), 0.0)
    try:
        stack.start()
        fleet = FleetConfig(
            batteries=batteries,
            mode="webhook",
            speed=1.0,
            command_clock="sim",
            concurrency=CONCURRENCY,
            telemetry=False,
            commission=False,
            enroll=False,
            prefix=PREFIX,
        )
        start_simulator(stack, tenants, fleet, ready_timeout_s=600)
        result.start_s = round(time.perf_counter() - seeded, 1)
        pids = stack.pids()
        for name in events:
            one = await _one_event(engine, stack, tenants, name, pids, max_wait_s)
            one.database = database
            result.events.append(one)
            say(asdict(one))
    finally:
        stack.stop()
        await engine.dispose()
        if database == "sqlite":
            remove_sqlite_database(url)
        shutil.rmtree(workdir, ignore_errors=True)  # the processes' logs
    return result


async def _one_event(
    engine: AsyncEngine,
    stack: Stack,
    tenants: Tenants,
    name: str,
    pids: dict[str, int],
    max_wait_s: float,
) -> EventRun:
    load_before = load()
    reset_peak_rss(pids)
    cpu_before = cpu_s(pids)
    commands, acked, post_s, last_ack_s = await time_event(engine, stack, tenants, name, max_wait_s)
    cpu_after = cpu_s(pids)
    return EventRun(
        database="",
        batteries=commands // EVENTS[name][2],
        event=name,
        commands=commands,
        acknowledged=acked,
        post_s=round(post_s, 2),
        last_ack_s=round(last_ack_s, 2),
        commands_per_s=round(acked / last_ack_s),
        cpu_s={k: round(cpu_after[k] - cpu_before[k], 1) for k in pids},
        peak_rss_mb=peak_rss_mb(pids),
        load_before=load_before,
    )


# Baseline ------------------------------------------------------------------------------------

# The fastest client bench/http_client.py found (what the worker and the simulator use), then
# httpx's own pool (what they used before).
BASELINE_CLIENTS = ("aiohttp", "httpx")


async def baselines(round_trips: int) -> dict[str, dict[str, dict[str, float]]]:
    """Plain HTTP round trips on this machine, by client and requests in flight (1, 8,
    CONCURRENCY, 64): a webhook-sized POST and an ack-sized PATCH alternately to a trivial app
    in another process (raw ASGI under uvicorn with httptools, on the asyncio loop like
    gridhive's processes), with the CPU each side spends per round trip."""
    levels = sorted({1, 8, CONCURRENCY, 64})
    server, base_url = http_client.start_server("echo", "asyncio")
    figures: dict[str, dict[str, dict[str, float]]] = {}
    try:
        await asyncio.to_thread(http_client.until_up, base_url)
        for kind in BASELINE_CLIENTS:
            for n in levels:
                row = await http_client.measure(kind, "echo", base_url, server.pid, n, round_trips)
                figures.setdefault(kind, {})[f"{n} in flight"] = {
                    "round_trips_per_s": row["round_trips_per_s"],
                    "commands_per_s": round(row["round_trips_per_s"] / 2),
                    "client_ms": row["client_ms"],
                    "server_ms": row["server_ms"],
                }
    finally:
        server.terminate()
        server.wait()
    return figures


# Main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,100000", help="batteries, comma-separated")
    parser.add_argument("--databases", default="sqlite,postgresql", help="sqlite, postgresql")
    parser.add_argument("--events", default="standby,discharge", help="standby, discharge")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("GRIDHIVE_BENCH_DATABASE_URL", DEFAULT_POSTGRES_URL),
        help="an empty-able PostgreSQL database (its schema is dropped)",
    )
    parser.add_argument(
        "--baseline-round-trips",
        type=int,
        default=5_000,
        help="round trips per baseline measurement; 0 skips the baseline",
    )
    parser.add_argument(
        "--max-wait-s",
        type=float,
        default=3600,
        help="stop waiting for acks after this long and report the rate so far",
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--concurrency", type=int, default=CONCURRENCY, help="the simulator's acks in flight"
    )
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"load_at_start": load(), "cpus": os.cpu_count(), "runs": []}
    if args.baseline_round_trips > 0:
        figures["baseline"] = await baselines(args.baseline_round_trips)
        say({"baseline": figures["baseline"], "load": figures["load_at_start"]})
    for database in args.databases.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            url = sqlite_url() if database == "sqlite" else args.postgres_url
            if database != "sqlite" and "version" not in figures:
                engine = await fresh_engine(url)
                figures["version"] = await server_version(engine)
                await engine.dispose()
            run = await run_size(database, url, size, args.events.split(","), args.max_wait_s)
            say({k: v for k, v in asdict(run).items() if k != "events"})
            figures["runs"].append(asdict(run))
    figures["load_at_end"] = load()
    return figures


if __name__ == "__main__":
    arguments = parse_args()
    CONCURRENCY = arguments.concurrency
    result = asyncio.run(main(arguments))
    if arguments.json:
        arguments.json.write_text(json.dumps(result, indent=2) + "\n")
