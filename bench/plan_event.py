"""Time `POST /v1/events` for a PROGRAM target over 1,000 to 100,000 batteries.

For each database and size: a fresh migrated schema, N homes of one battery each enrolled in an
auto-approving program (bulk-seeded, not timed), then `--repeats` dispatches of one EVEN
DISCHARGE SETPOINT action starting in 2 h (so pre-charges are planned) through the real ASGI
app and its own unit of work. Between repeats the previous event and its commands are marked
canceled in SQL (untimed), so every run plans a fresh event against a table that keeps growing.
The OEM has no webhook endpoint, as one that polls; with `--oem-webhook` it has one for every
event type, and each message then also gets a delivery row in the same transaction.

Prints a Markdown table of medians: wall time; the database floor (the same rows stored again
through the product's bulk path, rows ready-made: `bench._common.database_floor`); the split by
phase, measured by wrapping the service's functions from here (exclusive time: a phase nested
in another is not counted twice); time in the garbage collector; CPU of the event loop's thread
and of SQLite's; on SQLite, the WAL checkpoint that runs in the background after the answer
(waited for before the next run, untimed); and the load average, since other work on the
machine moves every figure.

    .venv/bin/python bench/plan_event.py --sizes 1000,10000,100000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    GcClock,
    PhaseTimer,
    database_floor,
    fresh_engine,
    median,
    register_oem_webhook,
    remove_sqlite_database,
    seed_fleet,
    server_version,
    sqlite_url,
)
from gridhive import app as app_module
from gridhive.commands.models import Command
from gridhive.config import Settings
from gridhive.db import sqlite_big_write
from gridhive.db.session import make_sessionmaker
from gridhive.events.models import Event

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/gridhive_bench"
PHASES = ("validate", "resolve", "overlap", "plan", "insert", "outbox", "commit", "other")
# (module, attribute, phase). Missing attributes are skipped, so the list also fits older
# layouts of the service; `other` is the rest: HTTP, auth, JSON in and out.
WRAPPED = (
    ("gridhive.events.service", "_program_of_caller", "validate"),
    ("gridhive.events.service", "_validate", "validate"),
    ("gridhive.events.service", "_resolve_targets", "resolve"),
    ("gridhive.events.repository", "overlapping_commands", "overlap"),
    ("gridhive.events.service", "_plan", "plan"),
    ("gridhive.events.service", "plan_event", "plan"),
    ("gridhive.events.service", "_store_event", "insert"),
    ("gridhive.events.service", "_store_plan", "insert"),
    ("gridhive.events.persistence", "store_event", "insert"),
    ("gridhive.events.persistence", "store_plan", "insert"),
    ("gridhive.webhooks.service", "emit", "outbox"),
    ("gridhive.webhooks.service", "emit_many", "outbox"),
    ("gridhive.webhooks.service", "emit_batch", "outbox"),
)
WATTS_PER_DEVICE = 4000  # above the smallest rating: EVEN has to cap some and water-fill


@dataclass
class Run:
    wall_s: float
    commands: int
    phases: dict[str, float]
    loop_cpu_s: float  # CPU of the event loop's thread: the app's Python
    driver_cpu_s: float  # CPU of this process's other threads: SQLite (aiosqlite's thread)
    gc_s: float  # of the phases above, time in the cyclic garbage collector
    load: float  # 1-minute load average after the run: other work on the machine
    floor_s: float = 0.0  # bench._common.database_floor: the database's own share
    checkpoint_s: float = 0.0  # SQLite: the background WAL checkpoint, after the answer


@dataclass
class Result:
    database: str
    devices: int
    runs: list[Run] = field(default_factory=list)

    def median_phase(self, name: str) -> float:
        return median([run.phases.get(name, 0.0) for run in self.runs])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        default="1000,10000,100000",
        help="comma-separated device counts (default: %(default)s)",
    )
    parser.add_argument(
        "--databases",
        default="sqlite,postgres",
        help="comma-separated: sqlite, postgres (default: %(default)s)",
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="database to create or reset (its public schema is dropped!) (default: %(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per size (default: 3)")
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="skip the database floor (the same rows stored again by db.bulk.insert_rows)",
    )
    parser.add_argument(
        "--oem-webhook",
        action="store_true",
        help="the OEM registers a webhook endpoint for every event type, so each message also"
        " gets a delivery row (default: none, as an OEM that polls)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    return parser.parse_args(argv)


def event_body(program_id: str, devices: int) -> dict[str, Any]:
    starts_at = datetime.now(UTC) + timedelta(hours=2)
    return {
        "program_id": program_id,
        "target_type": "PROGRAM",
        "target_ids": [program_id],
        "actions": [
            {
                "mode": "DISCHARGE",
                "starts_at": starts_at.isoformat().replace("+00:00", "Z"),
                "duration_s": 7200,
                "power_mode": "SETPOINT",
                "setpoint_mode": "EVEN",
                "setpoint_w": devices * WATTS_PER_DEVICE,
            }
        ],
    }


def install_timers(timer: PhaseTimer) -> None:
    import importlib

    for module_name, attr, phase in WRAPPED:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        timer.wrap(module, attr, phase)
    timer.wrap(AsyncSession, "commit", "commit")


async def bench_size(
    engine: AsyncEngine, url: str, devices: int, repeats: int, *, floor: bool, webhook: bool
) -> Result:
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        fleet = await seed_fleet(session, devices)
        if webhook:  # never called: the dispatch only writes the deliveries
            await register_oem_webhook(session, "http://127.0.0.1:9/hooks")
            await session.commit()
    settings = Settings(database_url=url, run_migrations_on_start=False, log_json=False)
    app = app_module.create_app(settings, engine=engine)
    result = Result(engine.dialect.name, devices)
    timer = PhaseTimer()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for _ in range(repeats):
            body = event_body(str(fleet.program_id), devices)
            gc.collect()
            install_timers(timer)
            timer.reset()
            since = datetime.now(UTC)
            try:
                with GcClock() as gc_clock:
                    cpu_started = time.process_time()
                    loop_cpu_started = time.thread_time()
                    started = time.perf_counter()
                    response = await client.post(
                        "/v1/events", json=body, headers=fleet.utility_headers
                    )
                    wall = time.perf_counter() - started
                    loop_cpu = time.thread_time() - loop_cpu_started
                    cpu = time.process_time() - cpu_started
            finally:
                timer.restore()
            # SQLite checkpoints a big write's WAL in the background after answering: waited
            # for here, untimed but reported, so that no run pays for the one before it.
            settle_started = time.perf_counter()
            await sqlite_big_write.settle(engine)
            checkpoint_s = time.perf_counter() - settle_started
            if response.status_code != 200:
                raise SystemExit(f"POST /v1/events: {response.status_code} {response.text[:500]}")
            event_id = response.json()["id"]
            phases = dict(timer.totals)
            phases["other"] = wall - sum(phases.values())
            floor_s = await database_floor(engine, uuid.UUID(event_id), since) if floor else 0.0
            commands = await _cancel(sessionmaker, event_id)
            load = os.getloadavg()[0]
            run = Run(wall, commands, phases, loop_cpu, cpu - loop_cpu, gc_clock.seconds, load)
            run.floor_s = floor_s
            run.checkpoint_s = checkpoint_s
            result.runs.append(run)
            sys.stderr.write(
                f"  {result.database:10} {devices:>7,} devices: {wall:6.2f} s, cpu {loop_cpu:5.2f}"
                f" + {cpu - loop_cpu:5.2f} s,"
                f" gc {gc_clock.seconds:4.2f} s, load {load:.1f}, "
                f"{commands:,} commands\n"
            )
    return result


async def _cancel(sessionmaker: Any, event_id: str) -> int:
    """Cancel the event as the API would leave it (untimed); returns its command count."""

    event_uuid = uuid.UUID(event_id)
    now = datetime.now(UTC)
    async with sessionmaker() as session:
        count = await session.scalar(
            sa.select(sa.func.count()).select_from(Command).where(Command.event_id == event_uuid)
        )
        await session.execute(
            sa.update(Event).where(Event.id == event_uuid).values(canceled_at=now, updated_at=now)
        )
        await session.execute(
            sa.update(Command)
            .where(Command.event_id == event_uuid)
            .values(status="CANCELED", status_reason="bench", updated_at=now)
        )
        await session.commit()
    return int(count or 0)


def markdown(results: list[Result]) -> str:
    head = ["database", "devices", "commands", "wall median (s)", "min-max (s)", "DB floor (s)"]
    head += [f"{p} (s)" for p in PHASES]
    head += ["of which GC (s)", "CPU: app (s)", "CPU: SQLite thread (s)"]
    head += ["checkpoint after (s)", "load"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for result in results:
        walls = [run.wall_s for run in result.runs]
        cells = [
            result.database,
            f"{result.devices:,}",
            f"{result.runs[0].commands:,}",
            f"**{median(walls):.3f}**",
            f"{min(walls):.3f}-{max(walls):.3f}",
            f"{median([run.floor_s for run in result.runs]):.3f}",
        ]
        cells += [f"{result.median_phase(p):.3f}" for p in PHASES]
        cells += [
            f"{median([run.gc_s for run in result.runs]):.3f}",
            f"{median([run.loop_cpu_s for run in result.runs]):.3f}",
            f"{median([run.driver_cpu_s for run in result.runs]):.3f}",
            f"{median([run.checkpoint_s for run in result.runs]):.3f}",
            f"{median([run.load for run in result.runs]):.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs, {model}, Python {platform.python_version()}"


async def main(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    results: list[Result] = []
    versions: list[str] = []
    for database in databases:
        for devices in sizes:
            url = sqlite_url() if database == "sqlite" else args.postgres_url
            engine = await fresh_engine(url)
            try:
                if devices == sizes[0]:
                    versions.append(await server_version(engine))
                results.append(
                    await bench_size(
                        engine,
                        url,
                        devices,
                        args.repeats,
                        floor=not args.no_floor,
                        webhook=args.oem_webhook,
                    )
                )
            finally:
                await engine.dispose()
                if database == "sqlite":
                    remove_sqlite_database(url)
    oem = "an OEM with a webhook endpoint" if args.oem_webhook else "an OEM that polls"
    sys.stdout.write(
        f"{machine()}; {', '.join(versions)}; {oem}; median of {args.repeats} runs\n\n"
    )
    sys.stdout.write(markdown(results) + "\n")
    if args.json:
        raw = [
            {"database": r.database, "devices": r.devices, "runs": [vars(run) for run in r.runs]}
            for r in results
        ]
        args.json.write_text(json.dumps(raw, indent=2))


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
