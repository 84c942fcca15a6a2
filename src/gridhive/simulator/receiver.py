"""The OEM's webhook receiver: a small ASGI app that checks every delivery with the
`standardwebhooks` package, drops repeats by `webhook-id`, and hands each envelope on.

Order matters: the signature is checked first (a forged or stale request is a 400 and nothing
else happens); then injected faults (5xx, timeouts) fail the attempt before it is recorded, so
gridhive's retry is processed normally; then duplicates are answered 204 without processing.

It is a bare ASGI callable rather than a framework app: it answers thousands of webhooks a
second beside the fleet's physics, and a framework's request and response objects cost more
than the signature check itself.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from standardwebhooks import Webhook
from starlette.types import Receive, Scope, Send

from gridhive.simulator.faults import DeliveryFaults

WEBHOOK_PATH = "/webhooks"
HEALTH_PATH = "/healthz"
# Longer than gridhive's 5-second delivery timeout, so an injected timeout is seen as one.
DEFAULT_TIMEOUT_FAULT_S = 6.0
# The Standard Webhooks headers, as ASGI gives header names: lower-case bytes.
_SIGNED_HEADERS = {b"webhook-id", b"webhook-timestamp", b"webhook-signature"}

EnvelopeHandler = Callable[[dict[str, Any], str], None]


class SeenIds:
    """The last `capacity` message ids (at-least-once delivery: repeats are expected)."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._ids

    def add(self, message_id: str) -> None:
        self._ids[message_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


@dataclass
class ReceiverStats:
    verified: int = 0  # signature and timestamp good
    rejected: int = 0  # forged, stale or malformed: 400
    duplicates: int = 0  # a webhook-id seen before: 204, not processed again
    failed_5xx: int = 0  # injected
    timed_out: int = 0  # injected


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any] | None = None  # sent as JSON; None: no body


NO_CONTENT = Answer(204)


class WebhookReceiver:
    def __init__(
        self,
        on_envelope: EnvelopeHandler,
        *,
        secret: str | None = None,
        faults: DeliveryFaults | None = None,
        timeout_fault_s: float = DEFAULT_TIMEOUT_FAULT_S,
    ) -> None:
        self.on_envelope = on_envelope
        self.faults = faults
        self.timeout_fault_s = timeout_fault_s
        self.stats = ReceiverStats()
        self.seen = SeenIds()
        self._webhook: Webhook | None = None
        if secret is not None:
            self.set_secret(secret)

    def set_secret(self, secret: str) -> None:
        """Known only once the endpoint is registered; until then deliveries get a 503."""
        self._webhook = Webhook(secret)

    @property
    def app(self) -> WebhookReceiver:
        """The ASGI application (the receiver itself)."""
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI: POST /webhooks and GET /healthz."""
        if scope["type"] != "http":
            return
        route = (scope["method"], scope["path"])
        if route == ("POST", WEBHOOK_PATH):
            answer = await self.handle(_signed_headers(scope), await _body(receive))
        elif route == ("GET", HEALTH_PATH):
            answer = Answer(200, {"ok": True, **asdict(self.stats)})
        elif scope["path"] in (WEBHOOK_PATH, HEALTH_PATH):
            answer = Answer(405, {"error": "method not allowed"})
        else:
            answer = Answer(404, {"error": "not found"})
        await _send(send, answer)

    async def handle(self, headers: dict[str, str], body: bytes) -> Answer:
        """One delivery: its Standard Webhooks headers and its body as received."""
        if self._webhook is None:
            return Answer(503, {"error": "not ready"})
        envelope = self._verify(body, headers)
        if envelope is None:
            self.stats.rejected += 1
            return Answer(400, {"error": "signature check failed"})
        self.stats.verified += 1
        message_id = headers["webhook-id"]
        failure = await self._injected_failure(message_id)
        if failure is not None:
            return failure
        if message_id in self.seen:
            self.stats.duplicates += 1
            return NO_CONTENT
        self.seen.add(message_id)
        self.on_envelope(envelope, message_id)
        return NO_CONTENT

    def _verify(self, body: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
        assert self._webhook is not None
        try:
            envelope = self._webhook.verify(body, headers)
        # The library raises its own error for bad signatures and stale timestamps, and plain
        # ValueErrors (binascii, unpacking, JSON) for malformed headers or bodies: all are 400s.
        except Exception:
            return None
        return envelope if isinstance(envelope, dict) else None

    async def _injected_failure(self, message_id: str) -> Answer | None:
        if self.faults is None:
            return None
        fault = self.faults.decide(message_id)
        if fault == "5xx":
            self.stats.failed_5xx += 1
            return Answer(503, {"error": "injected failure"})
        if fault == "timeout":
            self.stats.timed_out += 1
            await asyncio.sleep(self.timeout_fault_s)
            return Answer(504, {"error": "injected timeout"})
        self.faults.forget(message_id)
        return None


def _signed_headers(scope: Scope) -> dict[str, str]:
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope["headers"]
        if name in _SIGNED_HEADERS
    }


async def _body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body  # the whole body in one message: the usual case
    chunks = [body]
    while message.get("more_body", False):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def _send(send: Send, answer: Answer) -> None:
    if answer.body is None:
        await send({"type": "http.response.start", "status": answer.status, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    content = json.dumps(answer.body, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content))]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def parse_envelope(payload: bytes) -> dict[str, Any] | None:
    """An envelope from a channel without signatures (MQTT), or None when it is not one."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("event_object"), dict):
        return None
    return data
