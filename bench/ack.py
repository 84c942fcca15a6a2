"""The acknowledgement, timed: API-process CPU per `PATCH /v1/command/{id}`.

For each database and size N: a fresh migrated database with N enrolled homes of one battery
(bulk-seeded as in bench/whole_path.py), `gridhive serve --no-workers` started on it, and one
STANDBY event dispatched through the API, so N commands wait for their acks (untimed). Then,
from this process, over keep-alive connections with `--in-flight` requests at a time:

- `first`: K acks (`{"device_status": "OK", ...}`), each on a different command;
- `repeat`: the same K acks again (the idempotent path: nothing changes, the same answer).

For each: the API process's CPU (user + system from /proc/<pid>/stat) per ack in ms, acks/s,
and this process's CPU per ack. The client is a few lines of raw HTTP/1.1 over asyncio
streams, much cheaper than httpx, so that acks/s says more about the server than the client.
The machine may be shared: CPU ms per ack is the figure to compare, acks/s is a floor.

    .venv/bin/python bench/ack.py --databases sqlite,postgresql --sizes 10000,100000

`--py-spy DIR` also records the server during `first` with py-spy (if installed), collapsed
stacks in DIR/<database>-<size>.txt.
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
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import fresh_engine, remove_sqlite_database, seed_fleet, sqlite_url
from bench._echo import echo_app
from gridhive.auth import service as auth_service
from gridhive.auth.models import Organization, OrgKind
from gridhive.commands.models import Command
from gridhive.db.session import make_sessionmaker
from gridhive.simulator.stack import Proc, free_port, gridhive_argv, spawn, wait_until

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/gridhive_bench"
ACK_BODY = json.dumps({"device_status": "OK", "device_status_reason": "Command scheduled"})
WARM_UP = 200  # acks before the timed ones (connections, caches, prepared statements)


@dataclass
class Phase:
    database: str
    batteries: int
    phase: str
    acks: int
    in_flight: int
    server_cpu_ms_per_ack: float
    server_system_ms_per_ack: float  # of which in the kernel
    client_cpu_ms_per_ack: float
    acks_per_s: float
    load_before: str


def say(result: Phase) -> None:
    """One line of JSON per result as it comes."""
    sys.stdout.write(json.dumps(asdict(result)) + "\n")
    sys.stdout.flush()


# A minimal keep-alive HTTP/1.1 client ---------------------------------------------------------


class RawClient:
    """One keep-alive connection; one request at a time, answers read by Content-Length."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.key = key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()

    async def patch(self, path: str, body: str) -> tuple[int, bytes]:
        assert self.reader is not None
        assert self.writer is not None
        payload = body.encode()
        head = (
            f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {self.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode() + payload)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        answer = await self.reader.readexactly(length)
        return int(status_line.split()[1]), answer


async def send_acks(port: int, key: str, command_ids: list[str], in_flight: int) -> float:
    """Ack every command, `in_flight` connections at a time; the wall seconds it took."""
    clients = [RawClient(port, key) for _ in range(in_flight)]
    for client in clients:
        await client.open()
    pending = iter(command_ids)

    async def lane(client: RawClient) -> None:
        for command_id in pending:
            status, answer = await client.patch(f"/v1/command/{command_id}", ACK_BODY)
            if status != 200:
                raise RuntimeError(f"ack of {command_id}: {status} {answer[:300]!r}")

    began = time.perf_counter()
    try:
        await asyncio.gather(*(lane(client) for client in clients))
    finally:
        for client in clients:
            await client.close()
    return time.perf_counter() - began


# The server and its commands ------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    utility: str
    oem: str
    program_id: str


async def seed(engine: AsyncEngine, batteries: int) -> Keys:
    """bench._common's fleet (a utility, an OEM, a program, N enrolled homes) and an OEM key."""
    async with make_sessionmaker(engine)() as session:
        fleet = await seed_fleet(session, batteries)
        oem = await session.scalar(sa.select(Organization).where(Organization.kind == OrgKind.OEM))
        assert oem is not None
        _, oem_key = await auth_service.create_api_key(session, org_id=oem.id)
        await session.commit()
    utility_key = fleet.utility_headers["Authorization"].removeprefix("Bearer ")
    return Keys(utility_key, oem_key, str(fleet.program_id))


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def start_server(url: str, workdir: Path) -> tuple[Proc, int]:
    port = free_port()
    env = {
        "GRIDHIVE_DATABASE_URL": url,
        "GRIDHIVE_LOG_JSON": "false",
        "GRIDHIVE_LOG_LEVEL": "WARNING",  # as bench/whole_path.py runs it
    }
    server = spawn(
        "server",
        gridhive_argv("serve", "--port", str(port), "--no-workers"),
        env=env,
        workdir=workdir,
    )

    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout_s=120, what="gridhive serve", alive=server.check_alive)
    return server, port


async def dispatch_standby(port: int, utility_key: str, program_id: str) -> uuid.UUID:
    """One STANDBY event over the whole program: a command per battery, none acked yet."""
    starts_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=10)
    body = {
        "program_id": program_id,
        "target_type": "PROGRAM",
        "target_ids": [program_id],
        "actions": [
            {
                "mode": "STANDBY",
                "starts_at": starts_at.isoformat().replace("+00:00", "Z"),
                "duration_s": 3600,
            }
        ],
    }
    headers = {"Authorization": f"Bearer {utility_key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as http:
        response = await http.post("/v1/events", json=body, headers=headers)
    response.raise_for_status()
    return uuid.UUID(response.json()["id"])


async def command_ids(engine: AsyncEngine, event_id: uuid.UUID, count: int) -> list[str]:
    """`count` of the event's commands, in no particular order (as acks arrive)."""
    stmt = sa.select(Command.id).where(Command.event_id == event_id).limit(count)
    async with engine.connect() as connection:
        return [str(i) for i in (await connection.scalars(stmt)).all()]


# One run -------------------------------------------------------------------------------------


def user_system_s(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


async def timed_phase(
    name: str, server_pid: int, port: int, key: str, ids: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    load_before = load()
    user_before, system_before = user_system_s(server_pid)
    client_before = time.process_time()
    wall = await send_acks(port, key, ids, args.in_flight)
    client_cpu = time.process_time() - client_before
    user_after, system_after = user_system_s(server_pid)
    user, system = user_after - user_before, system_after - system_before
    return {
        "phase": name,
        "acks": len(ids),
        "in_flight": args.in_flight,
        "server_cpu_ms_per_ack": round(1000 * (user + system) / len(ids), 3),
        "server_system_ms_per_ack": round(1000 * system / len(ids), 3),
        "client_cpu_ms_per_ack": round(1000 * client_cpu / len(ids), 3),
        "acks_per_s": round(len(ids) / wall),
        "load_before": load_before,
    }


def start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        sys.stderr.write("py-spy not found: no profile\n")
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "250",
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_py_spy(recorder: subprocess.Popen[bytes] | None) -> None:
    if recorder is not None:
        recorder.send_signal(2)  # SIGINT: py-spy writes its output and exits
        recorder.wait(60)


async def run_size(
    database: str, url: str, batteries: int, args: argparse.Namespace
) -> list[Phase]:
    workdir = Path(tempfile.mkdtemp(prefix="gridhive-ack-"))
    engine = await fresh_engine(url)
    server: Proc | None = None
    try:
        tenants = await seed(engine, batteries)
        server, port = start_server(url, workdir)
        event_id = await dispatch_standby(port, tenants.utility, tenants.program_id)
        ids = await command_ids(engine, event_id, args.acks + WARM_UP)
        warm_up, timed = ids[:WARM_UP], ids[WARM_UP:]
        await send_acks(port, tenants.oem, warm_up, args.in_flight)
        phases = []
        pid = server.popen.pid
        recorder = None
        if args.py_spy:
            recorder = start_py_spy(pid, args.py_spy / f"{database}-{batteries}.txt")
            await asyncio.sleep(1)  # py-spy attaches
        try:
            phases.append(await timed_phase("first", pid, port, tenants.oem, timed, args))
        finally:
            stop_py_spy(recorder)
        phases.append(await timed_phase("repeat", pid, port, tenants.oem, timed, args))
        results = [Phase(database=database, batteries=batteries, **p) for p in phases]
        for result in results:
            say(result)
        return results
    finally:
        if server is not None:
            server.stop()
        await engine.dispose()
        if database == "sqlite":
            remove_sqlite_database(url)
        shutil.rmtree(workdir, ignore_errors=True)


def serve_echo(port: int) -> None:
    import uvicorn

    uvicorn.run(echo_app, host="127.0.0.1", port=port, log_level="warning")


async def run_floor(args: argparse.Namespace) -> Phase:
    """The same requests to a trivial app under uvicorn as `gridhive serve` runs it (uvloop,
    httptools): what HTTP alone costs on this machine now."""
    port = free_port()
    echo = subprocess.Popen(  # noqa: ASYNC220 (started before anything is timed)
        [sys.executable, __file__, "--echo-server", str(port)]
    )

    def ready() -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            return True
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, timeout_s=60, what="echo server", alive=lambda: None)
        ids = [str(uuid.uuid4()) for _ in range(args.acks)]
        await send_acks(port, "none", ids[:WARM_UP], args.in_flight)
        figures = await timed_phase("floor", echo.pid, port, "none", ids, args)
    finally:
        echo.terminate()
        echo.wait()
    result = Phase(database="none (trivial app)", batteries=0, **figures)
    say(result)
    return result


def markdown(results: list[Phase]) -> str:
    lines = [
        "| Database | Batteries | Acks | Phase | API CPU ms/ack | of which kernel | Acks/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.database} | {r.batteries:,} | {r.acks:,} | {r.phase} | "
            f"{r.server_cpu_ms_per_ack:.2f} | {r.server_system_ms_per_ack:.2f} | "
            f"{r.acks_per_s:,.0f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000", help="batteries, comma-separated")
    parser.add_argument("--databases", default="sqlite,postgresql", help="sqlite, postgresql")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("GRIDHIVE_BENCH_DATABASE_URL", DEFAULT_POSTGRES_URL),
        help="a PostgreSQL database whose schema the benchmark may drop",
    )
    parser.add_argument("--acks", type=int, default=3000, help="timed acks per phase")
    parser.add_argument("--in-flight", type=int, default=4, help="connections, one ack each")
    parser.add_argument(
        "--floor", action="store_true", help="also time a trivial uvicorn app the same way"
    )
    parser.add_argument("--py-spy", type=Path, help="record the server into this directory")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--echo-server", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> list[Phase]:
    results: list[Phase] = [await run_floor(args)] if args.floor else []
    for database in args.databases.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            if size < args.acks + WARM_UP:
                raise SystemExit(f"--sizes: {size} batteries give too few commands to ack")
            url = sqlite_url() if database == "sqlite" else args.postgres_url
            results += await run_size(database, url, size, args)
    return results


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.echo_server:
        serve_echo(arguments.echo_server)
        sys.exit(0)
    figures = asyncio.run(main(arguments))
    sys.stdout.write(markdown(figures) + "\n")
    if arguments.json:
        arguments.json.write_text(json.dumps([asdict(f) for f in figures], indent=2) + "\n")
