"""A real HTTP webhook receiver on a local port, for tests that run `gridhive worker` processes.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) for the worker's client,
records every request as it arrives, and can hold requests open until released, so a test can
kill a worker while deliveries are on the wire. Tests poll what it recorded against a deadline;
nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


@dataclass(frozen=True)
class Arrival:
    webhook_id: str
    body: bytes

    @property
    def event_object(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)["event_object"]
        return data


@dataclass
class LiveReceiver:
    """Answers 204 to every POST; holds each request past the first `answer_first` while
    `holding` is set."""

    answer_first: int | None = None
    arrivals: list[Arrival] = field(default_factory=list)
    held: int = 0
    port: int = 0
    _open: int = 0  # connections not yet closed
    _holding: int = 0  # of those, the ones waiting for `release`
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def release(self) -> None:
        """Stop holding: held requests (and later ones) are answered."""
        self.answer_first = None
        self._release.set()

    def counts(self) -> Counter[str]:
        return Counter(a.webhook_id for a in self.arrivals)

    def settled(self) -> bool:
        """Every connection is closed or held: nothing a client already sent is unread (what a
        killed client wrote just before dying still arrives, after the kill)."""
        return self._open == self._holding

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = _headers(head)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.arrivals.append(Arrival(headers["webhook-id"], body))
                if self.answer_first is not None and len(self.arrivals) > self.answer_first:
                    self.held += 1
                    self._holding += 1
                    try:
                        await self._release.wait()
                    finally:
                        self._holding -= 1
                writer.write(_NO_CONTENT)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed the connection (or was killed)
        finally:
            self._open -= 1
            writer.close()


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    return {name.strip().lower(): value.strip() for name, value in pairs}
