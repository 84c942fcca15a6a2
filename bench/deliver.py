"""Webhook delivery throughput: gridhive's workers beside a plain httpx client, same receiver.

For each database and size: a fresh migrated schema, N/2 enrolled batteries (bulk-seeded) and
one webhook endpoint of their OEM subscribed to `command.created`, pointing at a local
receiver; then a real `POST /v1/events` (about two commands per battery), so the outbox rows
are exactly the ones an event makes. Untimed so far. Then, in the same run, against the same
receiver (a raw asyncio HTTP/1.1 server in its own process, keep-alive, answering 204):

- gridhive: `--workers` `gridhive worker` processes (like production), concurrency split
  between them; timed from the receiver's first request until the database has no open
  delivery left (every outcome recorded), polled every 50 ms;
- plain: the same number of processes of a bare httpx.AsyncClient posting the same bodies,
  signed the same way (Standard Webhooks, `integrations.webhook.signed_headers`), with the same
  total concurrency and keep-alive; timed from the receiver's first request to the client's
  last answer.

Prints messages/s for both and the ratio gridhive / plain, with the load average.

    .venv/bin/python bench/deliver.py --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    fresh_engine,
    register_oem_webhook,
    remove_sqlite_database,
    seed_fleet,
    server_version,
    sqlite_url,
)
from bench.plan_event import event_body, machine
from gridhive import app as app_module
from gridhive.config import Settings
from gridhive.db.session import make_sessionmaker, unit_of_work
from gridhive.integrations.webhook import signed_headers
from gridhive.webhooks import jobs, repository
from gridhive.webhooks.models import Delivery, DeliveryState
from gridhive.webhooks.repository import is_open

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/gridhive_bench_deliver"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="command webhooks per run")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--workers", type=int, default=1, help="processes on each side")
    parser.add_argument("--concurrency", type=int, default=64, help="in flight, in total")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    return parser.parse_args(argv)


# The receiver --------------------------------------------------------------------------------

_NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


class _Stats:
    count = 0
    first = 0.0
    last = 0.0


class _Http(asyncio.Protocol):
    """Just enough HTTP/1.1: Content-Length bodies, pipelining-safe, keep-alive. `GET /stats`
    answers `count first last` and resets them."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            if head.startswith(b"GET /stats"):
                text = f"{_Stats.count} {_Stats.first} {_Stats.last}".encode()
                _Stats.count, _Stats.first, _Stats.last = 0, 0.0, 0.0
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text)
                )
                continue
            now = time.time()
            if not _Stats.count:
                _Stats.first = now
            _Stats.count += 1
            _Stats.last = now
            self.transport.write(_NO_CONTENT)


def _serve(port: int) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(
            _Http, "127.0.0.1", port, backlog=1024
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def receiver_stats(base: str) -> tuple[int, float, float]:
    async with httpx.AsyncClient(trust_env=False) as client:
        count, first, last = (await client.get(f"{base}/stats")).text.split()
    return int(count), float(first), float(last)


# Setup ---------------------------------------------------------------------------------------


async def prepare(engine: AsyncEngine, url: str, messages: int, hook: str) -> int:
    """Fleet, endpoint, event: returns the number of command webhooks waiting."""
    sessionmaker = make_sessionmaker(engine)
    devices = max(1, messages // 2)
    async with sessionmaker() as session:
        fleet = await seed_fleet(session, devices)
    async with unit_of_work(sessionmaker) as session:
        await register_oem_webhook(session, hook, ["command.created"])
    settings = Settings(database_url=url, run_migrations_on_start=False, log_json=False)
    settings.worker.in_process = False
    app = app_module.create_app(settings, engine=engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        body = event_body(str(fleet.program_id), devices)
        response = await client.post("/v1/events", json=body, headers=fleet.utility_headers)
        if response.status_code != 200:
            raise SystemExit(f"POST /v1/events: {response.status_code} {response.text[:500]}")
    return await open_rows(engine)


async def open_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            sa.select(sa.func.count()).select_from(Delivery).where(is_open(Delivery.state))
        )
    return int(count or 0)


async def bodies(engine: AsyncEngine) -> list[tuple[str, str, tuple[str, ...]]]:
    """(webhook-id, body, secrets) of every waiting delivery, as the worker would send them."""
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        ids = list(
            await session.scalars(
                sa.select(Delivery.id)
                .where(Delivery.state == DeliveryState.PENDING)
                .order_by(Delivery.seq)
            )
        )
        out = []
        now = datetime.now(UTC)
        for start in range(0, len(ids), 5000):
            for job in await repository.load_jobs(session, ids[start : start + 5000], now):
                out.append((str(job.delivery_id), jobs.body_of(job), job.secrets))
    return out


# The two sides -------------------------------------------------------------------------------


def start_workers(url: str, workers: int, concurrency: int) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "GRIDHIVE_DATABASE_URL": url,
        "GRIDHIVE_RUN_MIGRATIONS_ON_START": "false",
        "GRIDHIVE_LOG_LEVEL": "WARNING",
        "GRIDHIVE_WORKER__CONCURRENCY": str(max(1, concurrency // workers)),
        "GRIDHIVE_WORKER__ENDPOINT_WINDOW": str(concurrency),
        "GRIDHIVE_WORKER__POLL_INTERVAL_S": "0.05",
    }
    command = [sys.executable, "-m", "gridhive.cli.main", "worker"]
    return [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) for _ in range(workers)]


async def run_gridhive(
    engine: AsyncEngine, url: str, base: str, args: argparse.Namespace
) -> tuple[int, float]:
    await receiver_stats(base)  # reset
    processes = start_workers(url, args.workers, args.concurrency)
    try:
        while True:  # polled: the workers are other processes
            if not await open_rows(engine):
                break
            await asyncio.sleep(0.05)
        done = time.time()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sys.stderr.write("  a worker did not stop within 30 s of SIGTERM: killed\n")
                process.kill()
                process.wait()
    count, first, _ = await receiver_stats(base)
    return count, done - first


def _plain_process(
    hook: str, share: list[tuple[str, str, tuple[str, ...]]], concurrency: int
) -> tuple[float, float]:
    async def main() -> tuple[float, float]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
        queue = iter(share)
        async with httpx.AsyncClient(transport=transport, timeout=5.0, trust_env=False) as http:

            async def lane() -> None:
                for msg_id, body, secrets in queue:
                    headers = signed_headers(msg_id, datetime.now(UTC), body, secrets)
                    response = await http.post(hook, content=body.encode(), headers=headers)
                    assert 200 <= response.status_code < 300

            started = time.time()
            await asyncio.gather(*(lane() for _ in range(concurrency)))
            return started, time.time()

    return asyncio.run(main())


def run_plain(
    hook: str, messages: list[tuple[str, str, tuple[str, ...]]], args: argparse.Namespace
) -> float:
    """Post every message; returns the wall-clock time of the last answer."""
    shares = [messages[i :: args.workers] for i in range(args.workers)]
    per = max(1, args.concurrency // args.workers)
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers) as pool:
        spans = pool.starmap(_plain_process, [(hook, share, per) for share in shares])
    return max(end for _, end in spans)


# Driver --------------------------------------------------------------------------------------


@dataclass
class Result:
    database: str
    messages: int
    gridhive_s: float
    plain_s: float
    load: tuple[float, float, float]
    version: str

    @property
    def gridhive_rate(self) -> float:
        return self.messages / self.gridhive_s

    @property
    def plain_rate(self) -> float:
        return self.messages / self.plain_s

    @property
    def ratio(self) -> float:
        return self.gridhive_rate / self.plain_rate


async def bench_size(
    database: str, url: str, size: int, base: str, args: argparse.Namespace
) -> Result:
    engine = await fresh_engine(url)
    hook = f"{base}/hook"
    try:
        version = await server_version(engine)
        waiting = await prepare(engine, url, size, hook)
        messages = await bodies(engine)
        sys.stderr.write(f"  {database} {size:,}: {waiting:,} command webhooks waiting\n")
        await receiver_stats(base)  # reset
        plain_end = run_plain(hook, messages, args)
        # Both sides are timed from the receiver's first request: process start-up is not in it.
        _, plain_first, _ = await receiver_stats(base)
        plain_s = plain_end - plain_first
        count, gridhive_s = await run_gridhive(engine, url, base, args)
        if count < waiting:
            raise SystemExit(f"the receiver got {count} of {waiting} messages")
    finally:
        await engine.dispose()
        if database == "sqlite":
            remove_sqlite_database(url)
    result = Result(database, waiting, gridhive_s, plain_s, os.getloadavg(), version)
    sys.stderr.write(
        f"  gridhive {result.gridhive_rate:,.0f}/s, plain {result.plain_rate:,.0f}/s,"
        f" ratio {result.ratio:.2f}, load {result.load[0]:.1f}\n"
    )
    return result


def markdown(results: list[Result], args: argparse.Namespace) -> str:
    lines = [
        f"| database | messages | gridhive ({args.workers} worker process(es)) msg/s"
        " | plain httpx msg/s | ratio | load (1/5/15 min) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        load = "/".join(f"{x:.1f}" for x in r.load)
        lines.append(
            f"| {r.database} | {r.messages:,} | {r.gridhive_rate:,.0f} | {r.plain_rate:,.0f}"
            f" | **{r.ratio:.2f}** | {load} |"
        )
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    port = free_port()
    receiver = multiprocessing.get_context("spawn").Process(target=_serve, args=(port,))
    receiver.start()
    base = f"http://127.0.0.1:{port}"
    results: list[Result] = []
    versions: list[str] = []
    try:
        for _ in range(100):
            try:
                await receiver_stats(base)
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.1)
        for database in [d.strip() for d in args.databases.split(",") if d.strip()]:
            for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
                url = sqlite_url() if database == "sqlite" else args.postgres_url
                result = await bench_size(database, url, size, base, args)
                results.append(result)
                if result.version not in versions:
                    versions.append(result.version)
    finally:
        receiver.terminate()
        receiver.join()
    sys.stdout.write(
        f"{machine()}; {', '.join(versions)}; concurrency {args.concurrency} in total\n\n"
    )
    sys.stdout.write(markdown(results, args) + "\n")
    if args.json:
        raw: list[dict[str, Any]] = [
            {**vars(r), "gridhive_rate": r.gridhive_rate, "plain_rate": r.plain_rate}
            for r in results
        ]
        args.json.write_text(json.dumps(raw, indent=2))


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
