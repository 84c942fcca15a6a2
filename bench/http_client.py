"""HTTP round trips on this machine, client by client and server by server: CPU per request.

A trivial server runs in another process (uvicorn, httptools, no access log); this process
sends a webhook-sized POST and an ack-sized PATCH alternately, `--in-flight` at once, and
reads both processes' CPU time (user + system, from /proc). Figures per request:

- `client_ms`: this process's CPU per request (what the worker or the simulator would spend);
- `server_ms`: the server process's CPU per request;
- `round_trips_per_s`: on a shared machine only a hint; compare the CPU figures.

Clients (`--clients`):

- `httpx`: httpx.AsyncClient with its own pool (httpcore, h11, anyio);
- `httpx-aiohttp`: httpx.AsyncClient over `httpx_aiohttp.AiohttpTransport` (not a gridhive
  dependency: `pip install httpx-aiohttp` first);
- `aiohttp`: a bare aiohttp.ClientSession;
- `send`: gridhive's own webhook sender (`integrations.webhook.make_client` and `send`, a
  freshly signed message each time);
- `ack`: the simulator's client (`GridhiveClient.ack`).

Servers (`--servers`): `echo` (a raw ASGI app that reads the body and answers 200 with a
small JSON), `starlette` (the same as a Starlette route), `receiver` (the simulator's webhook
receiver: signature check, dedupe, JSON; every request then is a freshly signed webhook).
`--loops` picks the event loop of both sides: asyncio and/or uvloop.

    .venv/bin/python bench/http_client.py --clients httpx,httpx-aiohttp,aiohttp --in-flight 1,16,64
    .venv/bin/python bench/http_client.py --clients aiohttp --servers echo,starlette,receiver
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._echo import echo_app
from gridhive.integrations import webhook
from gridhive.simulator.stack import free_port

SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="
WEBHOOK_PATH = "/webhooks"
# What a command.created envelope weighs (about 900 bytes) and what an ack sends.
ENVELOPE = {
    "event_type": "command.created",
    "event_object": {"object_type": "command", "id": "x", "padding": "y" * 800},
    "timestamp": "2026-01-01T00:00:00.000Z",
}
ACK = {"device_status": "OK", "device_status_reason": "Command scheduled"}

Request = Callable[[int], Awaitable[None]]


# Servers -------------------------------------------------------------------------------------


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def handle(request: StarletteRequest) -> JSONResponse:
        await request.body()
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST", "PATCH"])])


def receiver_app() -> Any:
    from gridhive.simulator.receiver import WebhookReceiver

    return WebhookReceiver(lambda envelope, message_id: None, secret=SECRET).app


def serve(port: int, app_name: str, loop: str) -> None:
    import uvicorn

    apps: dict[str, Callable[[], Any]] = {
        "echo": lambda: echo_app,
        "starlette": starlette_app,
        "receiver": receiver_app,
    }
    uvicorn.run(
        apps[app_name](),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop=loop,
        lifespan="off",
    )


# Clients -------------------------------------------------------------------------------------


def signed_webhook() -> tuple[bytes, dict[str, str]]:
    body = json.dumps({**ENVELOPE, "id": uuid.uuid4().hex}, separators=(",", ":"))
    headers = webhook.signed_headers(str(uuid.uuid4()), datetime.now(UTC), body, [SECRET])
    return body.encode(), headers


def ack_body() -> tuple[bytes, dict[str, str]]:
    return json.dumps(ACK).encode(), {"content-type": "application/json"}


def _message(n: int, webhooks_only: bool) -> tuple[str, str, bytes, dict[str, str]]:
    """Even: a signed webhook POST; odd: an ack PATCH (unless the server takes only webhooks)."""
    if n % 2 and not webhooks_only:
        body, headers = ack_body()
        return "PATCH", "/v1/command/x", body, headers
    body, headers = signed_webhook()
    return "POST", WEBHOOK_PATH, body, headers


class Client:
    """One kind of client: `open`, then `request(n)` many times, then `close`."""

    def __init__(self, kind: str, base_url: str, in_flight: int, webhooks_only: bool) -> None:
        self.kind = kind
        self.webhooks_only = webhooks_only
        self.base_url = base_url
        self.in_flight = in_flight
        self._close: Callable[[], Awaitable[None]] | None = None
        self.request: Request = self._not_open
        # Made before the clock starts: the plain clients' CPU is then HTTP alone.
        self.messages: list[tuple[str, str, bytes, dict[str, str]]] = []

    def prepare(self, requests: int) -> None:
        self.messages = [_message(n, self.webhooks_only) for n in range(requests)]

    async def _not_open(self, n: int) -> None:
        raise RuntimeError("open the client first")

    async def open(self) -> None:
        openers = {
            "httpx": self._open_httpx,
            "httpx-aiohttp": self._open_httpx_aiohttp,
            "aiohttp": self._open_aiohttp,
            "send": self._open_send,
            "ack": self._open_ack,
        }
        await openers[self.kind]()

    async def close(self) -> None:
        if self._close is not None:
            await self._close()

    def _use_httpx(self, http: httpx.AsyncClient) -> None:
        async def request(n: int) -> None:
            method, path, body, headers = self.messages[n]
            response = await http.request(method, path, content=body, headers=headers)
            response.raise_for_status()

        self.request, self._close = request, http.aclose

    async def _open_httpx(self) -> None:
        limits = httpx.Limits(max_connections=self.in_flight)
        self._use_httpx(httpx.AsyncClient(base_url=self.base_url, limits=limits))

    async def _open_httpx_aiohttp(self) -> None:
        from httpx_aiohttp import AiohttpTransport

        limits = httpx.Limits(max_connections=self.in_flight)
        transport = AiohttpTransport(limits=limits)
        self._use_httpx(httpx.AsyncClient(base_url=self.base_url, transport=transport))

    async def _open_aiohttp(self) -> None:
        import aiohttp

        session = aiohttp.ClientSession(
            base_url=self.base_url, connector=aiohttp.TCPConnector(limit=self.in_flight)
        )

        async def request(n: int) -> None:
            method, path, body, headers = self.messages[n]
            async with session.request(method, path, data=body, headers=headers) as response:
                await response.read()
                response.raise_for_status()

        self.request, self._close = request, session.close

    async def _open_send(self) -> None:
        http = webhook.make_client(timeout_s=5.0, allow_private=True, max_connections=64)
        url = self.base_url + WEBHOOK_PATH

        async def request(n: int) -> None:
            body = json.dumps({**ENVELOPE, "id": uuid.uuid4().hex}, separators=(",", ":"))
            result = await webhook.send(
                http,
                url=url,
                msg_id=str(uuid.uuid4()),
                timestamp=datetime.now(UTC),
                body=body,
                secrets=[SECRET],
            )
            if not result.ok:
                raise RuntimeError(result.error)

        self.request, self._close = request, http.aclose

    async def _open_ack(self) -> None:
        from gridhive.simulator.client import GridhiveClient

        client = GridhiveClient(self.base_url, "ghk_bench", max_connections=self.in_flight)

        async def request(n: int) -> None:
            await client.ack("x", "OK", "Command scheduled")

        self.request, self._close = request, client.aclose


# Measuring -----------------------------------------------------------------------------------


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(app_name: str, loop: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [sys.executable, __file__, "--serve", str(port), "--app", app_name, "--loop", loop]
    return subprocess.Popen(argv), f"http://127.0.0.1:{port}"


def until_up(base_url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(base_url + "/healthz", timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


async def drive(client: Client, requests: int, in_flight: int) -> float:
    """Send `requests` with `in_flight` at once; returns the wall seconds."""
    counter = iter(range(requests))

    async def lane() -> None:
        for n in counter:
            await client.request(n)

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(in_flight)))
    return time.perf_counter() - began


async def measure(
    kind: str, server: str, base_url: str, server_pid: int, in_flight: int, requests: int
) -> dict[str, Any]:
    client = Client(kind, base_url, in_flight, webhooks_only=server == "receiver")
    await client.open()
    try:
        client.prepare(min(requests, 200))
        await drive(client, min(requests, 200), in_flight)  # connections up, caches warm
        client.prepare(requests)
        client_before, server_before = time.process_time(), process_cpu_s(server_pid)
        wall = await drive(client, requests, in_flight)
        client_cpu = time.process_time() - client_before
        server_cpu = process_cpu_s(server_pid) - server_before
    finally:
        await client.close()
    return {
        "client": kind,
        "in_flight": in_flight,
        "requests": requests,
        "client_ms": round(1000 * client_cpu / requests, 3),
        "server_ms": round(1000 * server_cpu / requests, 3),
        "round_trips_per_s": round(requests / wall),
    }


def run_loop(loop: str, coroutine: Awaitable[Any]) -> Any:
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coroutine)  # type: ignore[arg-type]
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for loop in args.loops.split(","):
        for app_name in args.servers.split(","):
            server, base_url = start_server(app_name, loop)
            try:
                until_up(base_url)
                for kind in args.clients.split(","):
                    for in_flight in (int(n) for n in args.in_flight.split(",")):
                        row = run_loop(
                            loop,
                            measure(kind, app_name, base_url, server.pid, in_flight, args.requests),
                        )
                        row.update(loop=loop, server=app_name, load=os.getloadavg()[0])
                        sys.stdout.write(json.dumps(row) + "\n")
                        sys.stdout.flush()
                        rows.append(row)
            finally:
                server.terminate()
                server.wait()
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", default="httpx,aiohttp,send,ack")
    parser.add_argument("--servers", default="echo")
    parser.add_argument("--loops", default="asyncio")
    parser.add_argument("--in-flight", default="1,16,64")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--app", default="echo", help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve:
        serve(arguments.serve, arguments.app, arguments.loop)
        sys.exit(0)
    result = main(arguments)
    if arguments.json:
        arguments.json.write_text(json.dumps(result, indent=2) + "\n")
