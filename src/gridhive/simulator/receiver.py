"""The OEM's webhook receiver: a small Starlette app that checks every delivery with the
`standardwebhooks` package, drops repeats by `webhook-id`, and hands each envelope on.

Order matters: the signature is checked first (a forged or stale request is a 400 and nothing
else happens); then injected faults (5xx, timeouts) fail the attempt before it is recorded, so
gridhive's retry is processed normally; then duplicates are answered 204 without processing.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gridhive.simulator.faults import DeliveryFaults

WEBHOOK_PATH = "/webhooks"
# Longer than gridhive's 5-second delivery timeout, so an injected timeout is seen as one.
DEFAULT_TIMEOUT_FAULT_S = 6.0

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
        self.app = Starlette(
            routes=[
                Route(WEBHOOK_PATH, self.handle, methods=["POST"]),
                Route("/healthz", self.health, methods=["GET"]),
            ]
        )

    def set_secret(self, secret: str) -> None:
        """Known only once the endpoint is registered; until then deliveries get a 503."""
        self._webhook = Webhook(secret)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, **self.stats.__dict__})

    async def handle(self, request: Request) -> Response:
        if self._webhook is None:
            return JSONResponse({"error": "not ready"}, status_code=503)
        body = await request.body()
        envelope = self._verify(body, dict(request.headers))
        if envelope is None:
            self.stats.rejected += 1
            return JSONResponse({"error": "signature check failed"}, status_code=400)
        self.stats.verified += 1
        message_id = request.headers["webhook-id"]
        failure = await self._injected_failure(message_id)
        if failure is not None:
            return failure
        if message_id in self.seen:
            self.stats.duplicates += 1
            return Response(status_code=204)
        self.seen.add(message_id)
        self.on_envelope(envelope, message_id)
        return Response(status_code=204)

    def _verify(self, body: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
        assert self._webhook is not None
        try:
            envelope = self._webhook.verify(body, headers)
        # The library raises its own error for bad signatures and stale timestamps, and plain
        # ValueErrors (binascii, unpacking, JSON) for malformed headers or bodies: all are 400s.
        except Exception:
            return None
        return envelope if isinstance(envelope, dict) else None

    async def _injected_failure(self, message_id: str) -> Response | None:
        if self.faults is None:
            return None
        fault = self.faults.decide(message_id)
        if fault == "5xx":
            self.stats.failed_5xx += 1
            return JSONResponse({"error": "injected failure"}, status_code=503)
        if fault == "timeout":
            self.stats.timed_out += 1
            await asyncio.sleep(self.timeout_fault_s)
            return JSONResponse({"error": "injected timeout"}, status_code=504)
        self.faults.forget(message_id)
        return None


def parse_envelope(payload: bytes) -> dict[str, Any] | None:
    """An envelope from a channel without signatures (MQTT), or None when it is not one."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("event_object"), dict):
        return None
    return data
