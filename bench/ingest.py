"""Telemetry ingest throughput: 4 clients posting 1,000-item batches to a real server.

For each database: a fresh migrated schema with one OEM and `--clients` x 1,000 batteries
(bulk-seeded, not timed); then, in the same run and on the same database:

1. *Plain INSERT*: the same rows written straight into `telemetry_intervals` by `--clients`
   concurrent connections, one 1,000-row executemany per transaction — the floor the database
   sets, with no HTTP, JSON, validation, device lookup or latest-state update.
2. *API*: `gridhive serve --no-workers` (uvicorn, one process) on 127.0.0.1; `--clients`
   concurrent HTTP clients each post `--batches` batches of 1,000 full §9.7 items, one per
   battery of its own, for a new 5-minute interval each time. Bodies are encoded before the
   clock starts, so the figure is the server's.

Between the two the table is emptied, so both write into the same (empty) table. Prints a
Markdown table: items/s of each, and their ratio.

    .venv/bin/python bench/ingest.py                       # SQLite and PostgreSQL
    .venv/bin/python bench/ingest.py --no-postgres --batches 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import fresh_engine, server_version, sqlite_url
from gridhive.auth import service as auth_service
from gridhive.auth.models import OrgKind
from gridhive.db.session import make_sessionmaker, unit_of_work
from gridhive.devices.models import Device
from gridhive.kit.time import isoformat_z
from gridhive.sites.models import Site
from gridhive.telemetry.models import TelemetryInterval

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/gridhive_bench_ingest"
BATCH = 1000
STEP = timedelta(minutes=5)


@dataclass(frozen=True)
class Fleet:
    key: str
    devices: list[tuple[uuid.UUID, str]]  # (pk, OEM id), BATCH per client


@dataclass(frozen=True)
class Result:
    database: str
    items: int
    plain_per_s: float
    api_per_s: float
    failed: int
    api_cpu_s: float  # CPU time of the API process(es) over the timed batches

    @property
    def api_cpu_ms_per_batch(self) -> float:
        return self.api_cpu_s * 1000 / (self.items / BATCH)

    @property
    def ratio(self) -> float:
        return self.api_per_s / self.plain_per_s


# Seeding ---------------------------------------------------------------------------------------


async def seed(engine: AsyncEngine, count: int) -> Fleet:
    """One OEM with `count` batteries, one per home; returns its API key."""
    async with unit_of_work(make_sessionmaker(engine)) as session:
        oem = await auth_service.create_organization(session, kind=OrgKind.OEM, name="Volt")
        _, key = await auth_service.create_api_key(session, org_id=oem.id)
        now = datetime.now(UTC)
        stamps = {"created_at": now, "updated_at": now}
        sites, devices = [], []
        for i in range(count):
            site_pk, device_pk = uuid.uuid4(), uuid.uuid4()
            sites.append({"pk": site_pk, "tenant_id": oem.id, "id": f"home-{i:05d}", **stamps})
            devices.append(_device(i, device_pk, site_pk, oem.id, stamps))
        await session.execute(sa.insert(Site), sites)
        await session.execute(sa.insert(Device), devices)
    if engine.dialect.name == "postgresql":
        async with engine.begin() as connection:  # as autovacuum would have by now
            await connection.execute(sa.text("ANALYZE"))
    return Fleet(key, [(d["pk"], d["id"]) for d in devices])


def _device(
    i: int, pk: uuid.UUID, site_pk: uuid.UUID, oem_id: uuid.UUID, stamps: dict[str, Any]
) -> dict[str, Any]:
    return {
        "pk": pk,
        "tenant_id": oem_id,
        "site_pk": site_pk,
        "id": f"bat-{i:05d}",
        "type": "BATTERY",
        "manufacturer_name": "Volt",
        "product_name": "PowerCell",
        "battery_capacity_wh": 13500,
        "battery_power_input_w": 5000,
        "battery_power_output_w": 5000,
        "extra_attributes": {},
        "reserve_percentage": 20,
        **stamps,
    }


# Work ------------------------------------------------------------------------------------------


def measurements(n: int) -> dict[str, Any]:
    """A full online item's measurements (flip-api §9.7), varied a little per item."""
    return {
        "last_is_online": True,
        "last_mode": "SELF_CONSUMPTION",
        "battery_last_power_charge_w": 0.0,
        "battery_last_power_discharge_w": 1200.0 + n % 100,
        "battery_total_energy_charge_wh": 0.0,
        "battery_total_energy_discharge_wh": 100.0 + n % 7,
        "battery_last_stored_energy_wh": 6750.0,
        "battery_last_capacity_energy_wh": 13500.0,
        "battery_last_state_of_charge_percentage": float(20 + n % 80),
        "battery_last_state_of_health_percentage": 98.0,
        "last_is_grid_online": True,
        "home_total_energy_wh": 150.0,
        "home_last_power_w": 1800.0,
        "solar_total_energy_wh": 20.0,
        "solar_last_power_w": 240.0,
        "oem_raw_data": {"firmware": "1.2.3", "inverter_temp_c": 31 + n % 5},
    }


def batches(fleet: Fleet, client: int, count: int, first: datetime) -> list[list[dict[str, Any]]]:
    """`count` batches of the client's own 1,000 batteries, one new interval each time."""
    mine = fleet.devices[client * BATCH : (client + 1) * BATCH]
    return [
        [
            {"device_pk": pk, "device_id": device_id, "start_time": first + b * STEP, "n": n}
            for n, (pk, device_id) in enumerate(mine)
        ]
        for b in range(count)
    ]


def api_body(batch: list[dict[str, Any]]) -> bytes:
    items = [
        {
            "start_time": isoformat_z(p["start_time"]),
            "duration_s": 300,
            "device_id": p["device_id"],
            **measurements(p["n"]),
        }
        for p in batch
    ]
    return json.dumps({"telemetry": items}).encode()


def plain_rows(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "device_pk": p["device_pk"],
            "start_time": p["start_time"],
            "duration_s": 300.0,
            **measurements(p["n"]),
        }
        for p in batch
    ]


async def run_plain(engine: AsyncEngine, work: list[list[list[dict[str, Any]]]]) -> float:
    """Seconds for every client's batches as plain INSERTs, one transaction per batch."""
    insert = sa.insert(TelemetryInterval)

    async def client(batches: list[list[dict[str, Any]]]) -> None:
        for rows in batches:
            async with engine.begin() as connection:
                await connection.execute(insert, rows)

    started = time.perf_counter()
    await asyncio.gather(*(client(b) for b in work))
    return time.perf_counter() - started


async def run_api(bases: list[str], key: str, work: list[list[bytes]]) -> tuple[float, int]:
    """Seconds for every client's batches through HTTP, and the number of FAILED items.
    Client i talks to server i mod len(bases), as a load balancer would spread them."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    failed = 0

    async def client(base_url: str, bodies: list[bytes]) -> None:
        nonlocal failed
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120) as http:
            for body in bodies:
                response = await http.post("/v1/telemetry/BATTERY", content=body)
                response.raise_for_status()
                failed += response.content.count(b'"FAILED"')

    started = time.perf_counter()
    await asyncio.gather(*(client(bases[i % len(bases)], b) for i, b in enumerate(work)))
    return time.perf_counter() - started, failed


# Server ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_server(database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GRIDHIVE_LOG_LEVEL": "WARNING", "GRIDHIVE_DATABASE_POOL_SIZE": "8"}
    command = [sys.executable, "-m", "gridhive.cli.main", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--database-url", database_url, "--no-workers"]
    server = subprocess.Popen(command, env=env)  # noqa: ASYNC220 (started once, not awaited)
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            try:
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    server.terminate()
    raise RuntimeError("the server did not start")


# Runs ------------------------------------------------------------------------------------------


async def bench_database(url: str, clients: int, count: int, servers: int) -> Result:
    engine = await fresh_engine(url)
    try:
        fleet = await seed(engine, clients * BATCH)
        database = await server_version(engine)
        first = datetime(2026, 7, 1, tzinfo=UTC)
        work = [batches(fleet, c, count + 1, first) for c in range(clients)]
        plain = [[plain_rows(b) for b in w[1:]] for w in work]
        plain_s = await run_plain(engine, plain)
        await empty_intervals(engine)
        bodies = [[api_body(b) for b in w] for w in work]
        api_s, failed, api_cpu_s = await _through_servers(url, fleet.key, bodies, servers)
    finally:
        await engine.dispose()
    items = clients * count * BATCH
    return Result(database, items, items / plain_s, items / api_s, failed, api_cpu_s)


async def empty_intervals(engine: AsyncEngine) -> None:
    """Empty the table for the API's run, as the plain INSERT found it. On PostgreSQL TRUNCATE,
    not DELETE: deleted rows would stay in the primary key until vacuumed, and the API's
    upsert of the same keys would check each of them."""
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(sa.text("TRUNCATE telemetry_intervals"))
        else:
            await connection.execute(sa.delete(TelemetryInterval))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _through_servers(
    url: str, key: str, bodies: list[list[bytes]], count: int
) -> tuple[float, int, float]:
    ports = [free_port() for _ in range(count)]
    servers = [await start_server(url, port) for port in ports]
    try:
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        await run_api(bases, key, [b[:1] for b in bodies])  # warm-up, not timed
        before = sum(cpu_seconds(server.pid) for server in servers)
        seconds, failed = await run_api(bases, key, [b[1:] for b in bodies])
        used = sum(cpu_seconds(server.pid) for server in servers) - before
        return seconds, failed, used
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batches", type=int, default=15, help="Timed batches per client")
    parser.add_argument(
        "--servers", type=int, default=1, help="API processes (scale-out); clients spread evenly"
    )
    return parser.parse_args(argv)


def table(results: list[Result], clients: int, servers: int) -> str:
    lines = [
        f"{clients} clients x 1,000-item batches, {servers} API process(es); "
        f"Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}",
        "",
        "| Database | Items | Plain INSERT items/s | API items/s | API / plain | FAILED "
        "| API CPU ms/batch |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.database} | {r.items:,} | {r.plain_per_s:,.0f} | {r.api_per_s:,.0f} "
            f"| {r.ratio:.2f} | {r.failed} | {r.api_cpu_ms_per_batch:.1f} |"
        )
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    urls = [] if args.no_sqlite else [sqlite_url()]
    urls += [] if args.no_postgres else [args.postgres_url]
    results = [await bench_database(url, args.clients, args.batches, args.servers) for url in urls]
    print(table(results, args.clients, args.servers))  # noqa: T201 (the report)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
