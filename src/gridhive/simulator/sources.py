"""Where commands come from: polling `GET /v1/commands`, an MQTT subscription, or the webhook
receiver served by uvicorn on a local port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
import uvicorn
from starlette.types import ASGIApp

from gridhive.kit.time import utc_now
from gridhive.simulator.client import ApiError, GridhiveClient
from gridhive.simulator.inbox import CommandInbox
from gridhive.simulator.receiver import EnvelopeHandler, SeenIds, parse_envelope

PAGE_LIMIT = 1000


class SourceError(Exception):
    """A channel could not be set up; the message says what to do."""


# Polling ------------------------------------------------------------------------------------


def _ts(command: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(command["updated_at"])


def next_page(
    since: datetime | None, skip: int, page: list[dict[str, Any]]
) -> tuple[datetime, int]:
    """Keyset paging on the inclusive `updated_since`: continue from the last `updated_at` of
    a full page, skipping the rows at that instant already read. Only rows sharing one instant
    (an event writes thousands of commands in one transaction) are ever counted by `skip`."""
    last = _ts(page[-1])
    at_last = sum(1 for c in page if _ts(c) == last)
    if since is not None and last == since:  # the whole page sat at `since`
        return since, skip + at_last
    return last, at_last


def next_cursor(newest: datetime, walk_started: datetime, overlap: timedelta) -> datetime:
    """Where the next poll starts (`updated_since` is inclusive).

    A row's `updated_at` is its transaction's start, and a large dispatch commits thousands of
    commands seconds after that time, so rows can appear late below the newest one seen. Rows
    changed `overlap` before this walk began are taken as settled: the next poll re-reads the
    last `overlap` of changes, or, once all is quiet, starts just after the newest row (so a
    large old group of commands is not read again and again). `overlap` must exceed the
    server's longest transaction plus any clock skew between it and us.
    """
    return min(walk_started - overlap, newest + timedelta(microseconds=1))


class Poller:
    """`GET /v1/commands?updated_since=...`, paged, re-reading a recent overlap each time."""

    def __init__(
        self,
        client: GridhiveClient,
        inbox: CommandInbox,
        *,
        overlap_s: float = 60.0,
        lookback_s: float = 2 * 86400,
        limit: int = PAGE_LIMIT,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.client = client
        self.inbox = inbox
        self.overlap = timedelta(seconds=overlap_s)
        self.limit = limit
        self.now = now
        # Commands arrive at most a day ahead and last hours: one changed two days ago is over,
        # so a fresh start need not page through the OEM's whole history.
        self.cursor: datetime | None = now() - timedelta(seconds=lookback_s)
        self.polls = 0
        self.errors = 0
        self.rows_read = 0
        self.walk_s = 0.0  # time spent reading pages

    async def poll_once(self) -> int:
        """Read every command changed since the cursor; returns how many rows were read."""
        began, started_at = time.monotonic(), self.now()
        try:
            read, newest = await self._walk()
        finally:
            self.inbox.hold(None)
            self.polls += 1
            self.walk_s += time.monotonic() - began
        if newest is not None:
            self.cursor = next_cursor(newest, started_at, self.overlap)
        self.rows_read += read
        return read

    async def _walk(self) -> tuple[int, datetime | None]:
        since, skip, read = self.cursor, 0, 0
        newest: datetime | None = None
        while True:
            page = await self.client.commands(updated_since=since, skip=skip, limit=self.limit)
            for command in page:
                self.inbox.receive(command, via="polling")
            read += len(page)
            if page:
                newest = _ts(page[-1]) if newest is None else max(newest, _ts(page[-1]))
            if len(page) < self.limit:
                return read, newest
            since, skip = next_page(since, skip, page)
            self.inbox.hold(since)  # the `skip` rows before the offset must stay put

    async def run(
        self, interval_s: float, warn: Callable[[str], None], stop: asyncio.Event
    ) -> None:
        """Poll every `interval_s` until `stop`; a poll under way is finished, not abandoned."""
        while not stop.is_set():
            try:
                await self.poll_once()
            except ApiError as exc:
                self.errors += 1
                warn(f"polling: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)


# MQTT ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Broker:
    hostname: str
    port: int
    username: str | None
    password: str | None
    tls: bool


def parse_broker_url(url: str) -> Broker:
    """`mqtt://[user:password@]host[:port]` (1883), or `mqtts://` with TLS (8883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise SourceError(f"not an MQTT broker URL: {url!r} (expected mqtt://host:port)")
    tls = parts.scheme in ("mqtts", "ssl")
    return Broker(
        hostname=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


@dataclass
class MqttStats:
    messages: int = 0
    duplicates: int = 0
    malformed: int = 0
    reconnects: int = 0


class MqttSubscriber:
    """Subscribes with QoS 1 to `<prefix>command/#`; the envelope carries its `webhook_id`."""

    def __init__(self, url: str, topic: str, on_envelope: EnvelopeHandler) -> None:
        self.broker = parse_broker_url(url)
        self.topic = topic
        self.on_envelope = on_envelope
        self.seen = SeenIds()
        self.stats = MqttStats()
        self.subscribed = asyncio.Event()

    def _client(self) -> aiomqtt.Client:
        b = self.broker
        return aiomqtt.Client(
            b.hostname,
            b.port,
            username=b.username,
            password=b.password,
            identifier=f"gridhive-simulator-{uuid.uuid4().hex[:12]}",
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=ssl.create_default_context() if b.tls else None,
        )

    async def run(self, warn: Callable[[str], None]) -> None:
        while True:
            try:
                async with self._client() as client:
                    await client.subscribe(self.topic, qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        self.handle(message.payload)
            except aiomqtt.MqttError as exc:
                self.stats.reconnects += 1
                warn(f"mqtt: {exc}; reconnecting in 2 s")
                await asyncio.sleep(2)

    def handle(self, payload: object) -> None:
        raw = payload.encode() if isinstance(payload, str) else payload
        envelope = parse_envelope(bytes(raw)) if isinstance(raw, bytes | bytearray) else None
        if envelope is None:
            self.stats.malformed += 1
            return
        self.stats.messages += 1
        message_id = str(envelope.get("webhook_id") or "")
        if message_id and message_id in self.seen:
            self.stats.duplicates += 1
            return
        if message_id:
            self.seen.add(message_id)
        self.on_envelope(envelope, message_id)


# Webhook server -----------------------------------------------------------------------------


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The runner owns Ctrl-C (it stops cleanly and writes the report); uvicorn would take
        # the signals for itself and raise them again when it stops.
        yield


class WebhookServer:
    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Listen (binding here, so a port in use is a clear error); returns the port."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise SourceError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", access_log=False, timeout_keep_alive=30
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                raise SourceError(f"the webhook receiver did not start on port {self.port}")
            await asyncio.sleep(0.02)
        return self.port

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, timeout=10)
        except TimeoutError:
            self._task.cancel()
