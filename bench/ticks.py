"""Time the event ticks of a dispatch over 10,000 and 100,000 batteries: one tick each.

For each database and size: a fresh migrated schema, N enrolled homes of one battery
(bulk-seeded), one webhook endpoint of their OEM subscribed to every event type, and a real
`POST /v1/events` (one EVEN DISCHARGE action in 2 h, so nearly every battery also gets a
pre-charge ending when the action starts). Then nine batteries in ten acknowledge all their
commands (one UPDATE; the one in ten that the seed leaves offline does not). None of that is
timed. Then two ticks, each run as the scheduler runs it (the handler in one unit of work,
committed):

- *start*: the action's start tick: N commands start (`command.started`), N pre-charges end
  (`command.ended`; the unacknowledged ones fail first);
- *end*: the action's end tick: N commands end, the unacknowledged ones fail.

Prints wall time, the split by phase (wrapping functions from here: *outbox* is
`webhook_service.emit_many` and `emit` with their fan-out, *commit*, *other* the tick's own
statements and rows), CPU of the event loop's thread and of the process' other threads
(SQLite's), the messages written and the load average.

    .venv/bin/python bench/ticks.py --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    GcClock,
    PhaseTimer,
    fresh_engine,
    register_oem_webhook,
    remove_sqlite_database,
    seed_fleet,
    server_version,
    sqlite_url,
)
from bench.plan_event import event_body, machine
from gridhive import app as app_module
from gridhive.commands.models import Command, DeviceStatus
from gridhive.config import Settings
from gridhive.db.session import make_sessionmaker, unit_of_work
from gridhive.events import ticks
from gridhive.events.models import Event
from gridhive.kit.time import isoformat_z
from gridhive.webhooks import service as webhook_service
from gridhive.webhooks.models import OutboundMessage

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/gridhive_h4_bench"
PHASES = ("other", "outbox", "commit")


@dataclass
class Tick:
    name: str
    wall_s: float
    phases: dict[str, float]
    loop_cpu_s: float  # the event loop's thread: the app's Python
    driver_cpu_s: float  # the process' other threads: SQLite (aiosqlite's thread)
    gc_s: float
    messages: int
    load: float


@dataclass
class Result:
    database: str
    devices: int
    commands: int
    ticks: list[Tick] = field(default_factory=list)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", default="10000,100000", help="batteries (default: %(default)s)")
    parser.add_argument("--databases", default="sqlite,postgres", help="sqlite, postgres")
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="database to create or reset (its public schema is dropped!) (default: %(default)s)",
    )
    parser.add_argument("--label", default="", help="a word for the table (before, after)")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    return parser.parse_args(argv)


# Setup ---------------------------------------------------------------------------------------


async def dispatch(engine: AsyncEngine, url: str, devices: int) -> Event:
    """Fleet, endpoint, one event through the real app; nine in ten batteries acknowledge."""
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        fleet = await seed_fleet(session, devices)
    async with unit_of_work(sessionmaker) as session:
        await register_oem_webhook(session, "http://127.0.0.1:9/hook")
    settings = Settings(database_url=url, run_migrations_on_start=False, log_json=False)
    settings.worker.in_process = False
    app = app_module.create_app(settings, engine=engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        body = event_body(str(fleet.program_id), devices)
        response = await client.post("/v1/events", json=body, headers=fleet.utility_headers)
        if response.status_code != 200:
            raise SystemExit(f"POST /v1/events: {response.status_code} {response.text[:500]}")
    async with unit_of_work(sessionmaker) as session:
        event = await session.get(Event, uuid.UUID(response.json()["id"]))
        assert event is not None
        acknowledged = await session.scalar(sa.select(sa.func.max(Command.created_at)))
        await session.execute(
            sa.update(Command)
            .where(Command.event_id == event.id, Command.device_id.not_like("%0"))
            .values(device_status=DeviceStatus.OK, acknowledged_at=acknowledged)
        )
    return event


async def count_commands(sessionmaker: async_sessionmaker[AsyncSession], event: Event) -> int:
    async with sessionmaker() as session:
        found = await session.scalar(
            sa.select(sa.func.count()).select_from(Command).where(Command.event_id == event.id)
        )
    return int(found or 0)


async def count_messages(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        found = await session.scalar(sa.select(sa.func.count()).select_from(OutboundMessage))
    return int(found or 0)


# The ticks -----------------------------------------------------------------------------------


async def run_tick(
    sessionmaker: async_sessionmaker[AsyncSession], event: Event, at: datetime, name: str
) -> Tick:
    """The `event.tick` job at `at`, as the scheduler runs it: handler, then commit."""
    payload = {"event_id": str(event.id), "at": isoformat_z(at)}
    before = await count_messages(sessionmaker)
    timer = PhaseTimer()
    timer.wrap(webhook_service, "emit_many", "outbox")
    timer.wrap(webhook_service, "emit", "outbox")
    timer.wrap(AsyncSession, "commit", "commit")
    gc.collect()
    try:
        with GcClock() as gc_clock:
            cpu_started, loop_started = time.process_time(), time.thread_time()
            started = time.perf_counter()
            async with unit_of_work(sessionmaker) as session:
                await ticks.run_tick(session, payload, now=at)
            wall = time.perf_counter() - started
            loop_cpu = time.thread_time() - loop_started
            cpu = time.process_time() - cpu_started
    finally:
        timer.restore()
    phases = dict(timer.totals)
    phases["other"] = wall - sum(phases.values())
    messages = await count_messages(sessionmaker) - before
    load = os.getloadavg()[0]
    sys.stderr.write(
        f"    {name} tick: {wall:6.2f} s, cpu {loop_cpu:5.2f} + {cpu - loop_cpu:5.2f} s,"
        f" {messages:,} messages, load {load:.1f}\n"
    )
    return Tick(name, wall, phases, loop_cpu, cpu - loop_cpu, gc_clock.seconds, messages, load)


async def bench_size(database: str, url: str, devices: int) -> tuple[Result, str]:
    engine = await fresh_engine(url)
    try:
        version = await server_version(engine)
        sessionmaker = make_sessionmaker(engine)
        event = await dispatch(engine, url, devices)
        result = Result(database, devices, await count_commands(sessionmaker, event))
        sys.stderr.write(f"  {database} {devices:,} batteries, {result.commands:,} commands\n")
        action_start = ticks.tick_of(event.starts_at)
        action_end = ticks.tick_of(event.ends_at)
        result.ticks.append(await run_tick(sessionmaker, event, action_start, "start"))
        result.ticks.append(await run_tick(sessionmaker, event, action_end, "end"))
    finally:
        await engine.dispose()
        if database == "sqlite":
            remove_sqlite_database(url)
    return result, version


def markdown(results: list[Result], label: str) -> str:
    head = ["code", "database", "batteries", "commands", "tick", "messages", "wall (s)"]
    head += [f"{p} (s)" for p in PHASES]
    head += ["of which GC (s)", "CPU: app (s)", "CPU: SQLite thread (s)", "load"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for result in results:
        for tick in result.ticks:
            cells = [
                label,
                result.database,
                f"{result.devices:,}",
                f"{result.commands:,}",
                tick.name,
                f"{tick.messages:,}",
                f"**{tick.wall_s:.2f}**",
            ]
            cells += [f"{tick.phases.get(p, 0.0):.2f}" for p in PHASES]
            cells += [
                f"{tick.gc_s:.2f}",
                f"{tick.loop_cpu_s:.2f}",
                f"{tick.driver_cpu_s:.2f}",
                f"{tick.load:.1f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    results: list[Result] = []
    versions: list[str] = []
    for database in databases:
        for devices in sizes:
            url = sqlite_url() if database == "sqlite" else args.postgres_url
            result, version = await bench_size(database, url, devices)
            results.append(result)
            if version not in versions:
                versions.append(version)
    sys.stdout.write(f"{machine()}; {', '.join(versions)}\n\n")
    sys.stdout.write(markdown(results, args.label) + "\n")
    if args.json:
        raw: list[dict[str, Any]] = [
            {
                "database": r.database,
                "devices": r.devices,
                "commands": r.commands,
                "ticks": [vars(t) for t in r.ticks],
            }
            for r in results
        ]
        args.json.write_text(json.dumps(raw, indent=2))


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
