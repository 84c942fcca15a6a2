"""The delivery client against a real HTTP server on a local port: what a receiver sees, and
what the delivery log would say for each kind of answer (or none)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from gridhive.integrations import webhook

SECRET = webhook.new_secret()
BODY = '{"event_type":"command.created","event_object":{"id":"c-1"}}'


@dataclass
class Server:
    """Answers every request with `status` and `body`; `hold` keeps requests unanswered."""

    status: int = 204
    body: bytes = b""
    hold: bool = False
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")[1:]
                pairs = (line.split(":", 1) for line in lines if ":" in line)
                headers = {k.strip().lower(): v.strip() for k, v in pairs}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((headers, body))
                if self.hold:
                    await asyncio.Event().wait()
                extra = "Location: http://elsewhere.example/\r\n" if self.status == 302 else ""
                length = f"Content-Length: {len(self.body)}\r\n\r\n"
                writer.write(f"HTTP/1.1 {self.status} X\r\n{extra}{length}".encode() + self.body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    served = Server()
    listener = await asyncio.start_server(served.serve, "127.0.0.1", 0)
    served.port = listener.sockets[0].getsockname()[1]
    yield served
    listener.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(listener.wait_closed(), 5)


async def send(
    url: str, *, allow_private: bool = True, timeout_s: float = 5.0
) -> webhook.SendResult:
    client = webhook.make_client(
        timeout_s=timeout_s, allow_private=allow_private, max_connections=4
    )
    try:
        return await send_with(client, url)
    finally:
        await client.aclose()


async def send_with(client: webhook.WebhookClient, url: str) -> webhook.SendResult:
    return await webhook.send(
        client, url=url, msg_id="msg-1", timestamp=datetime.now(UTC), body=BODY, secrets=[SECRET]
    )


async def test_a_signed_message_arrives_and_a_2xx_is_success(server: Server) -> None:
    server.status, server.body = 200, b'{"ok":true}'
    result = await send(server.url)
    assert (result.ok, result.status_code, result.error) == (True, 200, None)
    [(headers, body)] = server.requests
    assert body == BODY.encode()
    assert Webhook(SECRET).verify(body, headers) == {
        "event_type": "command.created",
        "event_object": {"id": "c-1"},
    }
    assert headers["webhook-id"] == "msg-1"
    assert headers["user-agent"] == webhook.USER_AGENT


async def test_messages_share_one_kept_alive_connection(server: Server) -> None:
    client = webhook.make_client(timeout_s=5.0, allow_private=True, max_connections=4)
    try:
        for _ in range(3):
            assert (await send_with(client, server.url)).ok
    finally:
        await client.aclose()
    assert (len(server.requests), server.connections) == (3, 1)


async def test_an_error_answer_is_logged_with_its_status_and_the_start_of_its_body(
    server: Server,
) -> None:
    server.status, server.body = 503, b"busy " * 100
    result = await send(server.url)
    assert result.status_code == 503
    assert result.error is not None
    assert result.error.startswith("HTTP 503: busy busy")
    assert len(result.error) < 250


async def test_a_redirect_is_a_failure_and_is_not_followed(server: Server) -> None:
    server.status = 302
    result = await send(server.url)
    assert (result.ok, result.status_code) == (False, 302)
    assert len(server.requests) == 1


async def test_no_answer_in_time_is_a_timeout(server: Server) -> None:
    server.hold = True
    result = await send(server.url, timeout_s=0.2)
    assert result.status_code is None
    assert result.error is not None
    assert result.error.startswith("timeout")


async def test_a_refused_connection_is_a_failure_with_a_reason() -> None:
    result = await send("http://127.0.0.1:9/hook")  # the discard port: nothing listens
    assert result.status_code is None
    assert result.error


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_addresses_are_refused_before_connecting(server: Server, host: str) -> None:
    result = await send(f"http://{host}:{server.port}/hook", allow_private=False)
    assert result.status_code is None
    assert result.error is not None
    assert "non-public" in result.error
    assert server.connections == 0
